"""What a baseline computation returns: per event interval, and how it was reached."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

# Flags a result may carry (settlement decides what each means for payment).
INSUFFICIENT_HISTORY = "insufficient_history"  # fewer like days than the method wants (see days_used)
BASELINE_UNAVAILABLE = "baseline_unavailable"  # no baseline at all: baseline_kw and reduction_kw are None
MISSING_ACTUAL = "missing_actual"  # an event interval without a reading: actual None, reduction 0
ADJUSTMENT_NOT_APPLIED = "adjustment_not_applied"  # see Adjustment.reason
BASELINE_FLOORED = "baseline_floored"  # a negative adjusted baseline was raised to 0
FILLED_WITH_LOW_USAGE_DAYS = "filled_with_low_usage_days"
MISSING_REFERENCE = "missing_reference"  # a pre-event window interval has no reading
BELOW_MIN_DAYS = "below_min_days"  # fewer baseline days than the method's minimum: not paid, for review
EVENT_DAYS_USED = "event_days_used"  # the pool was topped up to the minimum with event days
LOOKBACK_EXTENDED = "lookback_extended"  # the pool was topped up with days before the look-back
FALLBACK_BASELINE = "fallback_baseline"  # too few days: the baseline is the program's fallback method's


@dataclass(frozen=True)
class Adjustment:
    """The same-day adjustment. `value` is what was applied: kW added (additive) or the factor
    (multiplicative); `uncapped` the value before the cap. None when not applied (`reason`)."""

    kind: str  # "additive", "multiplicative" or "none"
    value: float | None = None
    uncapped: float | None = None
    capped: bool = False
    window: tuple[datetime, datetime] | None = None  # [start, end), UTC
    reason: str | None = None  # "disabled", "missing_actual", "zero_baseline", "no_baseline"


@dataclass(frozen=True)
class IntervalResult:
    start: datetime  # aware, UTC
    baseline_kw: float | None
    actual_kw: float | None
    reduction_kw: float | None  # baseline - actual, not floored (settlement decides)


def _optional(x: float) -> float | None:
    return None if x != x else float(x)


@dataclass(frozen=True, eq=False)
class BaselineResult:
    """One site's baseline for one event. The arrays are read-only, NaN where a value is None."""

    method: str
    interval_minutes: int
    starts: tuple[datetime, ...]
    baseline_kw: np.ndarray
    actual_kw: np.ndarray
    reduction_kw: np.ndarray
    adjustment: Adjustment
    days_used: tuple[date, ...] = ()
    skipped: dict[date, str] | None = None  # lookback date -> why it was not used, most recent first
    flags: frozenset[str] = frozenset()
    reference_window: tuple[datetime, datetime] | None = None  # pre-event methods: where the baseline came from

    def __post_init__(self) -> None:
        for name in ("baseline_kw", "actual_kw", "reduction_kw"):
            getattr(self, name).flags.writeable = False
        if self.skipped is None:
            object.__setattr__(self, "skipped", {})

    @property
    def intervals(self) -> tuple[IntervalResult, ...]:
        return tuple(
            IntervalResult(start, _optional(b), _optional(a), _optional(r))
            for start, b, a, r in zip(
                self.starts, self.baseline_kw.tolist(), self.actual_kw.tolist(), self.reduction_kw.tolist(), strict=True
            )
        )


def kw_result(
    *,
    method: str,
    step: int,
    starts: tuple[datetime, ...],
    baseline_kwh: np.ndarray,
    actual_kwh: np.ndarray,
    adjustment: Adjustment,
    flags: set[str],
    days_used: Iterable[date] = (),
    skipped: dict[date, str] | None = None,
    reference_window: tuple[datetime, datetime] | None = None,
) -> BaselineResult:
    """Per-interval kWh to kW; a missing actual credits no reduction, a missing baseline gives none."""
    per_hour = 3600.0 / step
    baseline = baseline_kwh * per_hour
    actual = actual_kwh * per_hour
    reduction = baseline - actual
    missing_actual = np.isnan(actual)
    if missing_actual.any():
        flags.add(MISSING_ACTUAL)
        reduction[missing_actual & ~np.isnan(baseline)] = 0.0
    return BaselineResult(
        method=method,
        interval_minutes=step // 60,
        starts=starts,
        baseline_kw=baseline,
        actual_kw=actual,
        reduction_kw=reduction,
        adjustment=adjustment,
        days_used=tuple(days_used),
        skipped=skipped,
        flags=frozenset(flags),
        reference_window=reference_window,
    )


def short_of_days(
    *,
    method: str,
    step: int,
    starts: tuple[datetime, ...],
    actual_kwh: np.ndarray,
    adjustment: Adjustment,
    flags: set[str],
    days_used: Iterable[date] = (),
    skipped: dict[date, str] | None = None,
) -> BaselineResult:
    """No baseline: fewer baseline days than the method's minimum (never paid silently: below_min_days)."""
    flags.update((BASELINE_UNAVAILABLE, INSUFFICIENT_HISTORY, BELOW_MIN_DAYS))
    return kw_result(
        method=method,
        step=step,
        starts=starts,
        baseline_kwh=np.full(actual_kwh.size, np.nan),
        actual_kwh=actual_kwh,
        adjustment=adjustment,
        flags=flags,
        days_used=days_used,
        skipped=skipped,
    )


def floored(baseline: np.ndarray, flags: set[str], floor_at_zero: bool) -> np.ndarray:
    """A negative baseline raised to 0 where the program's rules say so (flag baseline_floored)."""
    if floor_at_zero and (baseline < 0).any():
        flags.add(BASELINE_FLOORED)
        return np.where(baseline < 0, 0.0, baseline)
    return baseline
