"""Offer deadlines and windows on the 2026 DST days (8 March, 1 November) and on holidays, from the market rules
as pure values and from the seeded markets' rows."""

from datetime import UTC, date, datetime, time

import pytest

from aggregator.market.offers import deadlines as d
from aggregator.market.offers.services import window_for
from tests.factories import market

DA_1030 = d.DeadlineRule(market_kind="day_ahead", local_time=time(10, 30), days_before=1)
RT_65 = d.DeadlineRule(market_kind="real_time", minutes_before=65, days_before=0)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "start", "end", "hours"),
    [
        (date(2026, 3, 8), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), 23),
        (date(2026, 11, 1), utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), 25),
        (date(2026, 3, 9), utc(2026, 3, 9, 4), utc(2026, 3, 10, 4), 24),
    ],
)
def test_a_new_york_operating_day_has_23_or_25_hours_on_dst_days(day, start, end, hours):
    window = d.day_ahead_window(day, market_time_zone="America/New_York")
    assert window == (start, end)
    assert len(d.interval_starts(*window, 60)) == hours


def test_miso_operating_days_are_24_hours_of_eastern_standard_time_all_year():
    for day in (date(2026, 3, 8), date(2026, 11, 1)):
        start, end = d.day_ahead_window(day, market_time_zone="Etc/GMT+5")
        assert (start, end) == (utc(day.year, day.month, day.day, 5), utc(day.year, day.month, day.day + 1, 5))


@pytest.mark.parametrize(
    ("zone", "day", "start", "hours"),
    [
        ("America/Chicago", date(2026, 11, 1), utc(2026, 11, 1, 5), 25),
        ("America/Los_Angeles", date(2026, 3, 8), utc(2026, 3, 8, 8), 23),
    ],
)
def test_central_and_pacific_dst_days(zone, day, start, hours):
    window = d.day_ahead_window(day, market_time_zone=zone)
    assert window[0] == start
    assert len(d.interval_starts(*window, 60)) == hours


@pytest.mark.parametrize(
    ("operating_day", "deadline"),
    [
        (date(2026, 3, 8), utc(2026, 3, 7, 15, 30)),  # submitted Saturday 7 March, 10:30 EST
        (date(2026, 3, 9), utc(2026, 3, 8, 14, 30)),  # submitted on the DST day itself, 10:30 EDT
        (date(2026, 11, 1), utc(2026, 10, 31, 14, 30)),  # 10:30 EDT
        (date(2026, 11, 2), utc(2026, 11, 1, 15, 30)),  # 10:30 EST on the day the clocks fall back
    ],
)
def test_day_ahead_deadline_is_the_local_time_the_day_before(operating_day, deadline):
    assert d.day_ahead_deadline(operating_day, [DA_1030], market_time_zone="America/New_York") == deadline


def test_miso_closes_at_1030_eastern_prevailing_time_while_its_day_is_eastern_standard():
    rule = d.DeadlineRule(market_kind="day_ahead", local_time=time(10, 30), days_before=1, time_zone="America/New_York")
    # Operating day 9 March is submitted on 8 March after the clocks went forward: 10:30 EDT = 09:30 EST.
    assert d.day_ahead_deadline(date(2026, 3, 9), [rule], market_time_zone="Etc/GMT+5") == utc(2026, 3, 8, 14, 30)
    assert d.day_ahead_deadline(date(2026, 3, 8), [rule], market_time_zone="Etc/GMT+5") == utc(2026, 3, 7, 15, 30)


def test_real_time_deadline_is_minutes_before_the_operating_hour_across_the_spring_gap():
    # The hour 03:00-04:00 EDT on 8 March (07:00Z) closes 65 minutes earlier, at 00:55 EST (05:55Z).
    assert d.real_time_deadline(utc(2026, 3, 8, 7), [RT_65], market_time_zone="America/New_York") == utc(
        2026, 3, 8, 5, 55
    )


