"""What crosses to a market and back, as JSON: the offer an adapter submits and the award that comes back.

Adapters (aggregator.market.adapters) carry these; the inbound API (POST /api/inbound/v1/awards) takes an award in
the same form, and the market simulator (`manage.py simulate_market`) speaks both. Times are ISO 8601 with an
offset; kW and prices are numbers; a resource is named by the id the market registered it under.

Offer::

    {"offer_id": "1234-v2", "market": "PJM", "resource": "PJM-DER-0001", "market_kind": "day_ahead",
     "window_start": "...", "window_end": "...", "interval_minutes": 60, "deadline": "...",
     "intervals": [{"start": "...", "min_kw": 0, "max_kw": 850.0, "ramp_kw_per_minute": 120.0,
                    "notification_minutes": 30, "min_run_minutes": 0, "max_run_minutes": 240,
                    "segments": [[300.0, 45.0], [550.0, 120.0]]}]}

Award::

    {"award_id": "DA-2026-12-04-0001", "offer_id": "1234-v2", "resource": "PJM-DER-0001",
     "market_kind": "day_ahead",
     "intervals": [{"start": "...", "end": "...", "kw": 500.0, "price_per_mwh": 62.5}]}
"""

from typing import TypedDict


class OfferIntervalWire(TypedDict):
    start: str
    min_kw: float
    max_kw: float
    ramp_kw_per_minute: float
    notification_minutes: int
    min_run_minutes: int
    max_run_minutes: int | None
    segments: list[list[float]]


class OfferWire(TypedDict):
    offer_id: str
    market: str
    resource: str
    market_kind: str
    window_start: str
    window_end: str
    interval_minutes: int
    deadline: str
    intervals: list[OfferIntervalWire]


class AwardIntervalWire(TypedDict):
    start: str
    end: str
    kw: float
    price_per_mwh: float


class AwardWire(TypedDict):
    award_id: str
    offer_id: str
    resource: str
    market_kind: str
    intervals: list[AwardIntervalWire]


def offer_ref(offer_id: int, version: int) -> str:
    """The id an offer version goes to the market under."""
    return f"{offer_id}-v{version}"


def parse_offer_ref(ref: str) -> tuple[int, int] | None:
    """(offer id, version) of an offer ref, or None if it is not one of ours."""
    head, sep, tail = ref.partition("-v")
    if not sep or not head.isdigit() or not tail.isdigit():
        return None
    return int(head), int(tail)
