"""ISO-NE's 10 like days, ERCOT's middle 8 of 10 and CAISO's metered generator output, on hand-built hourly
data (a value is kWh per hour, so also kW), each on an ordinary day and on a DST day."""

from datetime import date
from zoneinfo import ZoneInfo

from settlement.baselines import METHODS, compute_baseline
from settlement.baselines.results import ADJUSTMENT_NOT_APPLIED
from tests.settlement.baseline_fixtures import LA, LOS_ANGELES, NEW_YORK, at, profile, series, utc, values

CHICAGO = "America/Chicago"
CT = ZoneInfo(CHICAGO)
JUL = {d: date(2025, 7, d) for d in range(1, 32)}
# Weekdays before Tue 15 July 2025, most recent first (Fri 4 July is a holiday in every calendar here).
WEEKDAYS = (JUL[14], JUL[11], JUL[10], JUL[9], JUL[8], JUL[7], JUL[3], JUL[2], JUL[1], date(2025, 6, 30))
NO_ADJUSTMENT = {"adjustment": "none"}


def by_hour(local):
    return float(local.hour)


def test_ercot_leaves_out_the_highest_and_the_lowest_of_ten_and_averages_eight():
    """Ten weekdays at 1..10 kWh an hour (most recent 10): 10 and 1 are left out, (2 + ... + 9) / 8 = 5.5."""
    days = {day: float(10 - i) for i, day in enumerate(WEEKDAYS)}
    readings = series(profile(default=0.0, days=days), first=date(2025, 6, 1), last=JUL[15], tz=CT)
    result = compute_baseline(
        method="ercot-middle-8-of-10",
        readings=readings,
        event_start=at(2025, 7, 15, 14, tz=CT),
        event_end=at(2025, 7, 15, 16, tz=CT),
        time_zone=CHICAGO,
        market="ERCOT",
        params=NO_ADJUSTMENT,
    )
    assert values(result.baseline_kw) == [5.5, 5.5]
    assert set(result.days_used) == set(WEEKDAYS[1:9])
    assert result.skipped[JUL[14]] == "dropped_highest" and result.skipped[date(2025, 6, 30)] == "dropped_lowest"


def test_ercot_on_the_25_hour_day_pairs_both_passes_of_the_repeated_hour_with_its_slot():
    """Sun 2 Nov 2025 in Chicago repeats 01:00. Weekend days and holidays together; load = the local hour, so
    every like day gives the slot's hour; the event 00:00-03:00 local has four intervals: 0, 1, 1, 2."""
    readings = series(by_hour, first=date(2025, 9, 1), last=date(2025, 11, 2), tz=CT)
    result = compute_baseline(
        method="ercot-middle-8-of-10",
        readings=readings,
        event_start=at(2025, 11, 2, 0, tz=CT),
        event_end=at(2025, 11, 2, 3, tz=CT),
        time_zone=CHICAGO,
        market="ERCOT",
        params=NO_ADJUSTMENT,
    )
    assert (
        len(result.starts) == 4 and result.starts[1] == utc(2025, 11, 2, 6) and result.starts[2] == utc(2025, 11, 2, 7)
    )
    assert values(result.baseline_kw) == [0.0, 1.0, 1.0, 2.0]
    assert len(result.days_used) == 8


def test_isone_is_the_mean_of_ten_like_days_adjusted_by_the_hour_before():
    """Ten weekdays at 1..10 kWh an hour: mean 5.5. The hour before the event (13:00) is 7.5 on the event day:
    additive adjustment +2 -> 7.5; the event hours are 3 -> reduction 4.5."""
    days = {day: float(10 - i) for i, day in enumerate(WEEKDAYS)}
    hours = {(JUL[15], 13): 7.5} | {(JUL[15], h): 3.0 for h in (14, 15)}
    readings = series(profile(default=0.0, days=days, hours=hours), first=date(2025, 6, 1), last=JUL[15])
    result = compute_baseline(
        method="isone-10-day",
        readings=readings,
        event_start=at(2025, 7, 15, 14),
        event_end=at(2025, 7, 15, 16),
        time_zone=NEW_YORK,
        market="ISO-NE",
    )
    assert result.days_used == WEEKDAYS
    assert result.adjustment.value == 2.0
    assert values(result.baseline_kw) == [7.5, 7.5] and values(result.reduction_kw) == [4.5, 4.5]


