"""Match-day baselines: the like days whose load looked most like the event day's outside the event.

PJM's Match Day (3-day average, Manual 11): of the like days in the look-back (same day type, not holidays or
event days), the 3 whose load over the event day's non-event hours is closest to the event day's, the hour before
and the hour after the event left out (exclude_minutes); the baseline of each event interval is their mean at the
same wall-clock slot. ERCOT's matching day pair compares the day before as well (match_day_before): a candidate
and the day before it against the event day and the day before it.

Closest: the smallest mean squared difference over the compared slots the event day has readings for. A candidate
needs a reading in every compared slot and every event slot ("missing_intervals"); days not among the closest are
"not_closest". Fewer than min_days candidates: no baseline (baseline_unavailable, below_min_days). Slots are local
wall-clock slots, so on DST days the grid of like_days applies (a 23-hour day lacks the skipped slot: a candidate
that needs it is "dst_missing_hour"; a 25-hour day's repeated slot is the mean of its two passes). No same-day
adjustment: the match itself follows the day's level.
"""

from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from aggregator.reference.holidays import UnknownCalendar, holidays_between
from settlement.baselines import results as r
from settlement.baselines.errors import BaselineError
from settlement.baselines.like_days import day_type
from settlement.baselines.params import MatchDayParams
from settlement.baselines.timeline import DayGrid, IntervalReadings, day_grid, event_epochs, local_date, zone


@dataclass(frozen=True, eq=False)
class MatchDayPlan:
    method: str
    params: MatchDayParams
    grid: DayGrid
    starts: tuple[datetime, ...]
    ev_idx: np.ndarray
    ev_cells: np.ndarray  # relative to a day's row
    cmp_cells: np.ndarray  # the event day's compared slots, relative to a day's row
    prev_cells: np.ndarray  # the day before's compared slots (match_day_before), relative to its row
    event_row: int
    candidate_rows: np.ndarray
    candidate_dates: tuple[date, ...]
    walk: tuple[tuple[date, str | None, int | None], ...]


