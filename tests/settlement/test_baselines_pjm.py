"""PJM High 4 of 5 with symmetric additive adjustment (SAA), on hand-built hourly data.

Loads are kWh per hour, so a value is also its kW. July 2025: Fri 4 is a NERC holiday;
the weekdays before Tue 15 July, most recent first: 14, 11, 10, 9, 8, 7, 3, 2, 1, 30 June.
"""

from datetime import date, timedelta

import pytest

from settlement.baselines import BaselineError, compute_baseline
from settlement.baselines.results import (
    ADJUSTMENT_NOT_APPLIED,
    BASELINE_FLOORED,
    BASELINE_UNAVAILABLE,
    FILLED_WITH_LOW_USAGE_DAYS,
    INSUFFICIENT_HISTORY,
    MISSING_ACTUAL,
)
from tests.settlement.baseline_fixtures import NEW_YORK, at, profile, series, utc, values

METHOD = "pjm-high-4-of-5"
JUL = {d: date(2025, 7, d) for d in range(1, 32)}
JUN30 = date(2025, 6, 30)
NO_ADJUSTMENT = {"adjustment": "none"}


def pjm(readings, start, end, **kw):
    return compute_baseline(
        method=METHOD, readings=readings, event_start=start, event_end=end, time_zone=NEW_YORK, market="PJM", **kw
    )


def july(load, *, first=date(2025, 5, 20), last=date(2025, 7, 16)):
    return series(load, first=first, last=last)


def event_15_july(readings, **kw):
    return pjm(readings, at(2025, 7, 15, 14), at(2025, 7, 15, 18), **kw)


def test_weekday_baseline_is_the_mean_of_the_four_highest_of_five_days_plus_the_saa_offset():
    event_day = (
        {(JUL[15], h): 11.0 for h in range(13)} | {(JUL[15], 13): 30.0} | {(JUL[15], h): 4.0 for h in range(14, 18)}
    )
    load = profile(default=7.0, days={JUL[14]: 10, JUL[11]: 8, JUL[10]: 12, JUL[9]: 6, JUL[8]: 9}, hours=event_day)
    result = event_15_july(july(load))
    # Pool (5 most recent weekdays): 14, 11, 10, 9, 8; low-usage limit 25% x mean 9 = 2.25, none below.
    # High 4: 12 (10th), 10 (14th), 9 (8th), 8 (11th) -> (12 + 10 + 9 + 8) / 4 = 9.75.
    # SAA over 10:00-13:00: actual 11 - baseline 9.75 = +1.25 (13:00, at 30 kW, is skipped).
    # Adjusted baseline 11.0; actual 4 -> reduction 7.0 in each of the four hours.
    assert values(result.baseline_kw) == [11.0] * 4
    assert values(result.actual_kw) == [4.0] * 4
    assert values(result.reduction_kw) == [7.0] * 4
    assert result.starts == tuple(utc(2025, 7, 15, h) for h in (18, 19, 20, 21))
    assert result.days_used == (JUL[14], JUL[11], JUL[10], JUL[8])
    assert result.adjustment.kind == "additive" and result.adjustment.value == 1.25 and not result.adjustment.capped
    assert result.flags == frozenset()


def test_days_not_used_are_listed_with_the_reason_most_recent_first():
    load = profile(default=7.0, days={JUL[14]: 10, JUL[11]: 8, JUL[10]: 12, JUL[9]: 6, JUL[8]: 9})
    result = event_15_july(july(load), params=NO_ADJUSTMENT)
    skipped = list(result.skipped.items())
    assert skipped[:6] == [
        (JUL[13], "not_like_day"),
        (JUL[12], "not_like_day"),
        (JUL[9], "not_highest"),
        (JUL[7], "not_needed"),
        (JUL[6], "not_like_day"),
        (JUL[5], "not_like_day"),
    ]
    assert result.skipped[JUL[4]] == "holiday"
    # The 45-day lookback: 31 May (45 days before) is the oldest day considered.
    assert min(result.skipped) == date(2025, 5, 31)
    assert len(result.skipped) + len(result.days_used) == 45


