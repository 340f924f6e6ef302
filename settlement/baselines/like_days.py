"""Like-day baselines: PJM High 4 of 5, CAISO 10 in 10, NYISO CBL (one engine, their numbers as params).

How a result is reached, for an event starting on local day E (see LikeDayParams for the numbers):

1. Day type. E is a weekday, a Saturday, or a Sunday/holiday ("saturday_apart"; with
   "together" any weekend day or holiday). A holiday is a weekday-off in the market's
   calendar (aggregator.reference.holidays) and is always grouped with Sundays.
2. Candidates: the days E-1, E-2, ... E-lookback_days, most recent first. A day is not
   eligible, with the reason recorded in `skipped`, when it is
   - another day type: "holiday" if it is a holiday, else "not_like_day";
   - an event day (the caller's set of local dates): "event_day";
   - missing any wall-clock slot the baseline needs because of DST (a 23-hour day lacks the
     skipped hour): "dst_missing_hour";
   - missing any reading in the event or adjustment window (at the same local wall-clock
     slots; slots before midnight for an event just after midnight, on the day before the
     candidate): "missing_intervals";
   - a low-usage day (average load over the event slots below low_usage_threshold of the
     reference): "low_usage". PJM's reference is the mean of the pool being chosen: the low
     day is replaced by the next candidate and the new pool is checked again. NYISO's is the
     highest of the first candidate_days eligible days (the window); their replacements are
     judged against the same peak. A reference <= 0 (a net exporter) screens nothing.
3. Pool: the first candidate_days eligible days (then "not_needed" for older eligible days);
   with fill_with_low_usage_days, a short pool is filled with low-usage days, most recent first.
   Of the pool the keep_highest days with the highest average load over the event slots are
   used (ties: the more recent), the rest are "not_highest"; with drop_highest the highest few are
   left out first ("dropped_highest") and the days below those kept are "dropped_lowest" (ERCOT's
   middle 8 of 10). A short pool keeps at least one day.
4. Baseline per event interval: the mean of the used days at the interval's local wall-clock
   slot. On a 25-hour event day both passes of the repeated hour get the slot's baseline; a
   candidate 25-hour day contributes the mean of its two passes. A 23-hour event day simply
   has no intervals in the skipped hour.
5. Too little history: a pool smaller than candidate_days is flagged insufficient_history and
   the baseline uses what there is, down to weekday_/weekend_min_days. Below that, below_min_days
   decides: "event_days" tops the pool up to the minimum with the most recent event days that pass
   every other test (flag event_days_used); "extend_lookback" with like days from before the
   look-back, most recent first, back to max_lookback_days (flag lookback_extended); top-up days
   are not screened for low usage. If the pool is still short, or under "review" and "fallback",
   there is no baseline (baseline_unavailable and below_min_days; baseline and reduction None):
   under "fallback" compute_baselines then uses fallback_method (flag fallback_baseline).
6. Adjustment over the adjustment window (adjustment_window_minutes ending
   adjustment_gap_minutes before the event start, in elapsed time, so across a DST change it
   is still that many real minutes): additive = mean(actual - baseline); multiplicative =
   sum(actual) / sum(baseline); each within adjustment_cap. Not applied (flag and reason)
   when an actual in the window is missing, or for a factor when the window's baseline is <= 0.
7. A negative adjusted baseline is raised to 0 when floor_at_zero (flag baseline_floored).
"""

from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt

from aggregator.reference.holidays import UnknownCalendar, holidays_between
from settlement.baselines import results as r
from settlement.baselines.errors import BaselineError
from settlement.baselines.params import LikeDayParams
from settlement.baselines.timeline import DayGrid, IntervalReadings, day_grid, event_epochs, local_date, zone

SAT, SUN = 5, 6


def day_type(day: date, holidays: Container[date], together: bool) -> str:
    if day in holidays or day.weekday() == SUN:
        return "weekend_holiday" if together else "sunday_holiday"
    if day.weekday() == SAT:
        return "weekend_holiday" if together else "saturday"
    return "weekday"


