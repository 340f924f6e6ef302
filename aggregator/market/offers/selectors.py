"""Reads for offers: a market's rules as plain values, the latest forecasts, and what a kW of each resource costs
its customers, loaded for every resource of a build at once (one query per input, never one per resource).

Cost inputs per resource (see aggregator.market.offers.curve for how they price a kW):
- members: the devices in the resource at any time in the window (ResourceMembership), with their rated kW,
  round-trip efficiency, notice, minimum run and maximum event length;
- stored-energy value: each battery plan's value_per_kwh (dispatch.DeviceSchedule) averaged per offer interval
  over the plan steps that start in it (one query for the plans, numpy for the averages: unnesting every step in
  SQL and grouping was ten times slower at 10,000 plans);
- opt-out rate: events a device opted out of (DeviceOptOut against an event, storm watches excluded) over the
  events it was allocated kW in (Allocation allocated or opted out), over the last OFFER_OPT_OUT_LOOKBACK_DAYS;
- payout: the program's settlement terms (revenue share when a program has none, at 0 %).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet

from aggregator.aggregation.models import ResourceMembership, VirtualResource
from aggregator.market.models import Forecast, Offer
from aggregator.market.offers.curve import Payout
from aggregator.market.offers.deadlines import DeadlineRule
from aggregator.reference import holidays as holiday_calendars
from aggregator.reference.models import Market, NetBenefitsPrice, OfferDeadline, Program
from dispatch.models import Allocation, DeviceOptOut
from settlement.models import SettlementTerms


def deadline_rules(market: Market) -> list[DeadlineRule]:
    return [
        DeadlineRule(
            market_kind=row.market_kind,
            day_type=row.day_type,
            local_time=row.local_time,
            days_before=row.days_before,
            minutes_before=row.minutes_before,
            time_zone=row.time_zone,
        )
        for row in OfferDeadline.objects.filter(market=market)
    ]


def market_holidays(market: Market, *, first: date, last: date) -> set[date]:
    """The market's holidays (reference.holidays); none for a market without a calendar."""
    try:
        return set(holiday_calendars.holidays_between(market=market.code, first=first, last=last))
    except holiday_calendars.UnknownCalendar:
        return set()


def net_benefits_price(market: Market, *, at: datetime) -> float | None:
    """The market's NBT price for the month `at` falls in (market time), or None when none is loaded."""
    local = at.astimezone(ZoneInfo(market.time_zone)).date().replace(day=1)
    row = NetBenefitsPrice.objects.filter(market=market, month=local).values_list("price_per_mwh", flat=True).first()
    return None if row is None else float(row)


def is_demand_response(program: Program, terms: SettlementTerms | None) -> bool:
    """Order 745 applies: the program is demand response, or its settlement terms apply the net-benefits test."""
    return program.service == Program.Service.DEMAND_RESPONSE or bool(terms and terms.net_benefits_test)


def latest_forecasts(*, resource_ids: list[int], kind: str, as_of: datetime) -> dict[int, Forecast]:
    """Each resource's latest forecast of `kind` issued at or before `as_of` (one DISTINCT ON query)."""
    rows = (
        Forecast.objects.filter(resource_id__in=resource_ids, kind=kind, issued_at__lte=as_of)
        .order_by("resource_id", "-issued_at", "-id")
        .distinct("resource_id")
    )
    return {f.resource_id: f for f in rows}


def latest_versions(*, resource_ids: list[int], market_kind: str, window_start: datetime) -> dict[int, Offer]:
    rows = (
        Offer.objects.filter(resource_id__in=resource_ids, market_kind=market_kind, window_start=window_start)
        .order_by("resource_id", "-version")
        .distinct("resource_id")
    )
    return {o.resource_id: o for o in rows}


def payout_of(terms: SettlementTerms | None, program: Program) -> Payout:
    hours = float(program.typical_event_hours)
    if terms is None:
        return Payout(rule="revenue_share", value=0.0, fee_pct=0.0, event_hours=hours)
    return Payout(
        rule=terms.sharing_rule,
        value=float(terms.sharing_value),
        fee_pct=float(terms.fee_pct),
        event_hours=hours,
    )


def settlement_terms(program_ids: set[int]) -> dict[int, SettlementTerms]:
    return {t.program_id: t for t in SettlementTerms.objects.filter(program_id__in=program_ids)}


@dataclass
class CostInputs:
    """One resource's member devices as arrays (device order is `device_ids`)."""

    device_ids: list[int] = field(default_factory=list)
    kw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stored_value_per_kwh: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    round_trip_efficiency: np.ndarray = field(default_factory=lambda: np.zeros(0))
    opt_out_rate: np.ndarray = field(default_factory=lambda: np.zeros(0))
    notification_minutes: int = 0
    min_run_minutes: int = 0
    max_event_minutes: int | None = None


_PLANS = """
SELECT s.device_id, s.start, s.step_seconds, s.value_per_kwh
FROM dispatch_deviceschedule s
JOIN aggregator_resourcemembership m ON m.device_id = s.device_id
WHERE m.resource_id = ANY(%(resources)s) AND m.joined_at < %(end)s AND (m.left_at IS NULL OR m.left_at > %(start)s)
  AND s.start < %(end)s AND s.start > %(start)s - interval '2 days' AND cardinality(s.value_per_kwh) > 0
ORDER BY s.device_id, s.start
"""


