"""Capacity as markets pay it: a month's statement of a resource's capacity commitment.

- Payment: accredited kW at the commitment's rate for the days of the month inside the commitment period:
  $/MW-day x MW x days, or $/kW-month x kW x (days / days in the month).
- Performance, in each interval of each event that started in the month (market time), from the event's
  latest settlement run, summed over the resource (the market measures the registration, not each site):
  - ``baseline``: delivered = the run's reduction; committed = accredited kW x interval hours;
  - ``firm_service_level`` (PJM load management, FSL): per site with its numbers, delivered = (PLC - actual
    load) x hours, committed = (PLC - FSL) x hours: a site holding its load at its FSL delivers exactly;
  - ``guaranteed_load_drop`` (GLD): per site, delivered = the run's reduction, committed = GLD x hours.
  Shortfall = committed - delivered where positive; the non-performance charge is shortfall MWh x the
  commitment's $/MWh, per interval.
- Test events (an operator's capability test) are measured the same way and reported as passed or failed
  over the whole event; they carry no non-performance charge.

Money is exact until each statement line, rounded once to the cent (settlement.money).
"""

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from dispatch.models import DispatchEvent
from settlement.models import CapacityCommitment, SettlementRun, SiteCapacity, SiteSettlement
from settlement.money import cents

THOUSAND = Decimal(1000)


@dataclass(frozen=True)
class IntervalPerformance:
    start: datetime
    committed_kwh: Decimal
    delivered_kwh: Decimal
    shortfall_kwh: Decimal
    charge: Decimal  # exact $


@dataclass
class EventPerformance:
    event_id: int
    run_version: int | None
    test: bool
    intervals: list[IntervalPerformance] = field(default_factory=list)

    @property
    def committed_kwh(self) -> Decimal:
        return sum((i.committed_kwh for i in self.intervals), Decimal(0))

    @property
    def delivered_kwh(self) -> Decimal:
        return sum((i.delivered_kwh for i in self.intervals), Decimal(0))

    @property
    def passed(self) -> bool:
        return bool(self.intervals) and self.delivered_kwh >= self.committed_kwh

    @property
    def charge(self) -> Decimal:
        """The event's non-performance charge as a statement line (0 for a test)."""
        return Decimal("0.00") if self.test else cents(sum((i.charge for i in self.intervals), Decimal(0)))


@dataclass
class CapacityStatement:
    commitment: CapacityCommitment
    month: date
    days: int
    payment: Decimal
    events: list[EventPerformance]
    unsettled_events: list[int]  # events in the month without a settlement run yet

    @property
    def charges(self) -> Decimal:
        return sum((e.charge for e in self.events), Decimal(0))

    @property
    def net(self) -> Decimal:
        return self.payment - self.charges


def _payment(commitment: CapacityCommitment, month: date) -> tuple[int, Decimal]:
    last = month.replace(day=calendar.monthrange(month.year, month.month)[1])
    first_day, last_day = max(month, commitment.period_start), min(last, commitment.period_end)
    days = max((last_day - first_day).days + 1, 0)
    if commitment.rate_unit == CapacityCommitment.RateUnit.MW_DAY:
        amount = commitment.accredited_kw / THOUSAND * commitment.rate * days
    else:
        amount = commitment.accredited_kw * commitment.rate * Decimal(days) / Decimal(last.day)
    return days, cents(amount)


def _interval_hours(rows: list[SiteSettlement], event: DispatchEvent) -> Decimal:
    gaps = {int((b - a).total_seconds()) for row in rows for a, b in zip(row.starts, row.starts[1:])}
    seconds = min(gaps) if gaps else int((event.end - event.start).total_seconds())
    return Decimal(seconds) / 3600


def _performance(
    commitment: CapacityCommitment, event: DispatchEvent, run: SettlementRun, sites: dict[int, SiteCapacity]
) -> EventPerformance:
    rows = list(SiteSettlement.objects.filter(run=run).order_by("site_id", "device_id"))
    hours = _interval_hours(rows, event)
    committed: dict[datetime, Decimal] = {}
    delivered: dict[datetime, Decimal] = {}
    measure = commitment.measurement
    for row in rows:
        terms = sites.get(row.site_id)
        for start, actual_kw, reduction in zip(row.starts, row.actual_kw, row.reduction_kwh):
            committed.setdefault(start, Decimal(0))
            delivered.setdefault(start, Decimal(0))
            if measure == CapacityCommitment.Measurement.BASELINE:
                delivered[start] += reduction
            elif terms is None:
                continue  # a site without its numbers under this commitment is not measured by it
            elif measure == CapacityCommitment.Measurement.FIRM_SERVICE_LEVEL:
                plc, fsl = terms.peak_load_contribution_kw, terms.firm_service_level_kw or Decimal(0)
                committed[start] += (plc - fsl) * hours
                if actual_kw is not None:
                    delivered[start] += (plc - Decimal(repr(actual_kw))) * hours
            else:
                committed[start] += (terms.guaranteed_load_drop_kw or Decimal(0)) * hours
                delivered[start] += reduction
    performance = EventPerformance(
        event_id=event.pk, run_version=run.version, test=event.source == DispatchEvent.Source.OPERATOR_TEST
    )
    for start in sorted(committed):
        owed = (
            commitment.accredited_kw * hours if measure == CapacityCommitment.Measurement.BASELINE else committed[start]
        )
        short = max(owed - delivered[start], Decimal(0))
        performance.intervals.append(
            IntervalPerformance(
                start, owed, delivered[start], short, short / THOUSAND * commitment.non_performance_per_mwh
            )
        )
    return performance


def capacity_statement(commitment: CapacityCommitment, month: date) -> CapacityStatement:
    """The commitment's statement for the month holding `month` (see the module docstring)."""
    month = month.replace(day=1)
    days, payment = _payment(commitment, month)
    zone = ZoneInfo(commitment.resource.market.time_zone)
    first = datetime.combine(month, time(0), zone)
    following = (month + timedelta(days=32)).replace(day=1)
    last = datetime.combine(following, time(0), zone)
    period = (
        datetime.combine(commitment.period_start, time(0), zone),
        datetime.combine(commitment.period_end + timedelta(days=1), time(0), zone),
    )
    events = DispatchEvent.objects.filter(
        resource=commitment.resource,
        start__gte=max(first, period[0]),
        start__lt=min(last, period[1]),
        state__in=["active", "completed"],
    ).order_by("start")
    sites = {s.site_id: s for s in SiteCapacity.objects.filter(commitment=commitment)}
    latest = {
        run.event_id: run
        for run in SettlementRun.objects.filter(event__in=events).order_by("event_id", "-version").distinct("event_id")
    }
    performances, unsettled = [], []
    for event in events:
        run = latest.get(event.pk)
        if run is None:
            unsettled.append(event.pk)
            continue
        performances.append(_performance(commitment, event, run, sites))
    return CapacityStatement(commitment, month, days, payment, performances, unsettled)