def test_the_saa_window_is_the_three_hours_ending_one_hour_before_the_event():
    hours = {(JUL[15], 10): 12.0, (JUL[15], 11): 11.0, (JUL[15], 12): 10.0, (JUL[15], 13): 40.0, (JUL[15], 9): 40.0}
    result = event_15_july(july(profile(default=10.0, hours=hours)))
    # Window 10:00-13:00 EDT = 14:00-17:00 UTC; mean(12, 11, 10) - 10 = +1.0; 09:00 and 13:00 do not count.
    assert result.adjustment.window == (utc(2025, 7, 15, 14), utc(2025, 7, 15, 17))
    assert result.adjustment.value == 1.0
    assert values(result.baseline_kw) == [11.0] * 4


def test_an_adjustment_cap_limits_the_offset_to_a_share_of_the_window_baseline():
    hours = {(JUL[15], h): 15.0 for h in (10, 11, 12)}
    result = event_15_july(july(profile(default=10.0, hours=hours)), params={"adjustment_cap": 0.2})
    # Offset 15 - 10 = +5, capped at 0.2 x 10 = +2 -> baseline 12.
    assert (result.adjustment.value, result.adjustment.uncapped, result.adjustment.capped) == (2.0, 5.0, True)
    assert values(result.baseline_kw) == [12.0] * 4


def test_a_negative_adjusted_baseline_is_kept_as_pjm_publishes_it_and_floored_only_when_the_program_says_so():
    hours = {(JUL[15], h): -20.0 for h in (10, 11, 12)}  # exporting solar before the event
    floored = event_15_july(july(profile(default=10.0, hours=hours)), params={"floor_at_zero": True})
    kept = event_15_july(july(profile(default=10.0, hours=hours)))
    # Offset -20 - 10 = -30 -> 10 - 30 = -20 kW; floored to 0; reduction = 0 - actual 10.
    assert values(floored.baseline_kw) == [0.0] * 4 and BASELINE_FLOORED in floored.flags
    assert values(floored.reduction_kw) == [-10.0] * 4  # not floored: settlement decides
    assert values(kept.baseline_kw) == [-20.0] * 4 and BASELINE_FLOORED not in kept.flags


def test_a_nerc_holiday_is_skipped():
    load = profile(default=1.0, days={JUL[7]: 10, JUL[4]: 50, JUL[3]: 9, JUL[2]: 8, JUL[1]: 7, JUN30: 6})
    result = pjm(july(load), at(2025, 7, 8, 14), at(2025, 7, 8, 18), params=NO_ADJUSTMENT)
    # Friday 4 July (50 kW) is not a candidate; pool 7, 3, 2, 1, 30 June; high 4 = (10+9+8+7)/4 = 8.5.
    assert result.skipped[JUL[4]] == "holiday"
    assert result.days_used == (JUL[7], JUL[3], JUL[2], JUL[1])
    assert values(result.baseline_kw) == [8.5] * 4


def test_independence_day_on_a_sunday_is_observed_on_monday_and_skipped():
    jul = {d: date(2027, 7, d) for d in (2, 1, 5)}
    load = profile(default=4.0, days={jul[5]: 50, jul[2]: 6, jul[1]: 6})
    result = pjm(
        series(load, first=date(2027, 5, 15), last=date(2027, 7, 6)),
        at(2027, 7, 6, 14),
        at(2027, 7, 6, 18),
        params=NO_ADJUSTMENT,
    )
    # Monday 5 July 2027 is the observed holiday; pool 2 Jul, 1 Jul, 30, 29, 28 Jun: high 4 = (6+6+4+4)/4 = 5.
    assert result.skipped[jul[5]] == "holiday"
    assert result.days_used == (jul[2], jul[1], date(2027, 6, 30), date(2027, 6, 29))
    assert values(result.baseline_kw) == [5.0] * 4


def test_independence_day_on_a_saturday_leaves_friday_a_normal_weekday():
    load = profile(default=4.0, days={date(2026, 7, 3): 9})
    result = pjm(
        series(load, first=date(2026, 5, 15), last=date(2026, 7, 7)),
        at(2026, 7, 7, 14),
        at(2026, 7, 7, 18),
        params=NO_ADJUSTMENT,
    )
    # NERC keeps a Saturday holiday on the Saturday: Friday 3 July 2026 is a candidate (and the highest).
    assert date(2026, 7, 3) in result.days_used
    assert result.skipped[date(2026, 7, 4)] == "holiday"  # also not a weekday
    assert values(result.baseline_kw) == [(9 + 4 + 4 + 4) / 4] * 4


