"""Resources, members and heartbeats for the telemetry tests (plain functions, shared by their modules)."""

import itertools
from datetime import UTC, datetime
from decimal import Decimal

from aggregator.aggregation import services as aggregation
from aggregator.aggregation.models import ResourceMembership, VirtualResource
from aggregator.reference.models import Market
from enrollment.models import Device, DeviceStatus
from tests.factories import DeviceFactory, ProgramFactory, SiteFactory

_names = itertools.count(1)
JOINED = datetime(2026, 1, 1, tzinfo=UTC)  # before every instant the tests scan


def set_rules(market: Market, *, scan_seconds: int = 10, min_pct: str = "75") -> Market:
    Market.objects.filter(pk=market.pk).update(
        telemetry_scan_seconds=scan_seconds, telemetry_min_reporting_pct=Decimal(min_pct)
    )
    market.refresh_from_db()
    return market


def resource(
    market: Market, *, members: int = 0, interval_seconds: int = 5, state: str = "registered"
) -> tuple[VirtualResource, list[Device]]:
    """A resource of `market` in `state` with `members` batteries (reporting every `interval_seconds`)."""
    number = next(_names)
    program = ProgramFactory(market=market)
    created = aggregation.create_resource(
        market=market,
        program=program,
        name=f"telemetry-{number}",
        scope_kind="pricing_node",
        scope="PECO_N001",
        by="test",
    )
    site = SiteFactory(market=market, time_zone=market.time_zone)
    devices = [DeviceFactory(site=site, telemetry_interval_seconds=interval_seconds) for _ in range(members)]
    ResourceMembership.objects.bulk_create(
        ResourceMembership(resource=created, device=d, joined_at=JOINED) for d in devices
    )
    VirtualResource.objects.filter(pk=created.pk).update(state=state, market_resource_id=f"{market.code}-DER-{number}")
    created.refresh_from_db()
    return created, devices


def heartbeat(device: Device, *, at: datetime, kw: str | None, online: bool = True, grid_status: str = "") -> None:
    """The device's latest status, as the heartbeat leaves it."""
    DeviceStatus.objects.update_or_create(
        device=device,
        defaults={
            "online": online,
            "last_seen_at": at,
            "power_kw": None if kw is None else Decimal(kw),
            "grid_status": grid_status,
        },
    )