@dataclass(frozen=True, eq=False)
class LikeDayPlan:
    """Everything that does not depend on the site's readings (shared by every site of an event)."""

    method: str
    params: LikeDayParams
    grid: DayGrid
    starts: tuple[datetime, ...]
    ev_idx: np.ndarray  # grid intervals of the event
    ev_cells: np.ndarray  # their cells relative to the event day's row (per interval; a repeat appears twice)
    ev_cells_unique: np.ndarray
    adj_idx: np.ndarray
    adj_cells: np.ndarray
    need_cells: np.ndarray  # every cell a candidate day must have
    adjustment_window: tuple[datetime, datetime] | None
    candidate_rows: np.ndarray  # rows of candidates not excluded by the calendar, most recent first,
    # then the top-up reserve (below_min_days): event days or days before the look-back
    candidate_dates: tuple[date, ...]
    regular: int  # how many of the candidates are regular; the rest are the reserve
    reserve_flag: str | None  # the flag a result carries when reserve days are used
    walk: tuple[tuple[date, str | None, int | None], ...]  # every lookback date, most recent first:
    # (date, its calendar/event-day/DST reason or None, its candidate position or None)
    pool_size: int
    keep: int
    min_days: int


def plan(
    *,
    method: str,
    params: LikeDayParams,
    step: int,
    event_start: datetime,
    event_end: datetime,
    time_zone: str,
    market: str | None,
    event_days: frozenset[date] = frozenset(),
    holidays: Container[date] | None = None,
) -> LikeDayPlan:
    if holidays is None and market is None:
        raise BaselineError(
            "unknown_market",
            "A like-day baseline needs the market (for its holidays) or an explicit set of holidays.",
            "market",
        )
    tz = zone(time_zone)
    s, e = event_epochs(event_start, event_end, tz)
    for name in ("adjustment_window_minutes", "adjustment_gap_minutes"):
        if getattr(params, name) * 60 % step:
            raise BaselineError(
                "invalid_param",
                f"{name} ({getattr(params, name)}) must be a multiple of the {step // 60}-minute interval.",
                name,
            )
    event_day = local_date(s, tz)
    adjusting = params.adjustment != "none"
    adj_end = s - params.adjustment_gap_minutes * 60
    adj_start = adj_end - params.adjustment_window_minutes * 60
    earliest = min(s, adj_start) if adjusting else s
    before = (local_date(earliest, tz) - event_day).days  # <= 0: the window reaches into earlier days
    after = (local_date(e - 1, tz) - event_day).days  # >= 0: the event runs past midnight
    extend = params.below_min_days == "extend_lookback"
    reach = params.max_lookback_days if extend and params.max_lookback_days else params.lookback_days
    first = event_day - timedelta(days=reach - before)
    grid = day_grid(time_zone, first, (event_day - first).days + after + 1, step)
    n = grid.slots
    event_row = (event_day - first).days

    k0 = grid.index(s, "event start")
    ev_idx = np.arange(k0, k0 + (e - s) // step)
    if (e - s) % step:
        grid.index(e, "event end")  # raises: the end is off the grid
    if adjusting:
        a0 = grid.index(adj_start, "adjustment window start")
        adj_idx = np.arange(a0, a0 + (adj_end - adj_start) // step)
    else:
        adj_idx = np.empty(0, dtype=np.int64)
    ev_cells = grid.pos[ev_idx] - event_row * n
    adj_cells = grid.pos[adj_idx] - event_row * n
    need = np.unique(np.concatenate([ev_cells, adj_cells]))

    if holidays is None:
        assert market is not None  # refused on entry: a market or an explicit set of holidays
        try:
            holidays = holidays_between(market=market, first=grid.dates[0], last=grid.dates[-1])
        except UnknownCalendar as unknown:
            raise BaselineError("unknown_market", unknown.problems[0].message, "market") from unknown
    together = params.weekend_like_days == "together"
    kind = day_type(event_day, holidays, together)
    event_days = frozenset(event_days)
    top_up_with_events = params.below_min_days == "event_days"
    skips, rows, dates, order, reserve_rows, reserve_dates = {}, [], [], [], [], []
    for back in range(1, reach + 1):
        day = event_day - timedelta(days=back)
        row = event_row - back
        beyond = back > params.lookback_days  # only with extend_lookback: a reserve day, not in the walk
        if not beyond:
            order.append(day)
        if back < params.window_offset_days:
            skips[day] = "before_window"  # the program's window begins further back (e.g. DADRP: two days)
        elif day_type(day, holidays, together) != kind:
            skips[day] = "holiday" if day in holidays else "not_like_day"
        elif day in event_days:
            skips[day] = "event_day"
            if top_up_with_events and not grid.absent[row * n + need].any():
                reserve_rows.append(row)
                reserve_dates.append(day)
        elif grid.absent[row * n + need].any():
            skips[day] = "dst_missing_hour"
        elif beyond:
            reserve_rows.append(row)
            reserve_dates.append(day)
        else:
            rows.append(row)
            dates.append(day)
    for day in reserve_dates:
        skips.pop(day, None)  # its reason comes from the choice: used, or "event_day" / not listed
    weekday = kind == "weekday"
    regular = len(dates)
    dates += reserve_dates
    rows += reserve_rows
    position = {day: i for i, day in enumerate(dates)}
    return LikeDayPlan(
        method=method,
        params=params,
        grid=grid,
        starts=tuple(datetime.fromtimestamp(t, UTC) for t in range(s, s + ev_idx.size * step, step)),
        ev_idx=ev_idx,
        ev_cells=ev_cells,
        ev_cells_unique=np.unique(ev_cells),
        adj_idx=adj_idx,
        adj_cells=adj_cells,
        need_cells=need,
        adjustment_window=(grid.utc(int(adj_idx[0])), grid.utc(int(adj_idx[-1]) + 1)) if adj_idx.size else None,
        candidate_rows=np.array(rows, dtype=np.int64),
        candidate_dates=tuple(dates),
        regular=regular,
        reserve_flag=r.EVENT_DAYS_USED if top_up_with_events else r.LOOKBACK_EXTENDED if extend else None,
        walk=tuple((day, skips.get(day), position.get(day)) for day in order),
        pool_size=params.weekday_candidate_days if weekday else params.weekend_candidate_days,
        keep=params.weekday_keep_highest if weekday else params.weekend_keep_highest,
        min_days=params.weekday_min_days if weekday else params.weekend_min_days,
    )


def _choose(
    p: LikeDayPlan, complete: list[bool], load: list[float]
) -> tuple[list[int], int, bool, bool, dict[int, str]]:
    """(used, pool size, filled, topped up, reasons) as candidate positions; `load`: average over the event slots."""
    params = p.params
    reasons: dict[int, str] = {}
    eligible = []
    for i, ok in enumerate(complete[: p.regular]):
        if ok:
            eligible.append(i)
        else:
            reasons[i] = "missing_intervals"
    threshold = params.low_usage_threshold
    low: list[int] = []
    if threshold is None or not eligible:
        pool = eligible[: p.pool_size]
    elif params.low_usage_basis == "peak_of_window":
        reference = max(load[i] for i in eligible[: p.pool_size])
        low = [i for i in eligible if reference > 0 and load[i] < threshold * reference]
        pool = [i for i in eligible if i not in low][: p.pool_size]
    else:  # mean_of_chosen: replace low days with the next candidates until the pool holds none
        screened: set[int] = set()
        while True:
            pool = [i for i in eligible if i not in screened][: p.pool_size]
            reference = sum(load[i] for i in pool) / len(pool) if pool else 0.0
            found = [i for i in pool if reference > 0 and load[i] < threshold * reference]
            if not found:
                break
            screened.update(found)
        low = sorted(screened)
    filled = False
    if params.fill_with_low_usage_days and len(pool) < p.pool_size and low:
        pool = pool + low[: p.pool_size - len(pool)]
        filled = True
    topped_up = False
    reserve = range(p.regular, len(complete))
    if len(pool) < p.min_days and reserve:
        extra = [i for i in reserve if complete[i]][: p.min_days - len(pool)]
        pool, topped_up = pool + extra, bool(extra)
    for i in reserve:
        if i not in pool:
            reasons[i] = "event_day"  # an unused day before the look-back is not in the walk, so not listed
    in_pool = set(pool)
    for i in low:
        if i not in in_pool:
            reasons[i] = "low_usage"
    for i in eligible:
        if i not in in_pool and i not in reasons:
            reasons[i] = "not_needed"
    ranked = sorted(pool, key=lambda i: (-load[i], i))  # highest first; ties to the more recent
    drop = params.drop_highest if len(ranked) > params.drop_highest + 1 else 0  # never drop down to nothing
    for i in ranked[:drop]:
        reasons[i] = "dropped_highest"
    for i in ranked[drop + p.keep :]:
        reasons[i] = "dropped_lowest" if drop else "not_highest"
    return sorted(ranked[drop : drop + p.keep]), len(pool), filled, topped_up, reasons


def evaluate(p: LikeDayPlan, readings: IntervalReadings) -> r.BaselineResult:
    params, grid = p.params, p.grid
    n = grid.slots
    v = grid.values(readings)
    m = grid.matrix(v)
    rows = p.candidate_rows
    flags: set[str] = set()
    if rows.size:
        base = rows[:, None] * n
        complete = (~np.isnan(m[base + p.need_cells]).any(axis=1)).tolist()
        load = m[base + p.ev_cells_unique].mean(axis=1).tolist()
    else:
        complete, load = [], []
    used, pool_size, filled, topped_up, reasons = _choose(p, complete, load)
    if pool_size < p.pool_size:
        flags.add(r.INSUFFICIENT_HISTORY)
    if filled:
        flags.add(r.FILLED_WITH_LOW_USAGE_DAYS)
    if topped_up and p.reserve_flag:
        flags.add(p.reserve_flag)
    used_dates = [p.candidate_dates[i] for i in used]
    skipped = {}
    for day, why, i in p.walk:
        if why is None and i is not None:
            why = reasons.get(i)
        if why is not None:
            skipped[day] = why
    actual = v[p.ev_idx]
    if pool_size < p.min_days:
        adjustment = r.Adjustment(
            params.adjustment,
            window=p.adjustment_window,
            reason="disabled" if params.adjustment == "none" else "no_baseline",
        )
        return r.short_of_days(
            method=p.method,
            step=grid.step,
            starts=p.starts,
            actual_kwh=actual,
            adjustment=adjustment,
            flags=flags,
            skipped=skipped,
            days_used=used_dates,
        )
    used_rows = rows[np.array(used, dtype=np.int64)][:, None] * n
    baseline = m[used_rows + p.ev_cells].mean(axis=0)
    baseline, adjustment = _adjust(p, m, v, used_rows, baseline, flags)
    baseline = r.floored(baseline, flags, params.floor_at_zero)
    return r.kw_result(
        method=p.method,
        step=grid.step,
        starts=p.starts,
        baseline_kwh=baseline,
        actual_kwh=actual,
        adjustment=adjustment,
        flags=flags,
        days_used=used_dates,
        skipped=skipped,
    )


def _adjust(
    p: LikeDayPlan,
    m: npt.NDArray[np.float64],
    v: npt.NDArray[np.float64],
    used_rows: npt.NDArray[np.int64],
    baseline: npt.NDArray[np.float64],
    flags: set[str],
) -> tuple[npt.NDArray[np.float64], r.Adjustment]:
    params = p.params
    kind = params.adjustment
    if kind == "none":
        return baseline, r.Adjustment("none", reason="disabled")
    window = p.adjustment_window
    actual = v[p.adj_idx]
    if np.isnan(actual).any():
        flags.add(r.ADJUSTMENT_NOT_APPLIED)
        return baseline, r.Adjustment(kind, window=window, reason="missing_actual")
    before = m[used_rows + p.adj_cells].mean(axis=0)
    cap = params.adjustment_cap
    per_hour = 3600.0 / p.grid.step
    if kind == "additive":
        offset = float((actual - before).mean())
        applied = offset
        if cap is not None:
            limit = cap * abs(float(before.mean()))
            applied = min(max(offset, -limit), limit)
        return baseline + applied, r.Adjustment(kind, applied * per_hour, offset * per_hour, applied != offset, window)
    total = float(before.sum())
    if total <= 0:
        flags.add(r.ADJUSTMENT_NOT_APPLIED)
        return baseline, r.Adjustment(kind, window=window, reason="zero_baseline")
    factor = float(actual.sum()) / total
    applied = factor if cap is None else min(max(factor, 1.0 - cap), 1.0 + cap)
    return baseline * applied, r.Adjustment(kind, applied, factor, applied != factor, window)
