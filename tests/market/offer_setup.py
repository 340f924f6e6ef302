"""Data for the offer tests: a resource with member devices, battery plans, payout terms and forecasts."""

import itertools
from datetime import datetime, timedelta
from decimal import Decimal

from aggregator.aggregation.models import ResourceMembership, VirtualResource
from aggregator.market.models import Forecast
from dispatch.models import DeviceSchedule
from settlement.models import SettlementTerms
from tests.factories import DeviceFactory, ProgramFactory, SiteFactory, market

_names = itertools.count(1)


def program_with_terms(
    code: str = "PJM",
    *,
    service: str = "energy",
    share: float = 50,
    rule: str = "revenue_share",
    nbt_test: bool = False,
    **program_kwargs,
):
    program = ProgramFactory(market=market(code), service=service, **program_kwargs)
    SettlementTerms.objects.create(
        program=program,
        baseline_method="metered-device-output",
        sharing_rule=rule,
        sharing_value=Decimal(str(share)),
        fee_pct=0,
        net_benefits_test=nbt_test,
    )
    return program


def resource_with(program, devices: list[dict], *, joined_at: datetime, state: str = "active") -> VirtualResource:
    """A resource of `program` whose members are `devices` (DeviceFactory keyword arguments each)."""
    resource = VirtualResource.objects.create(
        name=f"Resource {next(_names)}",
        market=program.market,
        program=program,
        participation_model=program.service,
        scope="PECO_N001",
        state=state,
        market_resource_id=f"DER-{next(_names):04d}",
    )
    for spec in devices:
        site = SiteFactory(market=program.market, time_zone=program.market.time_zone)
        device = DeviceFactory(site=site, **spec)
        ResourceMembership.objects.create(resource=resource, device=device, joined_at=joined_at)
    return resource


def plan(device, *, start: datetime, value_per_kwh: float, steps: int = 100, step_seconds: int = 900):
    """A battery plan from `start` whose stored kWh is worth `value_per_kwh` at every step."""
    return DeviceSchedule.objects.create(
        device=device,
        day=start.date(),
        start=start,
        step_seconds=step_seconds,
        kw=[0.0] * steps,
        energy_kwh=[5.0] * steps,
        reserve_kwh=2.0,
        value_per_kwh=[value_per_kwh] * steps,
        site_cost=Decimal("1"),
        site_cost_without=Decimal("2"),
    )


def forecast(
    resource,
    *,
    start: datetime,
    issued_at: datetime,
    p10: float | list[float],
    hours: int = 48,
    interval_minutes: int = 60,
    kind: str = "hourly",
) -> Forecast:
    steps = hours * 60 // interval_minutes
    p10_values = list(p10) if isinstance(p10, list) else [float(p10)] * steps
    return Forecast.objects.create(
        resource=resource,
        kind=kind,
        model="learned",
        issued_at=issued_at,
        start=start,
        interval_minutes=interval_minutes,
        expected_kw=[v * 1.5 for v in p10_values],
        p10_kw=p10_values,
        p50_kw=[v * 1.4 for v in p10_values],
        p90_kw=[v * 2 for v in p10_values],
    )


def an_hour_before(at: datetime) -> datetime:
    return at - timedelta(hours=1)