def test_the_repeated_autumn_hour_is_an_operating_hour_of_its_own():
    # 1 November: 01:00 EDT (05:00Z) and 01:00 EST (06:00Z) are two hours, each with its deadline.
    first = d.real_time_deadline(utc(2026, 11, 1, 5), [RT_65], market_time_zone="America/New_York")
    second = d.real_time_deadline(utc(2026, 11, 1, 6), [RT_65], market_time_zone="America/New_York")
    assert (first, second) == (utc(2026, 11, 1, 3, 55), utc(2026, 11, 1, 4, 55))


WEEKEND_0800 = d.DeadlineRule(market_kind="day_ahead", day_type="weekend", local_time=time(8, 0), days_before=1)
HOLIDAY_0900 = d.DeadlineRule(market_kind="day_ahead", day_type="holiday", local_time=time(9, 0), days_before=1)
RULES = [DA_1030, WEEKEND_0800, HOLIDAY_0900]
HOLIDAYS = {date(2026, 7, 4), date(2026, 12, 25)}  # NERC: Independence Day stays on Saturday 4 July


@pytest.mark.parametrize(
    ("operating_day", "deadline"),
    [
        (date(2026, 3, 9), utc(2026, 3, 8, 12, 0)),  # submitted Sunday 8 March (DST day): weekend row, 08:00 EDT
        (date(2026, 3, 10), utc(2026, 3, 9, 14, 30)),  # submitted Monday: the any row
        (date(2026, 12, 26), utc(2026, 12, 25, 14, 0)),  # submitted on Christmas (a Friday): holiday row, 09:00 EST
        (date(2026, 7, 5), utc(2026, 7, 4, 13, 0)),  # a holiday on a Saturday: the holiday row wins over weekend
    ],
)
def test_the_submission_days_own_row_wins_over_any(operating_day, deadline):
    assert d.day_ahead_deadline(operating_day, RULES, market_time_zone="America/New_York", holidays=HOLIDAYS) == (
        deadline
    )


def test_a_market_without_a_rule_has_no_deadline():
    with pytest.raises(d.NoDeadline):
        d.day_ahead_deadline(date(2026, 3, 9), [RT_65], market_time_zone="America/New_York")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "day", "deadline", "intervals"),
    [
        ("PJM", date(2026, 3, 8), utc(2026, 3, 7, 15, 30), 23),
        ("NYISO", date(2026, 11, 1), utc(2026, 10, 31, 9, 0), 25),  # 05:00 EDT
        ("MISO", date(2026, 3, 9), utc(2026, 3, 8, 14, 30), 24),
        ("ERCOT", date(2026, 11, 1), utc(2026, 10, 31, 15, 0), 25),  # 10:00 CDT
        ("CAISO", date(2026, 3, 8), utc(2026, 3, 7, 18, 0), 23),  # 10:00 PST
        ("ISO-NE", date(2026, 11, 2), utc(2026, 11, 1, 15, 30), 24),
        ("SPP", date(2026, 3, 9), utc(2026, 3, 8, 14, 30), 24),  # 09:30 CDT
    ],
)
def test_seeded_markets_day_ahead_windows_and_deadlines(code, day, deadline, intervals):
    window = window_for(market(code), "day_ahead", day=day)
    assert window.deadline == deadline
    assert len(window.starts) == intervals


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "hour", "deadline", "intervals"),
    [
        ("PJM", utc(2026, 11, 1, 6), utc(2026, 11, 1, 4, 55), 12),
        ("CAISO", utc(2026, 3, 8, 10), utc(2026, 3, 8, 8, 45), 12),
        ("ERCOT", utc(2026, 3, 8, 8), utc(2026, 3, 8, 7, 0), 4),
    ],
)
def test_seeded_markets_real_time_windows_and_deadlines(code, hour, deadline, intervals):
    window = window_for(market(code), "real_time", hour_start=hour)
    assert (window.deadline, len(window.starts), window.interval_minutes) == (
        deadline,
        intervals,
        60 // intervals,
    )
