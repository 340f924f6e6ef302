"""NYISO CBL: highest 5 of the 10 most recent eligible weekdays in 30 days, low-usage days
screened against the peak of the ten-day window, in-day factor from the 2 hours starting 4 hours before
the event, within [0.8, 1.2]. Hourly data in America/New_York; Fri 4 July 2025 is a holiday."""

from datetime import date, timedelta

from settlement.baselines import compute_baseline
from settlement.baselines.results import INSUFFICIENT_HISTORY, MISSING_ACTUAL
from tests.settlement.baseline_fixtures import NEW_YORK, at, profile, series, utc, values

METHOD = "nyiso-cbl"
JUL = {d: date(2025, 7, d) for d in range(1, 32)}
JUN = {d: date(2025, 6, d) for d in range(1, 31)}
NO_ADJUSTMENT = {"adjustment": "none"}


def nyiso(readings, start, end, **kw):
    return compute_baseline(
        method=METHOD, readings=readings, event_start=start, event_end=end, time_zone=NEW_YORK, market="NYISO", **kw
    )


def july(load, *, first=date(2025, 5, 20), last=date(2025, 7, 16)):
    return series(load, first=first, last=last)


def event_15_july(readings, **kw):
    return nyiso(readings, at(2025, 7, 15, 14), at(2025, 7, 15, 16), **kw)


def test_weekday_cbl_is_the_highest_five_of_ten_times_the_in_day_factor():
    days = {
        JUL[14]: 10,
        JUL[11]: 9,
        JUL[10]: 8,
        JUL[9]: 7,
        JUL[8]: 6,
        JUL[7]: 5,
        JUL[3]: 4,
        JUL[2]: 3,
        JUL[1]: 12,
        JUN[30]: 11,
    }
    event_day = {
        (JUL[15], 10): 11.0,
        (JUL[15], 11): 11.0,
        (JUL[15], 12): 50.0,
        (JUL[15], 13): 50.0,
        (JUL[15], 14): 3.0,
        (JUL[15], 15): 3.0,
    }
    result = event_15_july(july(profile(default=4.0, days=days, hours=event_day)))
    # Ten most recent eligible weekdays (4 July a holiday): 14 ... 30 June. Peak 12, limit 3: none low
    # (2 July's 3 is not below 3). Highest 5: 12, 11, 10, 9, 8 -> 10. Factor over 10:00-12:00:
    # 22 / 20 = 1.1 (12:00 and 13:00 are outside) -> 11; reduction 11 - 3 = 8.
    assert result.days_used == (JUL[14], JUL[11], JUL[10], JUL[1], JUN[30])
    assert result.skipped[JUL[9]] == "not_highest" and result.skipped[JUL[4]] == "holiday"
    assert result.skipped[JUN[27]] == "not_needed"
    assert result.adjustment.window == (utc(2025, 7, 15, 14), utc(2025, 7, 15, 16))
    assert round(result.adjustment.value, 9) == 1.1
    assert values(result.baseline_kw) == [11.0, 11.0]
    assert values(result.reduction_kw) == [8.0, 8.0]


def test_a_day_below_a_quarter_of_the_window_peak_is_low_usage():
    result = event_15_july(july(profile(default=6.0, days={JUL[14]: 20, JUN[30]: 4})), params=NO_ADJUSTMENT)
    # Window (ten most recent eligible): 14 July ... 30 June, peak 20, limit 5: 30 June (4) is
    # screened out (against the window's mean, 7.2 x 25% = 1.8, it would not be), and 27 June
    # joins the ten. Highest 5: 20, 6, 6, 6, 6 -> 8.8.
    assert result.skipped[JUN[30]] == "low_usage"
    assert result.skipped[JUN[27]] == "not_highest"
    assert values(result.baseline_kw) == [8.8, 8.8]


def test_the_in_day_factor_stays_within_point_eight_and_one_point_two():
    up = event_15_july(july(profile(default=10.0, hours={(JUL[15], 10): 15.0, (JUL[15], 11): 15.0})))
    down = event_15_july(july(profile(default=10.0, hours={(JUL[15], 10): 5.0, (JUL[15], 11): 5.0})))
    assert (up.adjustment.value, up.adjustment.uncapped, up.adjustment.capped) == (1.2, 1.5, True)
    assert values(up.baseline_kw) == [12.0, 12.0]
    assert (down.adjustment.value, down.adjustment.uncapped) == (0.8, 0.5)
    assert values(down.baseline_kw) == [8.0, 8.0]


def test_only_thirty_days_are_searched_and_a_short_pool_is_flagged():
    busy = {JUN[16] + timedelta(days=i) for i in range(25)} - {JUL[14], JUL[11]}
    load = profile(default=1.0, days={JUL[14]: 8, JUL[11]: 6, date(2025, 6, 13): 100})
    result = event_15_july(july(load), event_days=busy, params=NO_ADJUSTMENT | {"weekday_min_days": 2})
    # A program that allows 2 days. Every weekday from 16 June to 10 July is an event day: only 14 and 11 July remain -> (8 + 6) / 2.
    # 13 June (32 days back) is outside the lookback and never considered.
    assert result.days_used == (JUL[14], JUL[11])
    assert result.skipped[JUL[10]] == "event_day"
    assert min(result.skipped) == JUN[15] and date(2025, 6, 13) not in result.skipped
    assert INSUFFICIENT_HISTORY in result.flags
    assert values(result.baseline_kw) == [7.0, 7.0]