def test_an_event_day_is_not_a_baseline_day():
    load = profile(default=1.0, days={JUL[14]: 10, JUL[11]: 8, JUL[10]: 50, JUL[9]: 6, JUL[8]: 9, JUL[7]: 7})
    result = event_15_july(july(load), event_days={JUL[10]}, params=NO_ADJUSTMENT)
    # Pool 14, 11, 9, 8, 7; high 4: 10, 9, 8, 7 -> 8.5 (the 50 kW event day is not used).
    assert result.skipped[JUL[10]] == "event_day"
    assert result.days_used == (JUL[14], JUL[11], JUL[8], JUL[7])
    assert values(result.baseline_kw) == [8.5] * 4


def test_a_low_usage_day_is_replaced_by_the_next_most_recent_weekday():
    load = profile(
        default=1.0, days={JUL[14]: 10, JUL[11]: 10, JUL[10]: 10, JUL[9]: 10, JUL[8]: 1, JUL[7]: 8, JUL[3]: 10}
    )
    result = event_15_july(july(load), params=NO_ADJUSTMENT)
    # First pool 14, 11, 10, 9, 8: mean 8.2, limit 2.05 -> the 8th (1) is low, replaced by the 7th (8).
    # Pool 14, 11, 10, 9, 7: mean 9.6, limit 2.4, none low. High 4 = the four 10s.
    assert result.skipped[JUL[8]] == "low_usage"
    assert result.skipped[JUL[7]] == "not_highest"
    assert result.days_used == (JUL[14], JUL[11], JUL[10], JUL[9])
    assert values(result.baseline_kw) == [10.0] * 4


def test_low_usage_is_judged_against_the_mean_of_the_chosen_days_not_the_peak():
    load = profile(default=4.0, days={JUL[14]: 40})
    result = event_15_july(july(load), params=NO_ADJUSTMENT)
    # Pool 40, 4, 4, 4, 4: mean 11.2, limit 2.8: the 4s stay (though below 25% of the 40 peak).
    assert "low_usage" not in result.skipped.values()
    assert values(result.baseline_kw) == [(40 + 4 + 4 + 4) / 4] * 4


def test_a_candidate_missing_an_event_hour_reading_is_not_eligible_but_one_missing_elsewhere_is():
    hours = {(JUL[11], 15): None, (JUL[10], 3): None}
    load = profile(
        default=1.0, days={JUL[14]: 10, JUL[11]: 50, JUL[10]: 9, JUL[9]: 8, JUL[8]: 7, JUL[7]: 6}, hours=hours
    )
    result = event_15_july(july(load), params=NO_ADJUSTMENT)
    # 11 July lacks 15:00 (an event hour): skipped. 10 July lacks 03:00 only: eligible.
    # Pool 14, 10, 9, 8, 7 -> high 4 = (10+9+8+7)/4 = 8.5.
    assert result.skipped[JUL[11]] == "missing_intervals"
    assert result.days_used == (JUL[14], JUL[10], JUL[9], JUL[8])
    assert values(result.baseline_kw) == [8.5] * 4


def test_a_candidate_missing_an_saa_window_reading_is_not_eligible():
    load = profile(default=10.0, days={JUL[14]: 50}, hours={(JUL[14], 11): None})
    result = event_15_july(july(load))
    # Pool 11, 10, 9, 8, 7 (all 10): baseline 10, SAA 10 - 10 = 0.
    assert result.skipped[JUL[14]] == "missing_intervals"
    assert values(result.baseline_kw) == [10.0] * 4


def test_a_missing_actual_during_the_event_gives_no_reduction_and_is_flagged():
    load = profile(default=10.0, hours={(JUL[15], h): 4.0 for h in (14, 16, 17)} | {(JUL[15], 15): None})
    result = event_15_july(july(load))
    assert values(result.actual_kw) == [4.0, None, 4.0, 4.0]
    assert values(result.reduction_kw) == [6.0, 0.0, 6.0, 6.0]
    assert values(result.baseline_kw) == [10.0] * 4
    assert MISSING_ACTUAL in result.flags


def test_a_missing_actual_in_the_saa_window_leaves_the_baseline_unadjusted():
    load = profile(default=10.0, hours={(JUL[15], 10): 20.0, (JUL[15], 11): None, (JUL[15], 12): 20.0})
    result = event_15_july(july(load))
    assert result.adjustment.value is None and result.adjustment.reason == "missing_actual"
    assert ADJUSTMENT_NOT_APPLIED in result.flags
    assert values(result.baseline_kw) == [10.0] * 4


