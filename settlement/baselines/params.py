"""Every number a baseline method uses, as a frozen dataclass holding the published default.

A market or program overrides them with a plain dict (its JSON settings) through
`from_settings`: an unknown key or a value of the wrong type or range is refused with
a BaselineError naming the key, so a typo in a program's settings cannot silently fall
back to a default. Durations are whole minutes (multiples of 5) rather than hours, so
that every window lands on a 5-minute interval boundary.
"""

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from settlement.baselines.errors import BaselineError

INTERVAL_MINUTES = (5, 15, 60)


# A rule: (kind, low or the choices, high, step, None allowed); what the middle three hold depends on the kind.
Rule = tuple[str, Any, Any, Any, bool]


def _int(lo: int, hi: int, *, step: int = 1, none: bool = False) -> Rule:
    return ("int", lo, hi, step, none)


def _float(lo: float, hi: float, *, none: bool = False) -> Rule:
    return ("float", lo, hi, None, none)


def _choice(*choices: str, none: bool = False) -> Rule:
    return ("choice", choices, None, None, none)


_BOOL: Rule = ("bool", None, None, None, False)
_MINUTES = _int(0, 24 * 60, step=5)

# Shared by every method: how a value of each parameter is checked.
RULES: dict[str, Rule] = {
    "interval_minutes": ("interval", None, None, None, True),
    "floor_at_zero": _BOOL,
    "lookback_days": _int(1, 366),
    "window_offset_days": _int(1, 7),
    "weekday_candidate_days": _int(1, 60),
    "weekday_keep_highest": _int(1, 60),
    "weekend_candidate_days": _int(1, 20),
    "weekend_keep_highest": _int(1, 20),
    "drop_highest": _int(0, 10),
    "weekend_like_days": _choice("saturday_apart", "together"),
    "low_usage_threshold": _float(0.0, 1.0, none=True),
    "low_usage_basis": _choice("mean_of_chosen", "peak_of_window"),
    "fill_with_low_usage_days": _BOOL,
    "weekday_min_days": _int(1, 60),
    "weekend_min_days": _int(1, 20),
    "below_min_days": _choice("review", "event_days", "extend_lookback", "fallback"),
    "max_lookback_days": _int(1, 366, none=True),
    "fallback_method": _choice("meter-before-meter-after", none=True),
    "adjustment": _choice("additive", "multiplicative", "none"),
    "adjustment_window_minutes": _MINUTES,
    "adjustment_gap_minutes": _MINUTES,
    "adjustment_cap": _float(0.0, 10.0, none=True),
    "window_minutes": _int(5, 24 * 60, step=5, none=True),
    "gap_minutes": _MINUTES,
    "baseline_rule": _choice("pre_event", "zero"),
    "credit_stopped_charging": _BOOL,
    "min_days": _int(1, 366),
    "match_days": _int(1, 20),
    "exclude_minutes": _MINUTES,
    "match_day_before": _BOOL,
}


def _check(name: str, value: Any, rule: Rule) -> None:
    kind, lo, hi, step, none_ok = rule
    if value is None:
        if none_ok:
            return
        raise BaselineError("invalid_param", f"{name} needs a value.", name)
    if kind == "bool":
        if type(value) is not bool:
            raise BaselineError("invalid_param", f"{name} is true or false, not {value!r}.", name)
    elif kind == "choice":
        if value not in lo:
            raise BaselineError("invalid_param", f"{name} is one of {', '.join(lo)}, not {value!r}.", name)
    elif kind == "interval":
        if type(value) is not int or value not in INTERVAL_MINUTES:
            raise BaselineError("invalid_param", f"{name} is one of {INTERVAL_MINUTES}, not {value!r}.", name)
    elif kind == "int":
        if type(value) is not int or not lo <= value <= hi or value % step:
            multiple = f" and a multiple of {step}" if step > 1 else ""
            raise BaselineError(
                "invalid_param", f"{name} is a whole number from {lo} to {hi}{multiple}, not {value!r}.", name
            )
    elif kind == "float":  # noqa: SIM102  (one branch per kind; a valid float must not fall through)
        # bool is an int: refuse it, or `true` would read as 1.0.
        if type(value) not in (int, float) or not math.isfinite(value) or not lo <= value <= hi:
            raise BaselineError("invalid_param", f"{name} is a number from {lo} to {hi}, not {value!r}.", name)


