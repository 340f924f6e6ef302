"""Too few baseline days: each method's minimum and what its program does below it, on hand-built hourly
data (a value is kWh per hour, so also kW). July 2025 in New York: Fri 4 is a holiday; the weekdays before
Tue 15 July, most recent first: 14, 11, 10, 9, 8, 7, 3, 2, 1, 30 June.

Before, weekday_min_days was 1: a site with one day of history was paid on that one day.
"""

from datetime import date, timedelta

import pytest

from settlement.baselines import BaselineError, compute_baseline
from settlement.baselines.results import (
    BASELINE_UNAVAILABLE,
    BELOW_MIN_DAYS,
    EVENT_DAYS_USED,
    FALLBACK_BASELINE,
    INSUFFICIENT_HISTORY,
    LOOKBACK_EXTENDED,
)
from settlement.services import lookback
from tests.settlement.baseline_fixtures import NEW_YORK, at, profile, series, values

JUL = {d: date(2025, 7, d) for d in range(1, 32)}
NO_ADJUSTMENT = {"adjustment": "none"}


def event_15_july(method, readings, **kw):
    return compute_baseline(
        method=method,
        readings=readings,
        event_start=at(2025, 7, 15, 14),
        event_end=at(2025, 7, 15, 16),
        time_zone=NEW_YORK,
        market="PJM",
        **kw,
    )


def one_day_of_history():
    """Only 14 July (12 kWh an hour) before the event day; the event day is 3 kWh an hour from 13:00."""
    hours = {(JUL[15], h): 3.0 for h in range(13, 24)}
    return series(profile(default=12.0, hours=hours), first=JUL[14], last=JUL[15])


@pytest.mark.parametrize("method", ["pjm-high-4-of-5", "caiso-10-in-10", "nyiso-cbl"])
def test_one_day_of_history_pays_nothing_and_is_flagged_for_review(method):
    # PJM and NYISO: no baseline below 5 weekdays, for review; CAISO tops up with event days, and there are none.
    result = event_15_july(method, one_day_of_history(), params=NO_ADJUSTMENT)
    assert {BASELINE_UNAVAILABLE, BELOW_MIN_DAYS, INSUFFICIENT_HISTORY} <= result.flags
    assert values(result.baseline_kw) == values(result.reduction_kw) == [None, None]
    assert result.days_used == (JUL[14],)


def test_a_program_may_settle_on_fewer_days_by_saying_so():
    result = event_15_july("pjm-high-4-of-5", one_day_of_history(), params=NO_ADJUSTMENT | {"weekday_min_days": 1})
    assert BELOW_MIN_DAYS not in result.flags and INSUFFICIENT_HISTORY in result.flags
    assert values(result.reduction_kw) == [9.0, 9.0]


def test_caiso_tops_the_pool_up_to_five_with_the_most_recent_event_days():
    """History: 14, 11, 10 July plain (10, 8, 6 kWh); 9, 8, 7, 3 July are event days (20, 30, 40, 50).
    Ten in ten wants 10 days, has 3 < 5: the two most recent event days, 9 and 8 July, make up five.
    Baseline (10 + 8 + 6 + 20 + 30) / 5 = 14.8 kW; actual 3 -> 11.8 kW."""
    busy = {JUL[9]: 20, JUL[8]: 30, JUL[7]: 40, JUL[3]: 50}
    hours = {(JUL[15], h): 3.0 for h in range(13, 24)}
    load = profile(default=0.0, days={JUL[14]: 10, JUL[11]: 8, JUL[10]: 6, **busy}, hours=hours)
    readings = series(load, first=JUL[3], last=JUL[15])

    result = event_15_july("caiso-10-in-10", readings, event_days=set(busy), params=NO_ADJUSTMENT)

    assert EVENT_DAYS_USED in result.flags and INSUFFICIENT_HISTORY in result.flags
    assert BASELINE_UNAVAILABLE not in result.flags
    assert result.days_used == (JUL[14], JUL[11], JUL[10], JUL[9], JUL[8])
    assert result.skipped[JUL[7]] == result.skipped[JUL[3]] == "event_day"
    assert values(result.baseline_kw) == [14.8, 14.8] and values(result.reduction_kw) == [11.8, 11.8]


