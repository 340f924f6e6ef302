"""A merit-order clearing of one interval, as the market simulator runs it (plain values, no ORM).

Every offer's segments priced at or below the interval's LMP are eligible; they are taken cheapest first (ties in
offer order, an offer's own segments in curve order) until the interval's system need is met, the last one in part.
An offer with a minimum runs at that minimum or not at all: if the need left, or its own eligible quantity, is
below its minimum when its first segment comes up, it is passed over. Every cleared kW is paid the LMP (uniform
pricing), which is never below the price of a segment cleared.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bid:
    """One offer's curve in the interval: incremental kW at non-decreasing prices, within [min_kw, max_kw]."""

    offer_id: str
    segments: tuple[tuple[float, float], ...]
    min_kw: float = 0.0
    max_kw: float = math.inf


def _units(order: int, bid: Bid, lmp: float) -> list[tuple[float, int, int, float, bool]]:
    """The bid's eligible quantity as (price, offer order, position, kW, is the minimum block): a minimum is one
    block at the price of the segment that reaches it; what is left of the curve follows in its own segments."""
    eligible, room = [], bid.max_kw
    for kw, price in bid.segments:
        kw = min(kw, room)
        if kw <= 0 or price > lmp:
            break  # prices rise along a curve: nothing after this is eligible either
        eligible.append((kw, price))
        room -= kw
    if sum(kw for kw, _ in eligible) + 1e-9 < bid.min_kw:
        return []
    units, taken = [], 0.0
    for n, (kw, price) in enumerate(eligible):
        if taken < bid.min_kw:
            inside = min(kw, bid.min_kw - taken)
            taken += inside
            kw -= inside
            if taken >= bid.min_kw:
                units.append((price, order, n, bid.min_kw, True))
        if kw > 1e-9:
            units.append((price, order, n, kw, False))
    return units


def clear_interval(bids: list[Bid], *, lmp: float, need_kw: float) -> dict[str, float]:
    """kW cleared per offer id (offers clearing nothing are left out), rounded down to watts."""
    units = [unit for order, bid in enumerate(bids) for unit in _units(order, bid, lmp)]
    units.sort(key=lambda u: (u[0], u[1], u[2], not u[4]))
    left = need_kw
    cleared = [0.0] * len(bids)
    started = [bid.min_kw <= 0 for bid in bids]
    for _, order, _, kw, block in units:
        if left <= 1e-9:
            break
        if block:
            if kw <= left + 1e-9:
                cleared[order] += kw
                left -= kw
                started[order] = True
            continue
        if not started[order]:
            continue  # its minimum did not fit
        take = min(kw, left)
        cleared[order] += take
        left -= take
    return {bid.offer_id: math.floor(kw * 1000 + 1e-6) / 1000 for bid, kw in zip(bids, cleared, strict=True) if kw > 0}
