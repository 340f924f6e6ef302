"""Baselines for measurement and verification: what a site would have used without the event.

Pure functions over plain values (no ORM): settlement, the `baseline` command, benchmarks
and the simulator feed them readings and get a BaselineResult back.

Interface
---------
    compute_baseline(*, method, readings, event_start, event_end, time_zone,
                     market=None, event_days=frozenset(), holidays=None, params=None) -> BaselineResult
    compute_baselines(*, method, sites, event_start, event_end, time_zone, market=None,
                      event_days=frozenset(), holidays=None, params=None)
        -> (results: dict[key, BaselineResult], errors: dict[key, BaselineError])

- method: a code from METHODS (a Market's `baseline_methods`): pjm-high-4-of-5, caiso-10-in-10,
  nyiso-cbl, isone-10-day, ercot-middle-8-of-10, caiso-mgo (10 in 10 on the device's own meter),
  pjm-match-day, ercot-matching-day-pair (the like days most like the event day outside the event),
  meter-before-meter-after, metered-output (alias metered-device-output), caltrack-hourly (a regression
  on load and temperature: pass `temperatures`, (hour starts as epoch seconds, °F), per site).
- readings: IntervalReadings(starts=epoch seconds int64, kwh=float64 per interval, NaN for a
  missing reading[, interval_seconds]) or IntervalReadings.from_mapping({aware start: kWh}).
  The interval length (5, 15 or 60 minutes) comes from interval_seconds, the interval_minutes
  parameter or the spacing of the starts; mixed lengths are refused (BaselineError).
- event_start, event_end: aware datetimes, the event is [start, end), on the interval grid.
- time_zone: the market's IANA zone; days, weekdays and wall-clock slots are local there.
- market: a market code, for its holiday calendar (holidays.py); or pass `holidays`, a set of
  local dates, to use instead. event_days: local dates of other events, never baseline days.
  compute_baselines takes one set for all sites or a mapping site key -> set.
- params: the method's params dataclass, or a dict of overrides (a program's settings),
  unknown keys and bad values refused by name. See params.py for every number and default.

A BaselineResult holds, per event interval, the start (aware UTC) and baseline, actual and
reduction kW (baseline - actual, not floored); the days used and the days skipped with the
reason (date -> reason); the adjustment (offset or factor, capped or not); and flags
(results.py). kW = kWh / interval hours. The rules each method follows on DST days, with
missing data, short history and after-midnight events are in like_days.py and pre_event.py.

Bad input (naive times, an end before the start, mixed interval lengths, unknown method or
parameter) raises BaselineError (a DomainError with a code, a message and the field).

For many sites of one event, compute_baselines plans once (grid, calendar, windows) and does
a few numpy operations per site.
"""

import dataclasses
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from settlement.baselines import like_days, match_days, pre_event, regression
from settlement.baselines.errors import BaselineError
from settlement.baselines.params import (
    BaselineParams,
    Caiso10in10Params,
    CaisoMgoParams,
    CaltrackParams,
    ErcotMatchingDayPairParams,
    ErcotMiddle8of10Params,
    IsoNeParams,
    MatchDayParams,
    MeterBeforeMeterAfterParams,
    MeteredOutputParams,
    NyisoCblParams,
    PjmHigh4of5Params,
)
from settlement.baselines.results import BELOW_MIN_DAYS, FALLBACK_BASELINE, BaselineResult
from settlement.baselines.timeline import IntervalReadings, interval_seconds_of

__all__ = [
    "METHODS",
    "BaselineError",
    "BaselineResult",
    "IntervalReadings",
    "compute_baseline",
    "compute_baselines",
    "get_method",
    "make_params",
]


@dataclass(frozen=True)
class Method:
    code: str
    params_class: type[BaselineParams]
    plan: Callable
    evaluate: Callable
    uses_calendar: bool
    meter: str = "site"  # what settlement measures: the site's meter, or each dispatched device's own ("device")
    uses_weather: bool = False  # evaluate takes the site's temperatures (hour starts, °F)


METHODS: dict[str, Method] = {
    m.code: m
    for m in (
        Method("pjm-high-4-of-5", PjmHigh4of5Params, like_days.plan, like_days.evaluate, True),
        Method("caiso-10-in-10", Caiso10in10Params, like_days.plan, like_days.evaluate, True),
        Method("nyiso-cbl", NyisoCblParams, like_days.plan, like_days.evaluate, True),
        Method("isone-10-day", IsoNeParams, like_days.plan, like_days.evaluate, True),
        Method("ercot-middle-8-of-10", ErcotMiddle8of10Params, like_days.plan, like_days.evaluate, True),
        Method("caiso-mgo", CaisoMgoParams, like_days.plan, like_days.evaluate, True, meter="device"),
        Method("meter-before-meter-after", MeterBeforeMeterAfterParams, pre_event.plan, pre_event.evaluate, False),
        Method("metered-output", MeteredOutputParams, pre_event.plan, pre_event.evaluate, False, meter="device"),
        Method("pjm-match-day", MatchDayParams, match_days.plan, match_days.evaluate, True),
        Method("ercot-matching-day-pair", ErcotMatchingDayPairParams, match_days.plan, match_days.evaluate, True),
        Method("caltrack-hourly", CaltrackParams, regression.plan, regression.evaluate, False, uses_weather=True),
    )
}
# The markets' seed data names the device-meter method this way.
ALIASES = {"metered-device-output": "metered-output"}