@dataclass(frozen=True)
class BaselineParams:
    """Base: the interval length (None: taken from the data) and whether a negative baseline becomes 0.

    No published method floors by default (PJM's adjustment has none); a program whose rules say so sets
    floor_at_zero, and the statement says which applied."""

    method: ClassVar[str] = ""
    interval_minutes: int | None = None
    floor_at_zero: bool = False

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check(f.name, getattr(self, f.name), RULES[f.name])
        self._check_together()

    def _check_together(self) -> None:
        """Rules between parameters; subclasses add theirs."""

    @classmethod
    def from_settings(cls, settings: Mapping | None = None) -> Self:
        """The defaults overridden by `settings` (e.g. a program's JSON); unknown keys refused by name."""
        if settings is None:
            return cls()
        if not isinstance(settings, Mapping):
            raise BaselineError("invalid_param", "Baseline parameters are an object of name: value.", "params")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in settings:
            if key not in known:
                raise BaselineError(
                    "unknown_param",
                    f"Unknown parameter {key!r} for {cls.method}; known: {', '.join(sorted(known))}.",
                    str(key),
                )
        return cls(**settings)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LikeDayParams(BaselineParams):
    """Methods that average like days before the event (PJM, CAISO, NYISO); PJM's numbers as defaults.

    - lookback_days: calendar days before the event day that may be candidates.
    - window_offset_days: the most recent candidate is this many days before the event day (1: the day
      before; NYISO's day-ahead program, DADRP, begins two days back: 2).
    - weekday_candidate_days / weekday_keep_highest: how many eligible days form the pool,
      and how many of the pool with the highest average load over the event hours are
      averaged (PJM 5 / 4). weekend_*: the same for Saturday and Sunday/holiday events.
    - drop_highest: before keeping the keep_highest highest days, leave out this many of the highest
      (ERCOT's middle 8 of 10: drop 1, keep 8 of 10, so the lowest is left out too).
    - weekend_like_days: "saturday_apart" (Saturdays; Sundays with holidays) or "together"
      (any weekend day or holiday).
    - low_usage_threshold: a day whose average load over the event hours is below this
      fraction of the reference is a low-usage day; None: no screening. low_usage_basis:
      the reference is the mean of the pool being chosen ("mean_of_chosen", PJM: the low
      day is replaced and the pool re-checked) or the highest of the first candidate_days
      eligible days, the window ("peak_of_window", NYISO; replacements are judged against
      the same peak).
    - fill_with_low_usage_days: with too few days, fill the pool with low-usage days, most recent first.
    - weekday_min_days / weekend_min_days: fewest days a baseline may rest on (with at least
      this many but fewer than the pool wants, the baseline uses what there is and is flagged
      insufficient_history). With fewer, below_min_days says what happens, and the result is
      never paid silently:
      "review": no baseline; the site is flagged below_min_days and left unpaid for an analyst;
      "event_days": the pool is topped up to the minimum with the most recent event days that
      are like days with complete data (CAISO's practice; flag event_days_used);
      "extend_lookback": the pool is topped up with like days further back, up to
      max_lookback_days before the event (flag lookback_extended);
      "fallback": the site's baseline is fallback_method's instead (flag fallback_baseline).
      If the top-up still leaves fewer than the minimum, there is no baseline (below_min_days).
    - adjustment: "additive" (PJM SAA), "multiplicative" (CAISO, NYISO) or "none", computed
      over the adjustment_window_minutes that end adjustment_gap_minutes before the event.
    - adjustment_cap: a multiplicative factor is kept within 1 ± cap; an additive offset
      within ± cap x the mean unadjusted baseline of the window. None: no cap.
    """

    method: ClassVar[str] = "like-days"
    lookback_days: int = 45
    window_offset_days: int = 1
    weekday_candidate_days: int = 5
    weekday_keep_highest: int = 4
    weekend_candidate_days: int = 3
    weekend_keep_highest: int = 2
    drop_highest: int = 0
    weekend_like_days: str = "saturday_apart"
    low_usage_threshold: float | None = 0.25
    low_usage_basis: str = "mean_of_chosen"
    fill_with_low_usage_days: bool = False
    weekday_min_days: int = 5
    weekend_min_days: int = 3
    below_min_days: str = "review"
    max_lookback_days: int | None = None
    fallback_method: str | None = None
    adjustment: str = "additive"
    adjustment_window_minutes: int = 180
    adjustment_gap_minutes: int = 60
    adjustment_cap: float | None = None

    def _check_together(self) -> None:
        if self.window_offset_days > self.lookback_days:
            raise BaselineError(
                "invalid_param",
                f"window_offset_days ({self.window_offset_days}) cannot exceed lookback_days ({self.lookback_days}).",
                "window_offset_days",
            )
        for kind in ("weekday", "weekend"):
            pool, keep = getattr(self, f"{kind}_candidate_days"), getattr(self, f"{kind}_keep_highest")
            if keep > pool:
                raise BaselineError(
                    "invalid_param",
                    f"{kind}_keep_highest ({keep}) cannot exceed {kind}_candidate_days ({pool}).",
                    f"{kind}_keep_highest",
                )
            if keep + self.drop_highest > pool:
                raise BaselineError(
                    "invalid_param",
                    f"drop_highest ({self.drop_highest}) + {kind}_keep_highest ({keep}) cannot exceed "
                    f"{kind}_candidate_days ({pool}).",
                    "drop_highest",
                )
            least = getattr(self, f"{kind}_min_days")
            if least > pool:
                raise BaselineError(
                    "invalid_param",
                    f"{kind}_min_days ({least}) cannot exceed "
                    f"{kind}_candidate_days ({pool}): no baseline could ever be computed.",
                    f"{kind}_min_days",
                )
        if self.below_min_days == "extend_lookback" and (
            self.max_lookback_days is None or self.max_lookback_days <= self.lookback_days
        ):
            raise BaselineError(
                "invalid_param",
                f"below_min_days extend_lookback needs max_lookback_days beyond lookback_days ({self.lookback_days}).",
                "max_lookback_days",
            )
        if self.below_min_days == "fallback" and self.fallback_method is None:
            raise BaselineError("invalid_param", "below_min_days fallback needs a fallback_method.", "fallback_method")
        if self.adjustment != "none" and self.adjustment_window_minutes == 0:
            raise BaselineError(
                "invalid_param",
                "adjustment_window_minutes must be positive when an adjustment is applied (or set adjustment to none).",
                "adjustment_window_minutes",
            )


