"""CAISO 10 in 10 with the day-of multiplicative adjustment, on hand-built hourly data in
America/Los_Angeles. July 2025: Fri 4 is a holiday; the weekdays before Tue 15 July, most
recent first: 14, 11, 10, 9, 8, 7, 3, 2, 1, 30 June, 27 June."""

from datetime import date

from settlement.baselines import compute_baseline
from settlement.baselines.results import INSUFFICIENT_HISTORY, MISSING_ACTUAL
from tests.settlement.baseline_fixtures import LA, LOS_ANGELES, at, profile, series, utc, values

METHOD = "caiso-10-in-10"
JUL = {d: date(2025, 7, d) for d in range(1, 32)}
JUN = {d: date(2025, 6, d) for d in range(1, 31)}
NO_ADJUSTMENT = {"adjustment": "none"}


def caiso(readings, start, end, *, market="CAISO", **kw):
    return compute_baseline(
        method=METHOD, readings=readings, event_start=start, event_end=end, time_zone=LOS_ANGELES, market=market, **kw
    )


def la(y, m, d, h=0):
    return at(y, m, d, h, tz=LA)


def july(load, *, first=date(2025, 5, 20), last=date(2025, 7, 16)):
    return series(load, first=first, last=last, tz=LA)


def event_15_july(readings, **kw):
    return caiso(readings, la(2025, 7, 15, 14), la(2025, 7, 15, 16), **kw)


TEN = {
    JUL[14]: 10,
    JUL[11]: 9,
    JUL[10]: 8,
    JUL[9]: 7,
    JUL[8]: 6,
    JUL[7]: 5,
    JUL[3]: 4,
    JUL[2]: 3,
    JUL[1]: 2,
    JUN[30]: 1,
    JUN[27]: 100,
}


def test_weekday_baseline_is_the_mean_of_the_ten_most_recent_weekdays_times_the_day_of_factor():
    event_day = (
        {(JUL[15], h): 6.05 for h in (10, 11, 12)} | {(JUL[15], 13): 50.0} | {(JUL[15], h): 2.0 for h in (14, 15)}
    )
    result = event_15_july(july(profile(default=5.0, days=TEN, hours=event_day)))
    # Mean of 10, 9, ..., 1 = 5.5 (27 June, at 100, is the 11th: not needed). Window 10:00-13:00 PDT:
    # factor = (3 x 6.05) / (3 x 5.5) = 1.1 (13:00 skipped) -> baseline 6.05; reduction 6.05 - 2 = 4.05.
    assert values(result.baseline_kw) == [6.05, 6.05]
    assert values(result.reduction_kw) == [4.05, 4.05]
    assert result.days_used == (JUL[14], JUL[11], JUL[10], JUL[9], JUL[8], JUL[7], JUL[3], JUL[2], JUL[1], JUN[30])
    assert result.skipped[JUN[27]] == "not_needed" and result.skipped[JUL[4]] == "holiday"
    assert result.adjustment.kind == "multiplicative" and round(result.adjustment.value, 9) == 1.1
    assert result.adjustment.window == (utc(2025, 7, 15, 17), utc(2025, 7, 15, 20))


def test_a_low_day_is_kept_because_caiso_has_no_low_usage_screen():
    result = event_15_july(july(profile(default=5.0, days=TEN)), params=NO_ADJUSTMENT)
    # 30 June (1) is below 25% of the mean 5.5 but 10 in 10 does not screen.
    assert JUN[30] in result.days_used and "low_usage" not in result.skipped.values()
    assert values(result.baseline_kw) == [5.5, 5.5]


def test_a_low_usage_threshold_parameter_turns_the_screen_on():
    days = {JUN[30]: 1.0}
    result = event_15_july(july(profile(default=10.0, days=days)), params=NO_ADJUSTMENT | {"low_usage_threshold": 0.25})
    # Pool mean (9 x 10 + 1) / 10 = 9.1, limit 2.275: 30 June is low, replaced by 27 June (10).
    assert result.skipped[JUN[30]] == "low_usage" and JUN[27] in result.days_used
    assert values(result.baseline_kw) == [10.0, 10.0]