def _plan_values(rows, *, start: datetime, width: int, intervals: int) -> dict[int, np.ndarray]:
    """Each device's plan value per offer interval: the mean of the plan steps starting in it (NaN where none; a
    later plan of the same device fills the intervals an earlier one left)."""
    found: dict[int, np.ndarray] = {}
    for device_id, plan_start, step, values in rows:
        prices = np.asarray(values, dtype=float)
        offsets = (plan_start - start).total_seconds() + np.arange(prices.size) * step
        slots = np.floor(offsets / width).astype(int)
        inside = (offsets >= 0) & (slots < intervals) & np.isfinite(prices)
        if not inside.any():
            continue
        counts = np.bincount(slots[inside], minlength=intervals)
        sums = np.bincount(slots[inside], weights=prices[inside], minlength=intervals)
        mean = np.divide(sums, counts, out=np.full(intervals, np.nan), where=counts > 0)
        previous = found.get(device_id)
        found[device_id] = mean if previous is None else np.where(np.isnan(previous), mean, previous)
    return found


def cost_inputs(
    *, resource_ids: list[int], start: datetime, end: datetime, interval_minutes: int, as_of: datetime
) -> dict[int, CostInputs]:
    """Every resource's cost inputs over [start, end) in intervals of `interval_minutes`, four queries in all."""
    intervals = int((end - start).total_seconds() // (interval_minutes * 60))
    members = (
        ResourceMembership.objects.filter(resource_id__in=resource_ids, joined_at__lt=end)
        .filter(Q(left_at__isnull=True) | Q(left_at__gt=start))
        .order_by("resource_id", "device_id")
        .values_list(
            "resource_id",
            "device_id",
            "device__rated_kw",
            "device__round_trip_efficiency_pct",
            "device__notice_minutes",
            "device__min_run_minutes",
            "device__max_event_hours",
        )
    )
    by_resource: dict[int, list[tuple]] = defaultdict(list)
    device_ids: list[int] = []
    for row in members:
        by_resource[row[0]].append(row)
        device_ids.append(row[1])

    with connection.cursor() as cursor:
        cursor.execute(_PLANS, {"resources": list(resource_ids), "start": start, "end": end})
        stored = _plan_values(cursor.fetchall(), start=start, width=interval_minutes * 60, intervals=intervals)

    since = as_of - timedelta(days=settings.MARKET_OFFER_OPT_OUT_LOOKBACK_DAYS)
    member_devices = ResourceMembership.objects.filter(resource_id__in=resource_ids).values("device_id")
    allocated = dict(
        Allocation.objects.filter(
            device_id__in=member_devices,
            event__start__gte=since,
            event__start__lt=as_of,
            reason__in=[Allocation.Reason.ALLOCATED, Allocation.Reason.OPTED_OUT],
        )
        .values("device_id")
        .annotate(n=Count("id"))
        .values_list("device_id", "n")
    )
    opted_out = dict(
        DeviceOptOut.objects.filter(
            device_id__in=member_devices,
            event__isnull=False,
            storm_watch__isnull=True,
            event__start__gte=since,
            event__start__lt=as_of,
        )
        .values("device_id")
        .annotate(n=Count("event_id", distinct=True))
        .values_list("device_id", "n")
    )

    result: dict[int, CostInputs] = {}
    for resource_id in resource_ids:
        rows = by_resource.get(resource_id, [])
        n = len(rows)
        missing = np.full(intervals, np.nan)
        values = np.array([stored.get(r[1], missing) for r in rows]).reshape(n, intervals)
        rates = np.array(
            [min(opted_out.get(r[1], 0) / allocated[r[1]], 1.0) if allocated.get(r[1]) else 0.0 for r in rows]
        )
        # The resource runs as long as its longest-running member (a member without a limit: no limit).
        unlimited = any(r[6] is None for r in rows)
        result[resource_id] = CostInputs(
            device_ids=[r[1] for r in rows],
            kw=np.array([float(r[2]) for r in rows]),
            stored_value_per_kwh=values,
            round_trip_efficiency=np.array([float(r[3]) / 100 if r[3] is not None else np.nan for r in rows]),
            opt_out_rate=rates if n else np.zeros(0),
            notification_minutes=max((r[4] or 0 for r in rows), default=0),
            min_run_minutes=max((r[5] or 0 for r in rows), default=0),
            max_event_minutes=None if unlimited or not rows else int(max(float(r[6]) for r in rows) * 60),
        )
    return result


def offers(
    *,
    resource: int | None = None,
    market_kind: str | None = None,
    state: str | None = None,
    window_from: datetime | None = None,
    window_to: datetime | None = None,
) -> QuerySet[Offer]:
    """Offers for the operator API, newest window first; `window_from`/`window_to` bound window_start."""
    rows = Offer.objects.select_related("resource__market", "resource__program", "forecast")
    if resource is not None:
        rows = rows.filter(resource_id=resource)
    if market_kind:
        rows = rows.filter(market_kind=market_kind)
    if state:
        rows = rows.filter(state=state)
    if window_from is not None:
        rows = rows.filter(window_start__gte=window_from)
    if window_to is not None:
        rows = rows.filter(window_start__lt=window_to)
    return rows.order_by("-window_start", "resource_id", "-version")


def offering_resources(market: Market) -> QuerySet[VirtualResource]:
    """The resources beat builds offers for: registered with the market (registered or active)."""
    return VirtualResource.objects.filter(market=market, state__in=["registered", "active"]).select_related(
        "market", "program"
    )