def test_with_too_little_history_the_baseline_uses_the_days_found_and_is_flagged():
    load = profile(default=0.0, days={JUL[14]: 10, JUL[11]: 8, JUL[10]: 6})
    result = event_15_july(july(load, first=JUL[10]), params=NO_ADJUSTMENT | {"weekday_min_days": 3})
    # A program that allows 3 days. Only 14, 11, 10 July have data: pool of 3 < 5; high 4 of 3 = all: (10+8+6)/3 = 8.
    assert INSUFFICIENT_HISTORY in result.flags and BASELINE_UNAVAILABLE not in result.flags
    assert result.days_used == (JUL[14], JUL[11], JUL[10])
    assert result.skipped[JUL[9]] == "missing_intervals"
    assert values(result.baseline_kw) == [8.0] * 4


def test_with_fewer_days_than_min_days_there_is_no_baseline():
    load = profile(default=5.0)
    result = event_15_july(july(load, first=JUL[10]), params={"weekday_min_days": 4})
    assert {INSUFFICIENT_HISTORY, BASELINE_UNAVAILABLE} <= result.flags
    assert values(result.baseline_kw) == [None] * 4
    assert values(result.reduction_kw) == [None] * 4
    assert values(result.actual_kw) == [5.0] * 4
    assert result.adjustment.reason == "no_baseline"


def test_a_site_with_no_history_gets_no_baseline():
    result = event_15_july(july(profile(default=5.0), first=JUL[15]))
    assert result.days_used == ()
    assert {INSUFFICIENT_HISTORY, BASELINE_UNAVAILABLE} <= result.flags
    assert values(result.baseline_kw) == [None] * 4


def test_fill_with_low_usage_days_completes_a_short_pool():
    load = profile(default=10.0, days={JUL[8]: 1.0})
    readings = july(load, first=JUL[8])  # weekdays with data: 14, 11, 10, 9, 8 (8th is low)
    plain = event_15_july(readings, params=NO_ADJUSTMENT | {"weekday_min_days": 4})
    filled = event_15_july(readings, params=NO_ADJUSTMENT | {"fill_with_low_usage_days": True})
    # Without fill: pool 14, 11, 10, 9 (8th low, nothing older) -> short. With fill: the 8th
    # joins the pool of 5 and is then not among the highest 4. Both baselines are 10.
    assert INSUFFICIENT_HISTORY in plain.flags and plain.skipped[JUL[8]] == "low_usage"
    assert INSUFFICIENT_HISTORY not in filled.flags and FILLED_WITH_LOW_USAGE_DAYS in filled.flags
    assert filled.skipped[JUL[8]] == "not_highest"
    assert values(plain.baseline_kw) == values(filled.baseline_kw) == [10.0] * 4


def test_a_saturday_event_uses_the_high_two_of_the_last_three_saturdays_skipping_a_holiday():
    sat = {d: date(2026, *d) for d in ((7, 4), (6, 27), (6, 20), (6, 13))}
    load = profile(
        default=1.0, days={sat[(7, 4)]: 50, sat[(6, 27)]: 6, sat[(6, 20)]: 9, sat[(6, 13)]: 8, date(2026, 7, 5): 40}
    )
    result = pjm(
        series(load, first=date(2026, 5, 20), last=date(2026, 7, 11)),
        at(2026, 7, 11, 14),
        at(2026, 7, 11, 18),
        params=NO_ADJUSTMENT,
    )
    # Saturday 4 July 2026 is a holiday (grouped with Sundays); Saturdays 27, 20, 13 June -> high 2 = (9+8)/2.
    assert result.skipped[sat[(7, 4)]] == "holiday"
    assert result.skipped[date(2026, 7, 5)] == "not_like_day"
    assert result.skipped[sat[(6, 27)]] == "not_highest"
    assert result.days_used == (sat[(6, 20)], sat[(6, 13)])
    assert values(result.baseline_kw) == [8.5] * 4


def test_a_holiday_event_uses_sundays_and_holidays():
    sun = {d: date(2025, 8, d) for d in (31, 24, 17)}
    load = profile(default=1.0, days={sun[31]: 3, sun[24]: 5, sun[17]: 4, date(2025, 8, 30): 20})
    result = pjm(
        series(load, first=date(2025, 7, 15), last=date(2025, 9, 1)),
        at(2025, 9, 1, 14),
        at(2025, 9, 1, 18),
        params=NO_ADJUSTMENT,
    )
    # Labor Day: like days are Sundays 31, 24, 17 August -> high 2 = (5+4)/2; Saturday 30th is not like.
    assert result.days_used == (sun[24], sun[17])
    assert result.skipped[date(2025, 8, 30)] == "not_like_day"
    assert values(result.baseline_kw) == [4.5] * 4


