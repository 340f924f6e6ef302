"""Is a customer baseline accurate enough for a site? PJM's relative root-mean-square error test.

Each test day in the period is treated as if it had an event over the test hours: the method's baseline for
those hours (its own rules: like days, adjustment, exclusions) is compared with what the site actually used.
Over every test interval of every test day,

    rRMSE = sqrt(mean((actual - baseline)^2)) / mean(actual)

and the baseline passes when rRMSE <= the threshold (PJM: 20%; a site that fails settles by another method).
Days with an event, holidays, and days the method gives no baseline for are not test days (listed with why).
"""

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from math import sqrt

import numpy as np

from aggregator.reference.holidays import UnknownCalendar, holidays_between
from settlement.baselines import compute_baseline
from settlement.baselines.errors import BaselineError
from settlement.baselines.results import BASELINE_UNAVAILABLE
from settlement.baselines.timeline import IntervalReadings, zone

DAY_KINDS = ("weekdays", "all")


@dataclass(frozen=True)
class DayError:
    day: date
    baseline_kw: float  # mean over the test hours
    actual_kw: float
    rmse_kw: float


@dataclass
class AccuracyReport:
    method: str
    hours: tuple[int, int]
    threshold_pct: float
    days: list[DayError] = field(default_factory=list)
    skipped: dict[date, str] = field(default_factory=dict)
    intervals: int = 0
    rmse_kw: float | None = None
    mean_actual_kw: float | None = None

    @property
    def rrmse_pct(self) -> float | None:
        if self.rmse_kw is None or not self.mean_actual_kw:
            return None
        return 100.0 * self.rmse_kw / self.mean_actual_kw

    @property
    def passed(self) -> bool:
        return self.rrmse_pct is not None and self.rrmse_pct <= self.threshold_pct


def baseline_accuracy(
    *,
    method: str,
    readings: IntervalReadings,
    first: date,
    last: date,
    hours: tuple[int, int],
    time_zone: str,
    market: str | None,
    params: Mapping | None = None,
    event_days: Iterable[date] = frozenset(),
    holidays: Container[date] | None = None,
    days: str = "weekdays",
    threshold_pct: float = 20.0,
) -> AccuracyReport:
    """The rRMSE of `method` for one site's readings over the test days first..last (see the module docstring)."""
    if last < first:
        raise BaselineError("invalid_period", "The period ends before it starts.", "last")
    if (last - first).days > 366:
        raise BaselineError("invalid_period", "At most a year of test days.", "last")
    if not (isinstance(hours, tuple) and len(hours) == 2 and 0 <= hours[0] < hours[1] <= 24):
        raise BaselineError(
            "invalid_param", "Test hours are [from, to) local whole hours, 0 <= from < to <= 24.", "hours"
        )
    if days not in DAY_KINDS:
        raise BaselineError("invalid_param", f"days is one of {', '.join(DAY_KINDS)}.", "days")
    if not 0 < threshold_pct <= 100:
        raise BaselineError("invalid_param", "The threshold is a percentage above 0, at most 100.", "threshold")
    tz = zone(time_zone)
    excluded = frozenset(event_days)
    off: Container[date]
    if holidays is None and market is not None:
        try:
            off = holidays_between(market=market, first=first, last=last)
        except UnknownCalendar as unknown:
            raise BaselineError("unknown_market", unknown.problems[0].message, "market") from unknown
    else:
        off = holidays or frozenset()
    report = AccuracyReport(method=method, hours=hours, threshold_pct=threshold_pct)
    errors: list[np.ndarray] = []
    actuals: list[np.ndarray] = []
    day = first
    while day <= last:
        this, day = day, day + timedelta(days=1)
        if days == "weekdays" and this.weekday() >= 5:
            continue
        if this in excluded:
            report.skipped[this] = "event_day"
            continue
        if this in off:
            report.skipped[this] = "holiday"
            continue
        start = datetime.combine(this, time(hours[0]), tz)
        end = datetime.combine(this, time(0), tz) + timedelta(days=1) if hours[1] == 24 else None
        end = end or datetime.combine(this, time(hours[1]), tz)
        result = compute_baseline(
            method=method,
            readings=readings,
            event_start=start,
            event_end=end,
            time_zone=time_zone,
            market=market,
            event_days=excluded,
            holidays=holidays,
            params=params,
        )
        if BASELINE_UNAVAILABLE in result.flags:
            report.skipped[this] = "no_baseline"
            continue
        baseline, actual = result.baseline_kw, result.actual_kw
        known = ~np.isnan(baseline) & ~np.isnan(actual)
        if not known.any():
            report.skipped[this] = "no_readings"
            continue
        diff = actual[known] - baseline[known]
        errors.append(diff)
        actuals.append(actual[known])
        report.days.append(
            DayError(
                this,
                float(baseline[known].mean()),
                float(actual[known].mean()),
                sqrt(float((diff**2).mean())),
            )
        )
    if errors:
        every_error, every_actual = np.concatenate(errors), np.concatenate(actuals)
        report.intervals = int(every_error.size)
        report.rmse_kw = sqrt(float((every_error**2).mean()))
        report.mean_actual_kw = float(every_actual.mean())
    return report