def test_the_day_of_factor_is_capped_at_twenty_percent():
    up = event_15_july(july(profile(default=5.0, hours={(JUL[15], h): 10.0 for h in (10, 11, 12)})))
    down = event_15_july(july(profile(default=5.0, hours={(JUL[15], h): 1.0 for h in (10, 11, 12)})))
    # 10 / 5 = 2.0 -> 1.2 -> 6 kW; 1 / 5 = 0.2 -> 0.8 -> 4 kW.
    assert (up.adjustment.value, up.adjustment.uncapped, up.adjustment.capped) == (1.2, 2.0, True)
    assert values(up.baseline_kw) == [6.0, 6.0]
    assert (down.adjustment.value, down.adjustment.capped) == (0.8, True)
    assert values(down.baseline_kw) == [4.0, 4.0]


def test_a_program_may_allow_a_forty_percent_factor():
    result = event_15_july(
        july(profile(default=5.0, hours={(JUL[15], h): 10.0 for h in (10, 11, 12)})), params={"adjustment_cap": 0.4}
    )
    assert result.adjustment.value == 1.4
    assert values(result.baseline_kw) == [7.0, 7.0]


def test_a_weekend_event_uses_the_four_most_recent_weekend_days_and_holidays():
    days = {JUL[6]: 4, JUL[5]: 6, JUL[4]: 8, JUN[29]: 2, JUN[28]: 100, JUL[11]: 50}
    result = caiso(
        july(profile(default=1.0, days=days)), la(2025, 7, 12, 14), la(2025, 7, 12, 16), params=NO_ADJUSTMENT
    )
    # Saturday event: Sun 6, Sat 5, Fri 4 (holiday), Sun 29 June -> (4 + 6 + 8 + 2) / 4 = 5.
    assert result.days_used == (JUL[6], JUL[5], JUL[4], JUN[29])
    assert result.skipped[JUL[11]] == "not_like_day" and result.skipped[JUN[28]] == "not_needed"
    assert values(result.baseline_kw) == [5.0, 5.0]


def test_presidents_day_is_a_caiso_holiday_but_not_a_nerc_one():
    readings = series(
        profile(default=5.0, days={date(2025, 2, 17): 50}), first=date(2025, 1, 1), last=date(2025, 2, 18), tz=LA
    )
    own = caiso(readings, la(2025, 2, 18, 14), la(2025, 2, 18, 16), params=NO_ADJUSTMENT)
    nerc = caiso(readings, la(2025, 2, 18, 14), la(2025, 2, 18, 16), market="PJM", params=NO_ADJUSTMENT)
    # CAISO: 17 Feb skipped, 10 days at 5. NERC: 17 Feb used -> (50 + 9 x 5) / 10 = 9.5.
    assert own.skipped[date(2025, 2, 17)] == "holiday"
    assert values(own.baseline_kw) == [5.0, 5.0]
    assert date(2025, 2, 17) in nerc.days_used
    assert values(nerc.baseline_kw) == [9.5, 9.5]


def test_an_event_day_is_not_a_baseline_day():
    result = event_15_july(july(profile(default=5.0, days={JUL[10]: 50})), event_days={JUL[10]}, params=NO_ADJUSTMENT)
    assert result.skipped[JUL[10]] == "event_day" and JUN[27] in result.days_used
    assert values(result.baseline_kw) == [5.0, 5.0]


def test_a_candidate_missing_an_event_hour_is_replaced_and_a_missing_actual_gives_no_reduction():
    hours = {(JUL[11], 15): None, (JUL[15], 15): None, (JUL[15], 14): 3.0}
    result = event_15_july(july(profile(default=5.0, days={JUL[11]: 50}, hours=hours)), params=NO_ADJUSTMENT)
    assert result.skipped[JUL[11]] == "missing_intervals" and JUN[27] in result.days_used
    assert values(result.baseline_kw) == [5.0, 5.0]
    assert values(result.reduction_kw) == [2.0, 0.0]
    assert MISSING_ACTUAL in result.flags