def test_an_event_just_after_midnight_takes_its_saa_window_from_the_evening_before():
    evening = {JUL[14]: 6.0, JUL[13]: 4.0, JUL[10]: 5.0, JUL[9]: 3.0, JUL[15]: 7.0}
    load = lambda local: evening.get(local.date(), 5.0) if local.hour >= 21 else 10.0  # noqa: E731
    result = pjm(july(load), at(2025, 7, 16, 1), at(2025, 7, 16, 3))
    # Candidates 15, 14, 11, 10, 9 (all 10 kW at 01-03, ties -> most recent 4: 15, 14, 11, 10).
    # SAA window 21:00-24:00 on 15 July; for each used day the same hours of the day before:
    # 14th 6, 13th 4, 10th 5, 9th 3 -> mean 4.5. Offset 7 - 4.5 = +2.5 -> baseline 12.5.
    assert result.adjustment.window == (utc(2025, 7, 16, 1), utc(2025, 7, 16, 4))
    assert result.days_used == (JUL[15], JUL[14], JUL[11], JUL[10])
    assert result.adjustment.value == 2.5
    assert values(result.baseline_kw) == [12.5] * 2


def test_an_event_on_the_spring_forward_day_has_no_interval_in_the_skipped_hour():
    c = {date(2025, 3, 2): 0, date(2025, 2, 23): 2, date(2025, 2, 16): 1}
    load = lambda local: local.hour + c.get(local.date(), 0)  # noqa: E731
    result = pjm(
        series(load, first=date(2025, 1, 20), last=date(2025, 3, 9)),
        at(2025, 3, 9, 1),
        at(2025, 3, 9, 4),
        params=NO_ADJUSTMENT,
    )
    # 01:00 EST and 03:00 EDT only (02:00 does not exist). Sundays 2 Mar, 23 Feb, 16 Feb average
    # 2, 4, 3 over slots 1 and 3 -> high 2: 23 Feb and 16 Feb. Slot 1: (3+2)/2; slot 3: (5+4)/2.
    assert result.starts == (utc(2025, 3, 9, 6), utc(2025, 3, 9, 7))
    assert result.days_used == (date(2025, 2, 23), date(2025, 2, 16))
    assert values(result.baseline_kw) == [2.5, 4.5]
    assert values(result.actual_kw) == [1.0, 3.0]


def test_an_event_on_the_fall_back_day_matches_both_passes_of_the_repeated_hour():
    c = {date(2025, 10, 26): 0, date(2025, 10, 19): 1, date(2025, 10, 12): 2}

    def load(local):
        if local.date() == date(2025, 11, 2) and local.hour == 1:
            return 1.0 if local.utcoffset().total_seconds() == -4 * 3600 else 2.0
        return local.hour + c.get(local.date(), 0)

    result = pjm(
        series(load, first=date(2025, 9, 15), last=date(2025, 11, 2)),
        at(2025, 11, 2, 0),
        at(2025, 11, 2, 3),
        params=NO_ADJUSTMENT,
    )
    # 00:00 EDT, 01:00 EDT, 01:00 EST, 02:00 EST. High 2 of Sundays 26, 19, 12 Oct: 12 Oct (c=2), 19 Oct (c=1).
    # Slot 0: 1.5, slot 1: 2.5 (both passes), slot 2: 3.5.
    assert result.starts == tuple(utc(2025, 11, 2, h) for h in (4, 5, 6, 7))
    assert values(result.baseline_kw) == [1.5, 2.5, 2.5, 3.5]
    assert values(result.actual_kw) == [0.0, 1.0, 2.0, 2.0]


def test_candidate_days_across_a_dst_change_are_matched_by_local_wall_clock():
    result = pjm(
        series(lambda local: float(local.hour), first=date(2025, 1, 20), last=date(2025, 3, 11)),
        at(2025, 3, 11, 14),
        at(2025, 3, 11, 16),
    )
    # Candidates 10 Mar (EDT) and 7, 6, 5, 4 Mar (EST): each contributes its 14:00 and 15:00
    # local loads, 14 and 15 (by UTC the EST days would give 13 and 14). SAA: actual = baseline.
    assert result.days_used == (date(2025, 3, 10), date(2025, 3, 7), date(2025, 3, 6), date(2025, 3, 5))
    assert values(result.baseline_kw) == [14.0, 15.0]
    assert result.adjustment.value == 0.0


