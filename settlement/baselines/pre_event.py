"""Baselines from the minutes just before the event, flat through it.

- Meter before / meter after (site meter): baseline = the average load over window_minutes
  ending gap_minutes before the event start (by default the one data interval just before
  it). For fast resources whose load would have stayed where it was.
- Metered output (a battery's or generator's own meter, positive = consuming/charging,
  negative = output): baseline_rule "pre_event" takes the device's average over the same
  kind of window, so performance = what the device did before - what it did during the
  event, i.e. its output net of what it was already doing (a battery discharging 2 kW for
  the house that goes to 7 kW delivers 5 kW). With credit_stopped_charging False a device
  that was charging is taken as idle (pre-event level capped at 0), so only output counts.
  baseline_rule "zero" credits all measured output during the event.

Windows are elapsed time (UTC): across a DST change an hour's window is still one real
hour. A window interval without a reading gives no baseline (flags baseline_unavailable and
missing_reference); nothing is guessed.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from settlement.baselines import results as r
from settlement.baselines.errors import BaselineError
from settlement.baselines.params import BaselineParams, MeterBeforeMeterAfterParams, MeteredOutputParams
from settlement.baselines.timeline import DayGrid, IntervalReadings, day_grid, event_epochs, local_date, zone


@dataclass(frozen=True, eq=False)
class PreEventPlan:
    method: str
    params: BaselineParams
    grid: DayGrid
    starts: tuple[datetime, ...]
    ev_idx: np.ndarray
    ref_idx: np.ndarray  # empty: the baseline is 0 by rule
    reference_window: tuple[datetime, datetime] | None


def _multiple(name: str, seconds: int, step: int) -> None:
    if seconds % step:
        raise BaselineError(
            "invalid_param", f"{name} ({seconds // 60}) must be a multiple of the {step // 60}-minute interval.", name
        )


def plan(
    *,
    method: str,
    params: MeterBeforeMeterAfterParams | MeteredOutputParams,
    step: int,
    event_start: datetime,
    event_end: datetime,
    time_zone: str,
    **_calendar: object,
) -> PreEventPlan:
    tz = zone(time_zone)
    s, e = event_epochs(event_start, event_end, tz)
    by_rule = isinstance(params, MeteredOutputParams) and params.baseline_rule == "zero"
    window = step if params.window_minutes is None else params.window_minutes * 60
    _multiple("window_minutes", window, step)
    _multiple("gap_minutes", params.gap_minutes * 60, step)
    ref_end = s - params.gap_minutes * 60
    ref_start = s if by_rule else ref_end - window
    first = local_date(min(ref_start, s), tz)
    grid = day_grid(time_zone, first, (local_date(e - 1, tz) - first).days + 1, step)
    k0 = grid.index(s, "event start")
    if (e - s) % step:
        grid.index(e, "event end")
    ev_idx = np.arange(k0, k0 + (e - s) // step)
    if by_rule:
        ref_idx, reference = np.empty(0, dtype=np.int64), None
    else:
        r0 = grid.index(ref_start, "reference window start")
        ref_idx = np.arange(r0, r0 + window // step)
        reference = (grid.utc(int(ref_idx[0])), grid.utc(int(ref_idx[-1]) + 1))
    return PreEventPlan(
        method=method,
        params=params,
        grid=grid,
        ev_idx=ev_idx,
        ref_idx=ref_idx,
        starts=tuple(datetime.fromtimestamp(t, UTC) for t in range(s, e, step)),
        reference_window=reference,
    )


def evaluate(p: PreEventPlan, readings: IntervalReadings) -> r.BaselineResult:
    params = p.params
    v = p.grid.values(readings)
    actual = v[p.ev_idx]
    flags: set[str] = set()
    if not p.ref_idx.size:
        level = 0.0
    else:
        before = v[p.ref_idx]
        if np.isnan(before).any():
            flags.update((r.BASELINE_UNAVAILABLE, r.MISSING_REFERENCE))
            level = np.nan
        else:
            level = float(before.mean())
            if isinstance(params, MeteredOutputParams) and not params.credit_stopped_charging:
                level = min(level, 0.0)
    if params.floor_at_zero and level < 0:
        level = 0.0
        flags.add(r.BASELINE_FLOORED)
    return r.kw_result(
        method=p.method,
        step=p.grid.step,
        starts=p.starts,
        baseline_kwh=np.full(actual.size, level),
        actual_kwh=actual,
        adjustment=r.Adjustment("none"),
        flags=flags,
        reference_window=p.reference_window,
    )