def test_isone_on_the_25_hour_day_adjusts_from_the_hour_just_before():
    """Sun 2 Nov 2025 in New York; Sundays and holidays from the last 4; load = the local hour. The event
    01:00-03:00 local has three intervals (01:00 EDT, 01:00 EST, 02:00): baseline 1, 1, 2; the hour before
    (00:00) is 0 on both the like days and the event day, so the adjustment is 0."""
    readings = series(by_hour, first=date(2025, 9, 1), last=date(2025, 11, 2))
    result = compute_baseline(
        method="isone-10-day",
        readings=readings,
        event_start=at(2025, 11, 2, 1),
        event_end=at(2025, 11, 2, 3),
        time_zone=NEW_YORK,
        market="ISO-NE",
    )
    assert values(result.baseline_kw) == [1.0, 1.0, 2.0] and values(result.reduction_kw) == [0.0, 0.0, 0.0]
    assert result.adjustment.value == 0.0 and len(result.days_used) == 4


def battery(idle_days_output: float, event_output: dict):
    """A battery's own meter: `idle_days_output` kWh every hour before the event day, `event_output` on it."""

    def load(local):
        if local.date() == event_output["day"]:
            return event_output.get(local.hour, 0.0)
        return idle_days_output

    return load


def test_caiso_mgo_baselines_the_device_meter_by_ten_in_ten():
    """The battery is idle (0) on its like days and discharges 5 kWh an hour in the event: baseline 0,
    reduction 5; the day-of factor has a zero baseline to scale, so it is not applied."""
    assert METHODS["caiso-mgo"].meter == "device"
    day = JUL[15]
    readings = series(battery(0.0, {"day": day, 14: -5.0, 15: -5.0}), first=date(2025, 6, 1), last=day, tz=LA)
    result = compute_baseline(
        method="caiso-mgo",
        readings=readings,
        event_start=at(2025, 7, 15, 14, tz=LA),
        event_end=at(2025, 7, 15, 16, tz=LA),
        time_zone=LOS_ANGELES,
        market="CAISO",
    )
    assert values(result.baseline_kw) == [0.0, 0.0] and values(result.reduction_kw) == [5.0, 5.0]
    assert ADJUSTMENT_NOT_APPLIED in result.flags and len(result.days_used) == 10


def test_caiso_mgo_on_the_23_hour_day_has_no_interval_in_the_skipped_hour():
    """Sun 9 March 2025 in Los Angeles skips 02:00. Weekend days and holidays together (4 in 4); the battery
    charges 2 kWh an hour on its like days and discharges 4 in the event 01:00-04:00 local, which has two
    intervals (01:00 and 03:00): baseline 2 (no adjustment), reduction 6."""
    day = date(2025, 3, 9)
    readings = series(battery(2.0, {"day": day, 1: -4.0, 3: -4.0}), first=date(2025, 1, 15), last=day, tz=LA)
    result = compute_baseline(
        method="caiso-mgo",
        readings=readings,
        event_start=at(2025, 3, 9, 1, tz=LA),
        event_end=at(2025, 3, 9, 4, tz=LA),
        time_zone=LOS_ANGELES,
        market="CAISO",
        params=NO_ADJUSTMENT,
    )
    assert result.starts == (utc(2025, 3, 9, 9), utc(2025, 3, 9, 10))
    assert values(result.baseline_kw) == [2.0, 2.0] and values(result.reduction_kw) == [6.0, 6.0]
    assert len(result.days_used) == 4