def test_a_candidate_fall_back_day_contributes_the_mean_of_its_repeated_hour():
    def load(local):
        if local.date() == date(2025, 11, 2) and local.hour == 1:
            return 4.0 if local.utcoffset().total_seconds() == -4 * 3600 else 8.0
        return {date(2025, 10, 26): 5.0, date(2025, 10, 19): 2.0}.get(local.date(), 1.0)

    result = pjm(
        series(load, first=date(2025, 9, 20), last=date(2025, 11, 9)),
        at(2025, 11, 9, 1),
        at(2025, 11, 9, 2),
        params=NO_ADJUSTMENT,
    )
    # Sundays 2 Nov (01:00 twice: 4 and 8 -> 6), 26 Oct (5), 19 Oct (2): high 2 = (6 + 5) / 2.
    assert result.days_used == (date(2025, 11, 2), date(2025, 10, 26))
    assert values(result.baseline_kw) == [5.5]


def test_a_spring_forward_candidate_lacking_the_event_hour_is_skipped():
    load = profile(
        default=1.0, days={date(2025, 3, 9): 50, date(2025, 3, 2): 4, date(2025, 2, 23): 6, date(2025, 2, 16): 5}
    )
    result = pjm(
        series(load, first=date(2025, 1, 20), last=date(2025, 3, 16)),
        at(2025, 3, 16, 2),
        at(2025, 3, 16, 3),
        params=NO_ADJUSTMENT,
    )
    # 9 March has no 02:00: skipped; Sundays 2 Mar, 23 Feb, 16 Feb -> high 2 = (6 + 5) / 2.
    assert result.skipped[date(2025, 3, 9)] == "dst_missing_hour"
    assert values(result.baseline_kw) == [5.5]


def test_fifteen_minute_data_is_matched_per_quarter_hour_and_reported_in_kw():
    load = lambda local: 0.25 * (1 + local.minute // 15)  # noqa: E731  kWh per 15 min: 0.25, 0.5, 0.75, 1.0
    result = pjm(
        series(load, first=date(2025, 6, 1), last=date(2025, 7, 15), minutes=15),
        at(2025, 7, 15, 14),
        at(2025, 7, 15, 15),
    )
    # kW = kWh x 4: 1, 2, 3, 4 at :00, :15, :30, :45; SAA offset 0.
    assert result.interval_minutes == 15
    assert values(result.baseline_kw) == [1.0, 2.0, 3.0, 4.0]
    assert result.starts[1] == at(2025, 7, 15, 14, 15)


def test_the_result_intervals_pair_each_start_with_its_values():
    load = profile(default=10.0, hours={(JUL[15], 15): None})
    first = event_15_july(july(load)).intervals[1]
    assert (first.start, first.baseline_kw, first.actual_kw, first.reduction_kw) == (
        utc(2025, 7, 15, 19),
        10.0,
        None,
        0.0,
    )
    assert first.start.tzinfo is not None and first.start.utcoffset().total_seconds() == 0


def test_a_whole_fall_back_day_is_one_event_of_25_hours_both_one_oclocks_on_the_like_days_one_oclock():
    """1 November 2026 (a Sunday) in New York, midnight to midnight: 25 hours, 24 on the clock. Every like day uses
    its wall-clock hour + 1 kWh; the baseline of each event hour is its clock hour's, the two 01:00s (EDT, EST) both
    2 kW. It was refused as longer than 24 hours; a day and an hour on the clock still is."""
    readings = series(
        lambda local: 0.5 if local.date() == date(2026, 11, 1) else local.hour + 1.0,
        first=date(2026, 9, 1),
        last=date(2026, 11, 1),
    )
    result = pjm(readings, at(2026, 11, 1), at(2026, 11, 2), params=NO_ADJUSTMENT)
    assert len(result.starts) == 25 and result.starts[2] - result.starts[1] == timedelta(hours=1)
    assert values(result.baseline_kw) == [1.0, 2.0, 2.0] + [float(h + 1) for h in range(2, 24)]
    assert values(result.reduction_kw) == [b - 0.5 for b in values(result.baseline_kw)]
    with pytest.raises(BaselineError) as refused:
        pjm(readings, at(2026, 10, 28, 14), at(2026, 10, 29, 15), params=NO_ADJUSTMENT)
    assert refused.value.problems[0].code == "invalid_event"