def test_with_six_weekdays_of_history_the_baseline_is_their_mean_and_flagged():
    days = {JUL[7]: 1, JUL[8]: 2, JUL[9]: 3, JUL[10]: 4, JUL[11]: 5, JUL[14]: 6}
    result = event_15_july(july(profile(default=0.0, days=days), first=JUL[7]), params=NO_ADJUSTMENT)
    # (1 + 2 + 3 + 4 + 5 + 6) / 6 = 3.5
    assert INSUFFICIENT_HISTORY in result.flags
    assert len(result.days_used) == 6
    assert values(result.baseline_kw) == [3.5, 3.5]


def test_an_event_just_after_midnight_takes_its_window_from_the_evening_before():
    load = lambda local: (6.0 if local.date() == JUL[14] else 4.0) if 20 <= local.hour <= 22 else 10.0  # noqa: E731
    result = caiso(july(load), la(2025, 7, 15, 0), la(2025, 7, 15, 2), params={"adjustment_cap": None})
    # Window 20:00-23:00 PDT on 14 July. Each used day contributes the evening of the day before
    # it (13, 10, 9, ... July: all 4), so the factor is 6 / 4 = 1.5 (uncapped here) -> 15 kW.
    # (Each day's own evening would include the 14th's 6: factor 6 / 4.2.)
    assert result.adjustment.window == (utc(2025, 7, 15, 3), utc(2025, 7, 15, 6))
    assert result.adjustment.value == 1.5
    assert values(result.baseline_kw) == [15.0, 15.0]


def test_an_event_on_the_spring_forward_day_uses_weekend_days_at_the_same_wall_clock():
    c = {date(2025, 3, 8): 0, date(2025, 3, 2): 1, date(2025, 3, 1): 2, date(2025, 2, 23): 3}
    load = lambda local: local.hour + c.get(local.date(), 0)  # noqa: E731
    result = caiso(
        series(load, first=date(2025, 1, 15), last=date(2025, 3, 9), tz=LA),
        la(2025, 3, 9, 1),
        la(2025, 3, 9, 4),
        params=NO_ADJUSTMENT,
    )
    # 01:00 PST and 03:00 PDT; like days 8 Mar, 2 Mar, 1 Mar, 23 Feb: mean offset 1.5 -> 2.5 and 4.5.
    assert result.starts == (utc(2025, 3, 9, 9), utc(2025, 3, 9, 10))
    assert result.days_used == tuple(c)
    assert values(result.baseline_kw) == [2.5, 4.5]


def test_an_event_on_the_fall_back_day_gives_both_passes_of_one_am_the_same_baseline():
    c = {date(2025, 11, 1): 0, date(2025, 10, 26): 1, date(2025, 10, 25): 2, date(2025, 10, 19): 3}
    load = lambda local: local.hour + c.get(local.date(), 0)  # noqa: E731
    result = caiso(
        series(load, first=date(2025, 9, 10), last=date(2025, 11, 2), tz=LA),
        la(2025, 11, 2, 0),
        la(2025, 11, 2, 3),
        params=NO_ADJUSTMENT,
    )
    assert result.starts == tuple(utc(2025, 11, 2, h) for h in (7, 8, 9, 10))
    assert values(result.baseline_kw) == [1.5, 2.5, 2.5, 3.5]


def test_candidate_days_across_a_dst_change_are_matched_by_local_wall_clock():
    result = caiso(
        series(lambda local: float(local.hour), first=date(2025, 9, 15), last=date(2025, 11, 5), tz=LA),
        la(2025, 11, 5, 14),
        la(2025, 11, 5, 16),
    )
    # 4 and 3 Nov are PST, 31 Oct back to 22 Oct PDT: all give 14 and 15 at 14:00 and 15:00 local.
    assert result.days_used[:3] == (date(2025, 11, 4), date(2025, 11, 3), date(2025, 10, 31))
    assert values(result.baseline_kw) == [14.0, 15.0]
    assert result.adjustment.value == 1.0