def test_a_candidate_missing_an_adjustment_window_reading_is_not_eligible():
    load = profile(default=10.0, days={JUL[14]: 50}, hours={(JUL[14], 10): None, (JUL[15], 15): None})
    result = event_15_july(july(load))
    assert result.skipped[JUL[14]] == "missing_intervals"
    assert values(result.baseline_kw) == [10.0, 10.0]
    assert values(result.reduction_kw) == [0.0, 0.0] and MISSING_ACTUAL in result.flags


def test_a_saturday_event_uses_the_highest_two_of_the_last_three_saturdays():
    days = {JUL[5]: 3, JUN[28]: 7, JUN[21]: 5, JUN[14]: 100, JUL[6]: 50}
    result = nyiso(
        july(profile(default=1.0, days=days)), at(2025, 7, 12, 14), at(2025, 7, 12, 16), params=NO_ADJUSTMENT
    )
    # Saturdays 5 Jul, 28 Jun, 21 Jun (14 Jun is the fourth: not needed, and its 100 is not the
    # window's peak, so nothing is screened: peak 7, limit 1.75) -> (7 + 5) / 2 = 6.
    assert result.days_used == (JUN[28], JUN[21])
    assert result.skipped[JUL[5]] == "not_highest" and result.skipped[JUN[14]] == "not_needed"
    assert result.skipped[JUL[6]] == "not_like_day"
    assert values(result.baseline_kw) == [6.0, 6.0]


def test_an_event_just_after_midnight_takes_its_window_from_the_evening_before():
    load = lambda local: (4.4 if local.date() == JUL[15] else 4.0) if local.hour >= 22 else 10.0  # noqa: E731
    result = nyiso(july(load), at(2025, 7, 16, 2), at(2025, 7, 16, 4))
    # Window 22:00-24:00 on 15 July (4 h to 2 h before 02:00). Highest 5 (all 10, ties to the most
    # recent): 15, 14, 11, 10, 9 July, whose previous evenings (14, 13, 10, 9, 8 July) are 4:
    # factor 4.4 / 4 = 1.1 -> 11.
    assert result.adjustment.window == (utc(2025, 7, 16, 2), utc(2025, 7, 16, 4))
    assert result.days_used == (JUL[15], JUL[14], JUL[11], JUL[10], JUL[9])
    assert round(result.adjustment.value, 9) == 1.1
    assert values(result.baseline_kw) == [11.0, 11.0]


def test_an_event_on_the_spring_forward_day_skips_the_missing_hour():
    c = {date(2025, 3, 2): 0, date(2025, 2, 23): 2, date(2025, 2, 16): 1}
    load = lambda local: local.hour + c.get(local.date(), 0)  # noqa: E731
    result = nyiso(
        series(load, first=date(2025, 2, 1), last=date(2025, 3, 9)),
        at(2025, 3, 9, 1),
        at(2025, 3, 9, 4),
        params=NO_ADJUSTMENT,
    )
    # Sundays 2 Mar, 23 Feb, 16 Feb average 2, 4, 3 over slots 1 and 3: highest 2 -> 2.5 and 4.5.
    assert result.starts == (utc(2025, 3, 9, 6), utc(2025, 3, 9, 7))
    assert values(result.baseline_kw) == [2.5, 4.5]


def test_an_event_on_the_fall_back_day_has_four_hourly_intervals_from_midnight_to_three():
    c = {date(2025, 10, 26): 0, date(2025, 10, 19): 1, date(2025, 10, 12): 2}
    load = lambda local: local.hour + c.get(local.date(), 0)  # noqa: E731
    result = nyiso(
        series(load, first=date(2025, 9, 25), last=date(2025, 11, 2)),
        at(2025, 11, 2, 0),
        at(2025, 11, 2, 3),
        params=NO_ADJUSTMENT,
    )
    assert len(result.starts) == 4
    assert values(result.baseline_kw) == [1.5, 2.5, 2.5, 3.5]


def test_candidate_days_across_a_dst_change_are_matched_by_local_wall_clock():
    result = nyiso(
        series(lambda local: float(local.hour), first=date(2025, 2, 1), last=date(2025, 3, 11)),
        at(2025, 3, 11, 14),
        at(2025, 3, 11, 16),
    )
    # Window 10:00-12:00 local: actual 10, 11 = baseline 10, 11 -> factor 1.
    assert values(result.baseline_kw) == [14.0, 15.0]
    assert result.adjustment.value == 1.0


def test_the_day_ahead_program_starts_its_window_two_days_back():
    """DADRP (window_offset_days 2): 14 July is not a candidate, so the ten days run from 11 July to 27 June
    (4.0): 9, 8, 7, 6, 5, 4, 3, 12, 11, 4 -> highest five 12, 11, 9, 8, 7 = 9.4 kW, where the economic
    program's window (from 14 July) gives 12, 11, 10, 9, 8 = 10 kW."""
    days = {JUL[14]: 10, JUL[11]: 9, JUL[10]: 8, JUL[9]: 7, JUL[8]: 6, JUL[7]: 5, JUL[3]: 4, JUL[2]: 3, JUL[1]: 12}
    days[JUN[30]] = 11
    readings = july(profile(default=4.0, days=days))
    economic = event_15_july(readings, params=NO_ADJUSTMENT)
    day_ahead = event_15_july(readings, params={**NO_ADJUSTMENT, "window_offset_days": 2})
    assert values(economic.baseline_kw) == [10.0, 10.0]
    assert values(day_ahead.baseline_kw) == [9.4, 9.4]
    assert day_ahead.skipped[JUL[14]] == "before_window" and JUL[14] not in day_ahead.days_used
    assert day_ahead.days_used == (JUL[11], JUL[10], JUL[9], JUL[1], JUN[30])