def get_method(code: str) -> Method:
    method = METHODS.get(ALIASES.get(code, code)) if isinstance(code, str) else None
    if method is None:
        raise BaselineError(
            "unknown_method", f"Unknown baseline method {code!r}; known: {', '.join([*METHODS, *ALIASES])}.", "method"
        )
    return method


def make_params(method: Method, params: BaselineParams | Mapping | None) -> BaselineParams:
    if isinstance(params, BaselineParams):
        if type(params) is not method.params_class:
            raise BaselineError(
                "invalid_param",
                f"{method.code} takes {method.params_class.__name__}, not {type(params).__name__}.",
                "params",
            )
        return params
    return method.params_class.from_settings(params)


def _plan(
    method: Method,
    params: BaselineParams,
    step: int,
    *,
    event_start: datetime,
    event_end: datetime,
    time_zone: str,
    market: str | None,
    event_days: Iterable[date],
    holidays: Container[date] | None,
) -> like_days.LikeDayPlan | pre_event.PreEventPlan:
    return method.plan(
        method=method.code,
        params=params,
        step=step,
        event_start=event_start,
        event_end=event_end,
        time_zone=time_zone,
        market=market,
        event_days=frozenset(event_days),
        holidays=holidays,
    )


def _evaluate(m: Method, plan: Any, readings: IntervalReadings, temperatures: tuple[Any, Any] | None) -> BaselineResult:
    if m.uses_weather:
        return m.evaluate(plan, readings, temperatures=temperatures)
    return m.evaluate(plan, readings)


def _fallback(
    p: BaselineParams, result: BaselineResult, step: int, plan_fallback: Callable[[Method, BaselineParams, int], Any]
) -> tuple[Method, BaselineParams, Any] | None:
    """The program's fallback method, its params and its plan, when `result` is short of days and the
    program says so (below_min_days "fallback"); otherwise None."""
    if BELOW_MIN_DAYS not in result.flags or getattr(p, "below_min_days", None) != "fallback":
        return None
    fallback = METHODS[p.fallback_method]  # type: ignore[attr-defined]  # checked: LikeDayParams
    fallback_params = fallback.params_class.from_settings(
        {"interval_minutes": p.interval_minutes, "floor_at_zero": p.floor_at_zero}
    )
    return fallback, fallback_params, plan_fallback(fallback, fallback_params, step)


def _fell_back(result: BaselineResult, fallback: BaselineResult) -> BaselineResult:
    """The fallback's baseline, flagged, with the like-day walk that led to it."""
    return dataclasses.replace(
        fallback,
        flags=fallback.flags | {FALLBACK_BASELINE, BELOW_MIN_DAYS},
        skipped=result.skipped,
    )


def compute_baseline(
    *,
    method: str,
    readings: IntervalReadings,
    event_start: datetime,
    event_end: datetime,
    time_zone: str,
    market: str | None = None,
    event_days: Iterable[date] = frozenset(),
    holidays: Container[date] | None = None,
    params: BaselineParams | Mapping | None = None,
    temperatures: tuple[Any, Any] | None = None,
) -> BaselineResult:
    """One site's baseline for one event (see the module docstring)."""
    results, errors = compute_baselines(
        method=method,
        sites={0: readings},
        event_start=event_start,
        event_end=event_end,
        time_zone=time_zone,
        market=market,
        event_days=event_days,
        holidays=holidays,
        params=params,
        temperatures=None if temperatures is None else {0: temperatures},
    )
    if errors:
        raise errors[0]
    return results[0]


def compute_baselines(
    *,
    method: str,
    sites: Mapping,
    event_start: datetime,
    event_end: datetime,
    time_zone: str,
    market: str | None = None,
    event_days: Iterable[date] | Mapping[Any, Iterable[date]] = frozenset(),
    holidays: Container[date] | None = None,
    params: BaselineParams | Mapping | None = None,
    temperatures: Mapping[Any, tuple[Any, Any]] | None = None,
) -> tuple[dict, dict]:
    """Many sites, one event: (results by site key, BaselineError by site key for the sites
    whose readings were refused). Errors in the event or parameters raise at once."""
    m = get_method(method)
    p = make_params(m, params)
    plans: dict = {}
    fallback_plans: dict = {}
    results, errors = {}, {}

    def plan_fallback(fm: Method, fp: BaselineParams, step: int) -> Any:
        if step not in fallback_plans:  # a pre-event method's plan does not depend on the event days
            fallback_plans[step] = _plan(
                fm,
                fp,
                step,
                event_start=event_start,
                event_end=event_end,
                time_zone=time_zone,
                market=market,
                event_days=frozenset(),
                holidays=holidays,
            )
        return fallback_plans[step]

    for key, readings in sites.items():
        days = frozenset(event_days.get(key, ())) if isinstance(event_days, Mapping) else frozenset(event_days)
        try:
            step = interval_seconds_of(readings, p.interval_minutes)
        except BaselineError as exc:
            errors[key] = exc
            continue
        plan = plans.get((step, days))
        if plan is None:
            plan = plans[(step, days)] = _plan(
                m,
                p,
                step,
                event_start=event_start,
                event_end=event_end,
                time_zone=time_zone,
                market=market,
                event_days=days,
                holidays=holidays,
            )
        try:
            result = _evaluate(m, plan, readings, (temperatures or {}).get(key))
            fallback = _fallback(p, result, step, plan_fallback)
            if fallback is not None:
                fm, _, fplan = fallback
                result = _fell_back(result, fm.evaluate(fplan, readings))
            results[key] = result
        except BaselineError as exc:
            errors[key] = exc
    return results, errors