@dataclass(frozen=True)
class PjmHigh4of5Params(LikeDayParams):
    """PJM Economic Load Response CBL: high 4 of 5 weekdays in 45 days, 25% low-usage screen
    against the 5 chosen, high 2 of 3 like weekend days (Saturdays apart), symmetric additive
    adjustment over the 3 hours ending 1 hour before the event, uncapped. Fewer than the 5 (3 for
    weekends) days: no baseline, for review."""

    method: ClassVar[str] = "pjm-high-4-of-5"


@dataclass(frozen=True)
class Caiso10in10Params(LikeDayParams):
    """CAISO 10 in 10: the 10 most recent eligible weekdays in 45 days (4 in 4 for weekends and
    holidays together), no low-usage screen, day-of multiplicative adjustment from the 3 hours
    ending 1 hour before the event, capped at ±20%. At least 5 days (2 for weekends and holidays):
    below that the most recent event days make up the five."""

    method: ClassVar[str] = "caiso-10-in-10"
    weekday_candidate_days: int = 10
    weekday_keep_highest: int = 10
    weekend_candidate_days: int = 4
    weekend_keep_highest: int = 4
    weekend_like_days: str = "together"
    low_usage_threshold: float | None = None
    weekday_min_days: int = 5
    weekend_min_days: int = 2
    below_min_days: str = "event_days"
    adjustment: str = "multiplicative"
    adjustment_cap: float | None = 0.2


@dataclass(frozen=True)
class NyisoCblParams(LikeDayParams):
    """NYISO CBL: highest 5 of the 10 most recent eligible weekdays in 30 days, days below 25%
    of the window's peak day screened out, highest 2 of the last 3 like weekend days, in-day
    multiplicative adjustment from the 2 hours starting 4 hours before the event, within [0.8, 1.2].
    Fewer than 5 weekdays (2 weekend days): no baseline, for review."""

    method: ClassVar[str] = "nyiso-cbl"
    lookback_days: int = 30
    weekday_candidate_days: int = 10
    weekday_keep_highest: int = 5
    low_usage_basis: str = "peak_of_window"
    weekend_min_days: int = 2
    adjustment: str = "multiplicative"
    adjustment_window_minutes: int = 120
    adjustment_gap_minutes: int = 120
    adjustment_cap: float | None = 0.2


@dataclass(frozen=True)
class CaisoMgoParams(Caiso10in10Params):
    """CAISO Metered Generator Output: 10 in 10 on the device's own meter (a battery's or generator's), so the
    baseline is what the device did on like days and performance is the change in its output."""

    method: ClassVar[str] = "caiso-mgo"


