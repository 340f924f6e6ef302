"""A regression baseline for programs that settle by measurement and verification: CalTRACK hourly, as the
`opendsm` package implements it for demand response (its DR meter model: one segment, hour-of-week occupancy
and temperature bins), on the site's load and its weather station's outdoor temperature.

1. Fit on the lookback_days local days before the event day: the load summed to whole hours (an hour with a
   missing reading is left out), each hour with the station's temperature (°F); event days (the caller's
   set) are left out, and so is the event day itself: the model knows only what came before.
2. Fewer than min_days days with data: no baseline (baseline_unavailable, below_min_days).
3. Each event hour's baseline is the model's prediction at that hour's temperature; an interval shorter than
   an hour gets its share. An event hour without a temperature has no baseline (missing_temperature).

Hours are local wall-clock hours for the model (occupancy is by hour of the week), so on a DST day the repeated
hour appears twice and the skipped one not at all. Needs the `mv` extra (opendsm); without it the method is
refused by name.
"""

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from settlement.baselines import results as r
from settlement.baselines.errors import BaselineError
from settlement.baselines.params import CaltrackParams
from settlement.baselines.timeline import IntervalReadings, event_epochs, local_date, zone

MISSING_TEMPERATURE = "missing_temperature"


@dataclass(frozen=True, eq=False)
class RegressionPlan:
    method: str
    params: CaltrackParams
    step: int
    time_zone: str
    event_start: int
    event_end: int
    first: int  # the fit window: [first, event day's midnight)
    last: int
    event_days: frozenset[date]


def plan(
    *,
    method: str,
    params: CaltrackParams,
    step: int,
    event_start: datetime,
    event_end: datetime,
    time_zone: str,
    event_days: frozenset[date] = frozenset(),
    **_calendar: object,
) -> RegressionPlan:
    tz = zone(time_zone)
    s, e = event_epochs(event_start, event_end, tz)
    if s % step or e % step:
        raise BaselineError("off_grid", f"The event must start and end on the {step // 60}-minute grid.", "event_start")
    day = local_date(s, tz)
    midnight = datetime.combine(day, time(0), tz)
    first = midnight - timedelta(days=params.lookback_days)
    return RegressionPlan(
        method, params, step, time_zone, s, e, int(first.timestamp()), int(midnight.timestamp()), frozenset(event_days)
    )


def _model() -> tuple[Any, Any, Any]:
    try:
        from opendsm.drmeter.models.caltrack import BaselineData, Model, ReportingData
    except ImportError as missing:  # the mv extra is not installed
        raise BaselineError(
            "method_unavailable",
            "caltrack-hourly needs the opendsm package: install the project with its mv extra.",
            "method",
        ) from missing
    return Model, BaselineData, ReportingData


def _hourly(readings: IntervalReadings, first: int, last: int, step: int) -> dict[int, float]:
    """Hour start -> kWh for the hours in [first, last) that every reading of covers."""
    inside = (readings.starts >= first) & (readings.starts < last)
    starts, kwh = readings.starts[inside], readings.kwh[inside]
    hours = starts - starts % 3600
    per_hour = max(3600 // step, 1)
    totals: dict[int, list[float]] = {}
    for hour, value in zip(hours.tolist(), kwh.tolist(), strict=True):
        totals.setdefault(hour, []).append(value)
    return {h: float(sum(v)) for h, v in totals.items() if len(v) == per_hour and not any(x != x for x in v)}


def evaluate(
    p: RegressionPlan, readings: IntervalReadings, *, temperatures: tuple[np.ndarray, np.ndarray] | None = None
) -> r.BaselineResult:
    import pandas as pd

    tz = zone(p.time_zone)
    starts = tuple(datetime.fromtimestamp(t, UTC) for t in range(p.event_start, p.event_end, p.step))
    index = {int(t): n for n, t in enumerate(readings.starts.tolist())}
    actual = np.array(
        [readings.kwh[index[t]] if t in index else np.nan for t in range(p.event_start, p.event_end, p.step)]
    )
    if temperatures is None or not len(temperatures[0]):
        raise BaselineError(
            "no_temperature", "A regression baseline needs the site's weather station temperatures.", "temperatures"
        )
    temperature = dict(zip(temperatures[0].tolist(), temperatures[1].tolist(), strict=True))
    load = {
        hour: kwh
        for hour, kwh in _hourly(readings, p.first, p.last, p.step).items()
        if local_date(hour, tz) not in p.event_days and hour in temperature
    }
    days_used = sorted({local_date(hour, tz) for hour in load}, reverse=True)
    flags: set[str] = set()
    no_adjustment = r.Adjustment("none", reason="disabled")
    if len(days_used) < p.params.min_days:
        return r.short_of_days(
            method=p.method,
            step=p.step,
            starts=starts,
            actual_kwh=actual,
            adjustment=no_adjustment,
            flags=flags,
            days_used=days_used,
        )
    Model, BaselineData, ReportingData = _model()
    fit_hours = sorted(load)
    fit_index = pd.to_datetime(fit_hours, unit="s", utc=True).tz_convert(tz)
    meter = pd.Series([load[h] for h in fit_hours], index=fit_index)
    temps = pd.Series([temperature[h] for h in fit_hours], index=fit_index)
    event_hours = sorted({t - t % 3600 for t in range(p.event_start, p.event_end, p.step)})
    known = [h for h in event_hours if h in temperature]
    predicted: dict[int, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = Model().fit(BaselineData.from_series(meter, temps, True))
            if known:
                # A contiguous hourly span with an hour either side (the data classes infer the frequency from it),
                # NaN where the station has no temperature.
                span = list(range(event_hours[0] - 3600, event_hours[-1] + 7200, 3600))
                span_index = pd.to_datetime(span, unit="s", utc=True).tz_convert(tz)
                series = pd.Series([temperature.get(h, np.nan) for h in span], index=span_index)
                result = model.predict(ReportingData.from_series(None, series, True))
                values = dict(zip(span, result["predicted"].tolist(), strict=True))
                predicted = {h: float(values[h]) for h in known if values[h] == values[h]}
        except (ValueError, np.linalg.LinAlgError) as failed:
            raise BaselineError("fit_failed", f"The regression could not be fitted: {failed}.", "readings") from failed
    if len(predicted) < len(event_hours):
        flags.add(MISSING_TEMPERATURE)
    share = p.step / 3600
    baseline = np.array(
        [predicted.get(t - t % 3600, np.nan) * share for t in range(p.event_start, p.event_end, p.step)]
    )
    baseline = r.floored(baseline, flags, p.params.floor_at_zero)
    return r.kw_result(
        method=p.method,
        step=p.step,
        starts=starts,
        baseline_kwh=baseline,
        actual_kwh=actual,
        adjustment=no_adjustment,
        flags=flags,
        days_used=days_used,
    )
