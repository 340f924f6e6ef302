"""Offers to award: a registered resource of generators, submitted offers made as rows (the offer builder's work is
not under test here), their JSON form as an adapter sends it, and the market's token."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from aggregator.aggregation import services as aggregation
from aggregator.aggregation.models import ResourceMembership, VirtualResource
from aggregator.core.access import tokens
from aggregator.market.models import Forecast, Offer, OfferInterval
from aggregator.market.wire import OfferWire, offer_ref
from dispatch.models import MarketCredential
from tests.factories import GENERATOR, ProgramFactory, active_device, market

HOUR = timedelta(hours=1)


@pytest.fixture
def energy_program(db):
    return ProgramFactory(service="energy")


@pytest.fixture
def make_resource(energy_program):
    """make_resource(generators=4, program=...) -> a registered resource of 50 kW generators (PJM, PECO_N001)."""

    def make(*, generators: int = 4, program=None):
        program = program or energy_program
        devices = [active_device(program, **GENERATOR) for _ in range(generators)]
        resource = aggregation.create_resource(
            market=program.market,
            program=program,
            name=f"vr-{program.code}-{VirtualResource.objects.count()}",
            scope_kind="pricing_node",
            scope="PECO_N001",
            by="test",
        )
        ResourceMembership.objects.bulk_create(ResourceMembership(resource=resource, device=d) for d in devices)
        VirtualResource.objects.filter(pk=resource.pk).update(
            state="registered", market_resource_id=f"PJM-{resource.pk}"
        )
        resource.refresh_from_db()
        return resource

    return make


@pytest.fixture
def make_offer():
    """make_offer(resource, start, hours=..., segments=..., ...) -> a submitted offer with one interval per step."""

    def make(
        resource,
        start: datetime,
        *,
        hours: float | None = None,
        end: datetime | None = None,
        interval_minutes: int = 60,
        market_kind: str = "day_ahead",
        segments=((100, 40), (50, 90)),
        min_kw=0,
        max_kw=150,
        state: str = "submitted",
        version: int = 1,
        deadline: datetime | None = None,
    ) -> Offer:
        start = start.astimezone(UTC)
        end = (end or start + timedelta(hours=hours or 24)).astimezone(UTC)
        step = timedelta(minutes=interval_minutes)
        starts = []
        at = start
        while at < end:
            starts.append(at)
            at += step
        forecast = Forecast.objects.create(
            resource=resource,
            kind="hourly",
            model="nameplate",
            issued_at=start - timedelta(days=1),
            start=start,
            interval_minutes=interval_minutes,
            expected_kw=[200.0] * len(starts),
            p10_kw=[150.0] * len(starts),
            p50_kw=[200.0] * len(starts),
            p90_kw=[220.0] * len(starts),
        )
        offer = Offer.objects.create(
            resource=resource,
            market_kind=market_kind,
            window_start=start,
            window_end=end,
            interval_minutes=interval_minutes,
            version=version,
            forecast=forecast,
            quantile="p10",
            deadline=deadline or start - timedelta(hours=12),
            built_by_label="test",
        )
        Offer.objects.filter(pk=offer.pk).update(state=state)
        offer.refresh_from_db()
        OfferInterval.objects.bulk_create(
            OfferInterval(
                offer=offer,
                start=s,
                min_kw=Decimal(str(min_kw)),
                max_kw=Decimal(str(max_kw)),
                segments=[list(seg) for seg in segments],
                ramp_kw_per_minute=Decimal(100),
            )
            for s in starts
        )
        return offer

    return make


def ref(offer: Offer) -> str:
    return offer_ref(offer.pk, offer.version)


def wire_of(offer: Offer) -> OfferWire:
    """The offer's JSON form, as the offer side submits it through an adapter."""
    return {
        "offer_id": ref(offer),
        "market": offer.resource.market.code,
        "resource": offer.resource.market_resource_id,
        "market_kind": offer.market_kind,
        "window_start": offer.window_start.isoformat(),
        "window_end": offer.window_end.isoformat(),
        "interval_minutes": offer.interval_minutes,
        "deadline": offer.deadline.isoformat(),
        "intervals": [
            {
                "start": i.start.isoformat(),
                "min_kw": float(i.min_kw),
                "max_kw": float(i.max_kw),
                "ramp_kw_per_minute": float(i.ramp_kw_per_minute),
                "notification_minutes": i.notification_minutes,
                "min_run_minutes": i.min_run_minutes,
                "max_run_minutes": i.max_run_minutes,
                "segments": i.segments,
            }
            for i in offer.intervals.order_by("start")
        ],
    }


def award_body(offer: Offer, intervals, *, award_id: str = "DA-1", market_kind: str | None = None) -> dict:
    """An award of `offer`: intervals as (start, kw, price), each one offer interval long (in UTC: on a DST day a
    local hour added to a local time is not an hour)."""
    step = timedelta(minutes=offer.interval_minutes)
    return {
        "award_id": award_id,
        "offer_id": ref(offer),
        "resource": offer.resource.market_resource_id,
        "market_kind": market_kind or offer.market_kind,
        "intervals": [
            {"start": s.isoformat(), "end": (s.astimezone(UTC) + step).isoformat(), "kw": kw, "price_per_mwh": price}
            for s, kw, price in intervals
        ],
    }


def market_client(code: str = "PJM", *, source: str = "market_instruction") -> APIClient:
    issued = tokens.issue("mkt")
    MarketCredential.objects.create(market=market(code), source=source, key_id=issued.key_id, digest=issued.digest)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


def tomorrow_at(hour: int) -> datetime:
    """An hour of tomorrow in UTC (a window that is still to come)."""
    return (datetime.now(UTC) + timedelta(days=1)).replace(hour=hour, minute=0, second=0, microsecond=0)
