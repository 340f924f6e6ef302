"""Holiday calendars: known dates for 2025-2027 and the observed-date rules."""

from datetime import date

import pytest

from aggregator.reference.holidays import (
    MARKET_TIME_ZONES,
    UnknownCalendar,
    calendar_for,
    holidays_between,
    holidays_in,
)


def d(text: str) -> date:
    return date.fromisoformat(text)


NERC = {
    2025: ["2025-01-01", "2025-05-26", "2025-07-04", "2025-09-01", "2025-11-27", "2025-12-25"],
    2026: ["2026-01-01", "2026-05-25", "2026-07-04", "2026-09-07", "2026-11-26", "2026-12-25"],
    # 4 July 2027 is a Sunday -> Monday 5 July; Christmas 2027 is a Saturday and stays there.
    2027: ["2027-01-01", "2027-05-31", "2027-07-05", "2027-09-06", "2027-11-25", "2027-12-25"],
}


@pytest.mark.parametrize("year", sorted(NERC))
def test_nerc_holidays_for_2025_to_2027(year):
    assert sorted(holidays_in(market="PJM", year=year)) == [d(x) for x in NERC[year]]


def test_a_nerc_holiday_on_sunday_moves_to_monday_and_one_on_saturday_stays():
    assert d("2022-12-26") in holidays_in(market="PJM", year=2022)  # Christmas 2022 was a Sunday
    assert d("2023-01-02") in holidays_in(market="PJM", year=2023)  # New Year's Day 2023, a Sunday
    h2026 = holidays_in(market="PJM", year=2026)
    assert d("2026-07-04") in h2026 and d("2026-07-03") not in h2026  # Saturday: no Friday off
    assert holidays_in(market="PJM", year=2027)[d("2027-07-05")] == "Independence Day"


@pytest.mark.parametrize("market", ["PJM", "NYISO", "ISO-NE", "ISONE", "MISO", "SPP"])
def test_the_eastern_and_central_markets_use_the_nerc_calendar(market):
    assert calendar_for(market) == "NERC"
    assert sorted(holidays_in(market=market, year=2025)) == [d(x) for x in NERC[2025]]


def test_caiso_adds_presidents_day_and_veterans_day():
    assert sorted(holidays_in(market="CAISO", year=2025)) == [
        d(x)
        for x in (
            "2025-01-01",
            "2025-02-17",
            "2025-05-26",
            "2025-07-04",
            "2025-09-01",
            "2025-11-11",
            "2025-11-27",
            "2025-12-25",
        )
    ]
    assert sorted(holidays_in(market="CAISO", year=2026)) == [
        d(x)
        for x in (
            "2026-01-01",
            "2026-02-16",
            "2026-05-25",
            "2026-07-04",
            "2026-09-07",
            "2026-11-11",
            "2026-11-26",
            "2026-12-25",
        )
    ]
    assert sorted(holidays_in(market="CAISO", year=2027)) == [
        d(x)
        for x in (
            "2027-01-01",
            "2027-02-15",
            "2027-05-31",
            "2027-07-05",
            "2027-09-06",
            "2027-11-11",
            "2027-11-25",
            "2027-12-25",
        )
    ]
    assert d("2029-11-12") in holidays_in(market="CAISO", year=2029)  # Veterans Day 2029 is a Sunday


def test_ercot_holidays_include_the_day_after_thanksgiving_and_two_christmas_days():
    assert sorted(holidays_in(market="ERCOT", year=2025)) == [
        d(x)
        for x in (
            "2025-01-01",
            "2025-05-26",
            "2025-07-04",
            "2025-09-01",
            "2025-11-27",
            "2025-11-28",
            "2025-12-24",
            "2025-12-25",
        )
    ]
    # 4 July 2026 is a Saturday: observed Friday 3 July.
    assert sorted(holidays_in(market="ERCOT", year=2026)) == [
        d(x)
        for x in (
            "2026-01-01",
            "2026-05-25",
            "2026-07-03",
            "2026-09-07",
            "2026-11-26",
            "2026-11-27",
            "2026-12-24",
            "2026-12-25",
        )
    ]
    # Christmas 2027 is a Saturday: Thursday 23 and Friday 24; 1 January 2028 (a Saturday) is
    # observed on Friday 31 December 2027.
    assert sorted(holidays_in(market="ERCOT", year=2027)) == [
        d(x)
        for x in (
            "2027-01-01",
            "2027-05-31",
            "2027-07-05",
            "2027-09-06",
            "2027-11-25",
            "2027-11-26",
            "2027-12-23",
            "2027-12-24",
            "2027-12-31",
        )
    ]


def test_ercot_christmas_days_move_off_a_weekend():
    assert {x for x in holidays_in(market="ERCOT", year=2022) if x.month == 12} == {d("2022-12-23"), d("2022-12-26")}
    assert {x for x in holidays_in(market="ERCOT", year=2023) if x.month == 12} == {d("2023-12-25"), d("2023-12-26")}


def test_holidays_between_spans_years_and_is_inclusive():
    found = holidays_between(market="PJM", first=d("2025-12-25"), last=d("2026-01-01"))
    assert list(found) == [d("2025-12-25"), d("2026-01-01")]


def test_an_unknown_market_has_no_calendar():
    with pytest.raises(UnknownCalendar) as refused:
        calendar_for("AEMO")
    assert refused.value.code == "unknown_market" and refused.value.problems[0].field == "market"


def test_each_market_has_its_clock_zone_and_miso_runs_on_standard_time():
    assert MARKET_TIME_ZONES["MISO"] == "Etc/GMT+5"
    assert MARKET_TIME_ZONES["CAISO"] == "America/Los_Angeles" and MARKET_TIME_ZONES["ERCOT"] == "America/Chicago"
    assert set(MARKET_TIME_ZONES) >= {"PJM", "CAISO", "NYISO", "ERCOT", "MISO", "ISONE", "SPP"}