def test_with_enough_days_the_event_days_are_left_out():
    load = profile(default=10.0, days={JUL[9]: 50})
    readings = series(load, first=date(2025, 6, 1), last=JUL[15])
    result = event_15_july("caiso-10-in-10", readings, event_days={JUL[9]}, params=NO_ADJUSTMENT)
    assert EVENT_DAYS_USED not in result.flags and JUL[9] not in result.days_used
    assert values(result.baseline_kw) == [10.0, 10.0]


def test_extend_lookback_reaches_back_for_like_days_beyond_the_window():
    """PJM with a 10-day look-back (5 - 14 July: weekdays 14, 11, 10, 9, 8, 7; 7 - 9 July have no data),
    extended to 20 days (25 June - 14 July). Within the window: 14, 11, 10 (10, 8, 6 kWh) = 3 days < 5; the
    two most recent weekdays before it, 3 July (30) and 2 July (40; 4 July is a holiday), top the pool up to 5.
    High 4 of 5: 40, 30, 10, 8 -> 22 kW."""
    days = {JUL[14]: 10, JUL[11]: 8, JUL[10]: 6, JUL[3]: 30, JUL[2]: 40, JUL[1]: 50}
    hours = {(d, h): None for d in (JUL[9], JUL[8], JUL[7]) for h in range(24)}
    load = profile(default=0.0, days=days, hours=hours)
    readings = series(load, first=date(2025, 6, 20), last=JUL[15])
    params = NO_ADJUSTMENT | {"lookback_days": 10, "below_min_days": "extend_lookback", "max_lookback_days": 20}

    result = event_15_july("pjm-high-4-of-5", readings, params=params)

    assert LOOKBACK_EXTENDED in result.flags and BELOW_MIN_DAYS not in result.flags
    assert result.days_used == (JUL[14], JUL[11], JUL[3], JUL[2])
    assert values(result.baseline_kw) == [22.0, 22.0]
    # Days before the window are not listed as skipped; the window's own reasons are.
    assert min(result.skipped) == JUL[5] and result.skipped[JUL[9]] == "missing_intervals"
    # A run reads far enough back for the extension.
    assert lookback("pjm-high-4-of-5", params) == timedelta(days=21)
    assert lookback("pjm-high-4-of-5", {"lookback_days": 10}) == timedelta(days=11)


def test_fallback_uses_the_programs_fallback_method():
    """One day of history; the program falls back to meter before / meter after: the hour before the event,
    13:00-14:00 on the event day, is 9 kWh -> baseline 9 kW; the event hours are 4 kWh -> reduction 5 kW."""
    hours = {(JUL[15], 13): 9.0} | {(JUL[15], h): 4.0 for h in range(14, 24)}
    readings = series(profile(default=12.0, hours=hours), first=JUL[14], last=JUL[15])
    params = NO_ADJUSTMENT | {"below_min_days": "fallback", "fallback_method": "meter-before-meter-after"}

    result = event_15_july("pjm-high-4-of-5", readings, params=params)

    assert {FALLBACK_BASELINE, BELOW_MIN_DAYS} <= result.flags and BASELINE_UNAVAILABLE not in result.flags
    assert result.method == "meter-before-meter-after"
    assert values(result.baseline_kw) == [9.0, 9.0] and values(result.reduction_kw) == [5.0, 5.0]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"below_min_days": "extend_lookback"}, "max_lookback_days"),
        ({"below_min_days": "extend_lookback", "max_lookback_days": 45}, "max_lookback_days"),
        ({"below_min_days": "fallback"}, "fallback_method"),
        ({"below_min_days": "fallback", "fallback_method": "pjm-high-4-of-5"}, "fallback_method"),
        ({"below_min_days": "guess"}, "below_min_days"),
    ],
)
def test_a_policy_without_what_it_needs_is_refused_by_name(params, field):
    with pytest.raises(BaselineError) as refused:
        event_15_july("pjm-high-4-of-5", one_day_of_history(), params=params)
    assert refused.value.problems[0].field == field
