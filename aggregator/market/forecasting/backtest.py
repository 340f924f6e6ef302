"""Backtest over stored history: forecasts issued as of past instants, from what was known before them, scored
against what the load-type members then read.

Hourly: one issue at each local midnight (the market's clock) of the last `days` days whose 48 hours the rollup
has, scored per horizon bucket (1-6, 7-12, 13-24, 25-48 h ahead). Real-time: issues at 00:00, 06:00, 12:00 and
18:00 local on the same days, each measured (the nowcast) from the readings of the real-time interval just before
it, scored per step ahead; it needs device readings no longer than the real-time interval. What is scored is the
load-type part (batteries' and generators' kW is not observable in readings). An hour counts when every group
with members read in it; its truth is each group's load factor then x the same scale the forecast used.

Scores per model (learned, persistence, nameplate): MAPE over intervals whose truth is above zero, bias (forecast
- truth, kW) and the pinball loss averaged over P10, P50 and P90 (kW). The nameplate model has no band: its
quantiles are its value. Nameplate uses the devices as they are recorded today (it has no history of them).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from django.db.models import Max

from aggregator.core.errors import DomainError, Problem
from aggregator.market.forecasting import core, history, services
from aggregator.market.forecasting.rollup import LOAD_TYPES
from aggregator.market.models import Forecast, ForecastRollupHour

HOURLY_BUCKETS = ((1, 6), (7, 12), (13, 24), (25, 48))
REAL_TIME_ISSUE_HOURS = (0, 6, 12, 18)
MODELS = (Forecast.Model.LEARNED, Forecast.Model.PERSISTENCE, Forecast.Model.NAMEPLATE)


class NoHistory(DomainError):
    status = 422


@dataclass
class Collected:
    actual: list[np.ndarray] = field(default_factory=list)
    expected: list[np.ndarray] = field(default_factory=list)
    quantiles: list[np.ndarray] = field(default_factory=list)

    def add(self, actual: np.ndarray, series: services.Series, rows: np.ndarray) -> None:
        self.actual.append(actual[rows])
        self.expected.append(series.expected[rows])
        self.quantiles.append(np.stack([series.p10, series.p50, series.p90], axis=1)[rows])

    def score(self) -> core.Scores:
        if not self.actual:
            return core.Scores(0, float("nan"), float("nan"), float("nan"))
        return core.score(np.concatenate(self.actual), np.concatenate(self.expected), np.concatenate(self.quantiles))


@dataclass
class Report:
    resources: int
    issues: list[datetime]
    hourly: dict[str, dict[str, core.Scores]]  # bucket -> model -> scores
    real_time: dict[str, dict[str, core.Scores]]
    real_time_note: str = ""


def _truth(resource_ids: list[int], start: datetime, hours: int) -> dict[tuple[int, int], np.ndarray]:
    """(resource, load type index) -> load factor by hour from `start` (NaN where none)."""
    r_id, type_code, hour, load_factor, _ = history.rollup_history(
        resource_ids=resource_ids, start=start, end=start + timedelta(hours=hours)
    )
    out: dict[tuple[int, int], np.ndarray] = {}
    for r, t, h, v in zip(r_id.tolist(), type_code.tolist(), hour.tolist(), load_factor.tolist(), strict=True):
        j = int(services.LOAD_INDEX[t])
        if j >= 0:
            out.setdefault((r, j), np.full(hours, np.nan))[h] = v
    return out


def _actual_kw(result: services.ResourceForecast, truth: dict, n: int, pick=lambda a: a) -> np.ndarray:
    total = np.zeros(n)
    for j, scale in result.scales.items():
        lf = truth.get((result.resource_id, j))
        if lf is None or not np.any(pick(scale) > 0):
            continue
        total = total + lf * pick(scale)  # NaN where the group did not read
    if not result.scales:
        return np.full(n, np.nan)
    return total


def run_backtest(*, resource_ids: list[int] | None = None, days: int = 14) -> Report:
    """Score the learned forecast and its baselines over the last `days` days of stored history."""
    rollup = ForecastRollupHour.objects.all()
    if resource_ids:
        rollup = rollup.filter(resource_id__in=resource_ids)
    latest = rollup.aggregate(last=Max("hour"))["last"]
    if latest is None:
        raise NoHistory(
            Problem(
                "no_history", "No rolled-up readings to backtest on: run the rollup after readings arrive.", "resource"
            )
        )
    ids = sorted(set(rollup.values_list("resource_id", flat=True)))
    resources = services.VirtualResource.objects.filter(pk__in=ids).select_related("market")
    zone = ZoneInfo(resources[0].market.time_zone)
    end = latest + timedelta(hours=1)
    last_day = end.astimezone(zone).date()
    issues = []
    for back in range(days, 0, -1):
        day = last_day - timedelta(days=back)
        issues.append(datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC))
    hourly: dict[str, dict[str, Collected]] = defaultdict(lambda: defaultdict(Collected))
    real_time: dict[str, dict[str, Collected]] = defaultdict(lambda: defaultdict(Collected))
    minutes = resources[0].market.real_time_interval_minutes
    seconds = minutes * 60
    loads_start = issues[0] - timedelta(seconds=seconds) if issues else end
    rt_resource, rt_type, rt_slot, rt_lf = history.interval_loads(
        resource_ids=ids, start=loads_start, end=end, seconds=seconds, load_types=LOAD_TYPES
    )
    slots = int((end - loads_start).total_seconds() // seconds) + 1
    interval_lf: dict[tuple[int, int], np.ndarray] = {}
    for r, t, s, v in zip(rt_resource.tolist(), rt_type.tolist(), rt_slot.tolist(), rt_lf.tolist(), strict=True):
        j = int(services.LOAD_INDEX[t])
        if j >= 0 and 0 <= s < slots:
            interval_lf.setdefault((r, j), np.full(slots, np.nan))[s] = v
    scored_real_time = False

    for issue in issues:
        run = services.load_run(resource_ids=ids, now=issue, backtest=True)
        results = services.compute(run)
        truth = _truth(ids, run.start, services.HOURS)
        horizon = np.arange(1, services.HOURS + 1)
        for result in results:
            actual = _actual_kw(result, truth, services.HOURS)
            for lo, hi in HOURLY_BUCKETS:
                rows = (horizon >= lo) & (horizon <= hi) & np.isfinite(actual)
                for model in MODELS:
                    hourly[f"{lo}-{hi} h"][model].add(actual, result.hourly[model], rows)

        for hour in REAL_TIME_ISSUE_HOURS if interval_lf else ():
            at = issue + timedelta(hours=hour)
            if at >= end:
                continue
            before = int((at - loads_start).total_seconds() // seconds) - 1
            nowcast = np.full(len(ids) * len(LOAD_TYPES), np.nan)
            for (r, j), series in interval_lf.items():
                nowcast[ids.index(r) * len(LOAD_TYPES) + j] = series[before] if before >= 0 else np.nan
            rt_run = services.load_run(resource_ids=ids, now=at, backtest=True)
            rt_results = services.compute(rt_run, nowcast_load_factor=nowcast)
            instants = services.real_time_instants(at, minutes)
            first = int((instants[0] - loads_start).total_seconds() // seconds)
            for result in rt_results:
                n = len(instants)
                lf_by_type = {
                    (result.resource_id, j): interval_lf.get((result.resource_id, j), np.full(slots, np.nan))[
                        first : first + n
                    ]
                    for j in result.scales
                }
                hour_index = np.array([int((t - rt_run.start) / timedelta(hours=1)) for t in instants])
                actual = _actual_kw(result, lf_by_type, n, pick=lambda a, h=hour_index: a[h])
                for step in range(n):
                    rows = np.zeros(n, dtype=bool)
                    rows[step] = np.isfinite(actual[step])
                    if not rows.any():
                        continue
                    scored_real_time = True
                    label = f"+{(step + 1) * minutes} min"
                    for model in (Forecast.Model.LEARNED, Forecast.Model.PERSISTENCE):
                        real_time[label][model].add(actual, result.real_time[model], rows)

    def scored(table):
        return {bucket: {model: c.score() for model, c in by_model.items()} for bucket, by_model in table.items()}

    return Report(
        resources=len(ids),
        issues=issues,
        hourly=scored(hourly),
        real_time=scored(real_time),
        real_time_note="" if scored_real_time else f"no device readings at {minutes}-minute resolution to score",
    )