@dataclass(frozen=True)
class IsoNeParams(LikeDayParams):
    """ISO-NE: the mean of the 10 most recent like days in 45 (weekdays; Saturdays; Sundays and holidays,
    each from the last 4), no low-usage screen, with an additive adjustment over the hour before the event
    (the meter reading it starts from). At least 5 weekdays (2 weekend days), below that for review."""

    method: ClassVar[str] = "isone-10-day"
    weekday_candidate_days: int = 10
    weekday_keep_highest: int = 10
    weekend_candidate_days: int = 4
    weekend_keep_highest: int = 4
    weekend_min_days: int = 2
    low_usage_threshold: float | None = None
    adjustment_window_minutes: int = 60
    adjustment_gap_minutes: int = 0


@dataclass(frozen=True)
class ErcotMiddle8of10Params(LikeDayParams):
    """ERCOT ERS default baseline, middle 8 of 10 like days: of the 10 most recent like days in 45, the highest
    and the lowest (average load over the event hours) are left out and the 8 averaged; weekends 8 of 10 of
    weekend days and holidays together; additive adjustment over the 3 hours ending 1 hour before."""

    method: ClassVar[str] = "ercot-middle-8-of-10"
    weekday_candidate_days: int = 10
    weekday_keep_highest: int = 8
    weekend_candidate_days: int = 10
    weekend_keep_highest: int = 8
    weekend_like_days: str = "together"
    drop_highest: int = 1
    low_usage_threshold: float | None = None
    weekend_min_days: int = 5


@dataclass(frozen=True)
class MeterBeforeMeterAfterParams(BaselineParams):
    """Meter before / meter after: the average load over window_minutes ending gap_minutes before
    the event, flat through it. window_minutes None: the one data interval just before the event."""

    method: ClassVar[str] = "meter-before-meter-after"
    window_minutes: int | None = None
    gap_minutes: int = 0


@dataclass(frozen=True)
class MeteredOutputParams(BaselineParams):
    """A battery's or generator's own meter (positive = consuming/charging, negative = output).

    - baseline_rule "pre_event": the device's average over window_minutes ending gap_minutes
      before the event, so performance is the change in what the device does; "zero": all
      measured output during the event counts.
    - credit_stopped_charging: with "pre_event", whether a device that was charging before
      the event earns credit for stopping; False caps the pre-event level at 0.
    - floor_at_zero is off: a device that was already discharging has a negative baseline.
    """

    method: ClassVar[str] = "metered-output"
    baseline_rule: str = "pre_event"
    window_minutes: int | None = 60
    gap_minutes: int = 0
    credit_stopped_charging: bool = True
    floor_at_zero: bool = False


@dataclass(frozen=True)
class CaltrackParams(BaselineParams):
    """CalTRACK hourly regression on load and outdoor temperature (opendsm's DR meter model).

    - lookback_days: local days before the event day the model is fitted on (event days left out).
    - min_days: fewest of them with data; with fewer there is no baseline (below_min_days), for review.
    """

    method: ClassVar[str] = "caltrack-hourly"
    lookback_days: int = 90
    min_days: int = 30

    def _check_together(self) -> None:
        if self.min_days > self.lookback_days:
            raise BaselineError(
                "invalid_param",
                f"min_days ({self.min_days}) cannot exceed lookback_days ({self.lookback_days}).",
                "min_days",
            )


@dataclass(frozen=True)
class MatchDayParams(BaselineParams):
    """PJM's Match Day (3-day average): the 3 like days in 45 whose load over the event day's non-event hours is
    closest to the event day's, the hour either side of the event left out; at least 3 such days.

    - match_days: how many of the closest days are averaged; min_days: fewest to settle on.
    - exclude_minutes: left out of the comparison before the event's start and after its end.
    - match_day_before: also compare the day before each candidate with the day before the event (ERCOT).
    - weekend_like_days: as for like-day methods.
    """

    method: ClassVar[str] = "pjm-match-day"
    lookback_days: int = 45
    match_days: int = 3
    min_days: int = 3
    exclude_minutes: int = 60
    match_day_before: bool = False
    weekend_like_days: str = "saturday_apart"

    def _check_together(self) -> None:
        if self.min_days > self.match_days:
            raise BaselineError(
                "invalid_param", f"min_days ({self.min_days}) cannot exceed match_days ({self.match_days}).", "min_days"
            )


@dataclass(frozen=True)
class ErcotMatchingDayPairParams(MatchDayParams):
    """ERCOT ERS matching day pair: the like day whose load, with the day before it, is closest to the event day's
    outside the event and the day before it."""

    method: ClassVar[str] = "ercot-matching-day-pair"
    match_days: int = 1
    min_days: int = 1
    match_day_before: bool = True