def plan(
    *,
    method: str,
    params: MatchDayParams,
    step: int,
    event_start: datetime,
    event_end: datetime,
    time_zone: str,
    market: str | None,
    event_days: frozenset[date] = frozenset(),
    holidays: Container[date] | None = None,
) -> MatchDayPlan:
    if holidays is None and market is None:
        raise BaselineError("unknown_market", "A match-day baseline needs the market (for its holidays).", "market")
    tz = zone(time_zone)
    s, e = event_epochs(event_start, event_end, tz)
    if params.exclude_minutes * 60 % step:
        raise BaselineError(
            "invalid_param",
            f"exclude_minutes must be a multiple of the {step // 60}-minute interval.",
            "exclude_minutes",
        )
    event_day = local_date(s, tz)
    if local_date(e - 1, tz) != event_day:
        raise BaselineError("invalid_event", "A match-day baseline needs an event within one local day.", "event_end")
    before = 1 if params.match_day_before else 0
    first = event_day - timedelta(days=params.lookback_days + before)
    grid = day_grid(time_zone, first, (event_day - first).days + 1, step)
    n = grid.slots
    event_row = (event_day - first).days
    k0 = grid.index(s, "event start")
    ev_idx = np.arange(k0, k0 + (e - s) // step)
    if (e - s) % step:
        grid.index(e, "event end")
    ev_cells = grid.pos[ev_idx] - event_row * n
    day_idx = np.flatnonzero(grid.row == event_row)
    epochs = grid.t0 + day_idx * step
    gap = params.exclude_minutes * 60
    outside = (epochs + step <= s - gap) | (epochs >= e + gap)
    cmp_cells = np.unique(grid.pos[day_idx[outside]] - event_row * n)
    prev_cells = np.arange(n, dtype=np.int64) if before else np.empty(0, dtype=np.int64)
    if holidays is None:
        assert market is not None
        try:
            holidays = holidays_between(market=market, first=grid.dates[0], last=grid.dates[-1])
        except UnknownCalendar as unknown:
            raise BaselineError("unknown_market", unknown.problems[0].message, "market") from unknown
    together = params.weekend_like_days == "together"
    kind = day_type(event_day, holidays, together)
    need = np.unique(np.concatenate([ev_cells, cmp_cells]))
    rows: list[int] = []
    dates: list[date] = []
    walk: list[tuple[date, str | None, int | None]] = []
    for back in range(1, params.lookback_days + 1):
        day = event_day - timedelta(days=back)
        row = event_row - back
        why = None
        if day_type(day, holidays, together) != kind:
            why = "holiday" if day in holidays else "not_like_day"
        elif day in event_days:
            why = "event_day"
        elif grid.absent[row * n + need].any() or (before and grid.absent[(row - 1) * n + prev_cells].all()):
            why = "dst_missing_hour"
        walk.append((day, why, None if why else len(rows)))
        if why is None:
            rows.append(row)
            dates.append(day)
    return MatchDayPlan(
        method=method,
        params=params,
        grid=grid,
        starts=tuple(datetime.fromtimestamp(t, UTC) for t in range(s, s + ev_idx.size * step, step)),
        ev_idx=ev_idx,
        ev_cells=ev_cells,
        cmp_cells=cmp_cells,
        prev_cells=prev_cells,
        event_row=event_row,
        candidate_rows=np.array(rows, dtype=np.int64),
        candidate_dates=tuple(dates),
        walk=tuple(walk),
    )


def evaluate(p: MatchDayPlan, readings: IntervalReadings) -> r.BaselineResult:
    grid, n = p.grid, p.grid.slots
    v = grid.values(readings)
    m = grid.matrix(v)
    actual = v[p.ev_idx]
    target = m[p.event_row * n + p.cmp_cells]
    known = ~np.isnan(target)
    target_prev = m[(p.event_row - 1) * n + p.prev_cells] if p.prev_cells.size else np.empty(0)
    known_prev = ~np.isnan(target_prev)
    reasons: dict[int, str] = {}
    distance: dict[int, float] = {}
    for i, row in enumerate(p.candidate_rows.tolist()):
        compared = m[row * n + p.cmp_cells][known]
        event_slots = m[row * n + p.ev_cells]
        prev = m[(row - 1) * n + p.prev_cells][known_prev] if p.prev_cells.size else np.empty(0)
        if np.isnan(compared).any() or np.isnan(event_slots).any() or np.isnan(prev).any():
            reasons[i] = "missing_intervals"
            continue
        diffs = np.concatenate([compared - target[known], prev - target_prev[known_prev]])
        distance[i] = float((diffs**2).mean()) if diffs.size else 0.0
    closest = sorted(distance, key=lambda i: (distance[i], i))[: p.params.match_days]
    for i in distance:
        if i not in closest:
            reasons[i] = "not_closest"
    skipped: dict[date, str] = {}
    for day, why, position in p.walk:
        reason = why or (reasons.get(position) if position is not None else None)
        if reason:
            skipped[day] = reason
    used = sorted(closest)
    flags: set[str] = set()
    no_adjustment = r.Adjustment("none", reason="disabled")
    if not known.any() or len(used) < p.params.min_days:
        return r.short_of_days(
            method=p.method,
            step=grid.step,
            starts=p.starts,
            actual_kwh=actual,
            adjustment=no_adjustment,
            flags=flags,
            skipped=skipped,
            days_used=[p.candidate_dates[i] for i in used],
        )
    if len(used) < p.params.match_days:
        flags.add(r.INSUFFICIENT_HISTORY)
    rows = p.candidate_rows[np.array(used, dtype=np.int64)][:, None] * n
    baseline = m[rows + p.ev_cells].mean(axis=0)
    baseline = r.floored(baseline, flags, p.params.floor_at_zero)
    return r.kw_result(
        method=p.method,
        step=grid.step,
        starts=p.starts,
        baseline_kwh=baseline,
        actual_kwh=actual,
        adjustment=no_adjustment,
        flags=flags,
        skipped=skipped,
        days_used=[p.candidate_dates[i] for i in used],
    )
