"""Meter before / meter after and metered device output: baselines from just before the event."""

from datetime import date

import pytest

from settlement.baselines import BaselineError, compute_baseline
from settlement.baselines.results import BASELINE_FLOORED, BASELINE_UNAVAILABLE, MISSING_REFERENCE
from tests.settlement.baseline_fixtures import NEW_YORK, at, profile, series, utc, values

JUL15, JUL16 = date(2025, 7, 15), date(2025, 7, 16)
PRE_EVENT_METHODS = ("meter-before-meter-after", "metered-output")


def run(method, readings, start, end, **kw):
    return compute_baseline(
        method=method, readings=readings, event_start=start, event_end=end, time_zone=NEW_YORK, **kw
    )


def five_minute(load):
    return series(load, first=JUL15, last=JUL15, minutes=5)


def test_mbma_baseline_is_the_interval_just_before_the_event_held_flat():
    def load(local):
        if (local.hour, local.minute) == (13, 55):
            return 1.0
        return 0.5 if local.hour == 14 else 0.7

    result = run("meter-before-meter-after", five_minute(load), at(2025, 7, 15, 14), at(2025, 7, 15, 14, 30))
    # 1.0 kWh in 5 minutes = 12 kW; during the event 0.5 kWh = 6 kW; reduction 6 kW in each of 6 intervals.
    assert values(result.baseline_kw) == [12.0] * 6
    assert values(result.actual_kw) == [6.0] * 6
    assert values(result.reduction_kw) == [6.0] * 6
    assert result.reference_window == (utc(2025, 7, 15, 17, 55), utc(2025, 7, 15, 18))
    assert result.days_used == () and result.adjustment.kind == "none"


def test_mbma_window_and_gap_are_parameters():
    kwh = {(13, 40): 0.8, (13, 45): 0.9, (13, 50): 1.0, (13, 55): 5.0}
    readings = five_minute(lambda local: kwh.get((local.hour, local.minute), 0.5))
    result = run(
        "meter-before-meter-after",
        readings,
        at(2025, 7, 15, 14),
        at(2025, 7, 15, 14, 10),
        params={"window_minutes": 15, "gap_minutes": 5},
    )
    # 13:40-13:55: mean(0.8, 0.9, 1.0) = 0.9 kWh per 5 min = 10.8 kW; 13:55 (5.0) is the skipped gap.
    assert values(result.baseline_kw) == [10.8, 10.8]
    assert result.reference_window == (utc(2025, 7, 15, 17, 40), utc(2025, 7, 15, 17, 55))


@pytest.mark.parametrize("method", PRE_EVENT_METHODS)
def test_a_missing_reading_in_the_reference_window_gives_no_baseline(method):
    readings = series(profile(default=3.0, hours={(JUL15, 13): None}), first=JUL15, last=JUL15)
    result = run(method, readings, at(2025, 7, 15, 14), at(2025, 7, 15, 16))
    assert {BASELINE_UNAVAILABLE, MISSING_REFERENCE} <= result.flags
    assert values(result.baseline_kw) == [None, None] and values(result.reduction_kw) == [None, None]
    assert values(result.actual_kw) == [3.0, 3.0]


@pytest.mark.parametrize("method", PRE_EVENT_METHODS)
def test_a_site_with_no_data_before_the_event_gets_no_baseline(method):
    readings = series(lambda local: 3.0 if local.hour >= 14 else None, first=JUL15, last=JUL15)
    result = run(method, readings, at(2025, 7, 15, 14), at(2025, 7, 15, 16))
    assert BASELINE_UNAVAILABLE in result.flags and values(result.baseline_kw) == [None, None]


def test_mbma_window_across_spring_forward_is_one_real_hour():
    load = lambda local: 1.0 if local.hour == 1 else 2.0  # noqa: E731  kWh per 15 minutes
    readings = series(load, first=date(2025, 3, 9), last=date(2025, 3, 9), minutes=15)
    result = run(
        "meter-before-meter-after", readings, at(2025, 3, 9, 3), at(2025, 3, 9, 4), params={"window_minutes": 60}
    )
    # The hour before 03:00 EDT is 01:00-02:00 EST (02:00 never happens): 1.0 kWh / 15 min = 4 kW.
    assert result.reference_window == (utc(2025, 3, 9, 6), utc(2025, 3, 9, 7))
    assert values(result.baseline_kw) == [4.0] * 4
    assert values(result.actual_kw) == [8.0] * 4


@pytest.mark.parametrize("method", PRE_EVENT_METHODS)
def test_an_event_in_the_repeated_hour_takes_the_first_pass_as_its_reference(method):
    def load(local):
        if local.hour == 1:
            return 1.0 if local.utcoffset().total_seconds() == -4 * 3600 else 3.0
        return 2.0

    readings = series(load, first=date(2025, 11, 2), last=date(2025, 11, 2), minutes=15)
    start = at(2025, 11, 2, 1, fold=1)  # 01:00 EST, the second pass
    result = run(method, readings, start, at(2025, 11, 2, 2), params={"window_minutes": 60})
    # Reference 01:00-02:00 EDT (05:00-06:00 UTC): 1.0 kWh / 15 min = 4 kW; actual 3.0 -> 12 kW.
    assert result.starts[0] == utc(2025, 11, 2, 6)
    assert result.reference_window == (utc(2025, 11, 2, 5), utc(2025, 11, 2, 6))
    assert values(result.baseline_kw) == [4.0] * 4
    assert values(result.reduction_kw) == [-8.0] * 4


def test_mbma_for_an_event_at_midnight_uses_the_last_hour_of_the_day_before():
    readings = series(profile(default=5.0, hours={(JUL15, 23): 9.0}), first=JUL15, last=JUL16)
    result = run(
        "meter-before-meter-after", readings, at(2025, 7, 16, 0), at(2025, 7, 16, 2), params={"window_minutes": 60}
    )
    assert result.reference_window == (utc(2025, 7, 16, 3), utc(2025, 7, 16, 4))
    assert values(result.baseline_kw) == [9.0, 9.0]


def test_mbma_keeps_a_negative_baseline_unless_the_program_floors_it():
    readings = series(profile(default=1.0, hours={(JUL15, 13): -2.0}), first=JUL15, last=JUL15)
    floored = run(
        "meter-before-meter-after", readings, at(2025, 7, 15, 14), at(2025, 7, 15, 15), params={"floor_at_zero": True}
    )
    kept = run("meter-before-meter-after", readings, at(2025, 7, 15, 14), at(2025, 7, 15, 15))
    assert values(floored.baseline_kw) == [0.0] and BASELINE_FLOORED in floored.flags
    assert values(kept.baseline_kw) == [-2.0] and values(kept.reduction_kw) == [-3.0]


def test_metered_output_counts_the_discharge_above_what_the_device_was_already_doing():
    hours = {(JUL15, 13): -2.0, (JUL15, 14): -7.0, (JUL15, 15): -7.0}
    result = run(
        "metered-output",
        series(profile(default=0.0, hours=hours), first=JUL15, last=JUL15),
        at(2025, 7, 15, 14),
        at(2025, 7, 15, 16),
    )
    # Discharging 2 kW in the hour before, 7 kW during: baseline -2 (not floored), reduction 5 kW.
    assert values(result.baseline_kw) == [-2.0, -2.0]
    assert values(result.reduction_kw) == [5.0, 5.0]
    assert result.reference_window == (utc(2025, 7, 15, 17), utc(2025, 7, 15, 18))
    assert BASELINE_FLOORED not in result.flags


def test_metered_output_credits_stopping_charging_unless_the_program_says_not_to():
    hours = {(JUL15, 13): 3.0, (JUL15, 14): -5.0}
    readings = series(profile(default=0.0, hours=hours), first=JUL15, last=JUL15)
    credited = run("metered-output", readings, at(2025, 7, 15, 14), at(2025, 7, 15, 15))
    output_only = run(
        "metered-output", readings, at(2025, 7, 15, 14), at(2025, 7, 15, 15), params={"credit_stopped_charging": False}
    )
    # Charging 3 kW before, discharging 5 kW during: 3 - (-5) = 8 kW; or, as if idle before, 0 - (-5) = 5 kW.
    assert values(credited.reduction_kw) == [8.0]
    assert values(output_only.baseline_kw) == [0.0] and values(output_only.reduction_kw) == [5.0]


def test_metered_output_with_the_zero_rule_counts_all_output():
    readings = series(profile(default=-7.0, hours={(JUL15, 13): None}), first=JUL15, last=JUL15)
    result = run("metered-output", readings, at(2025, 7, 15, 14), at(2025, 7, 15, 16), params={"baseline_rule": "zero"})
    assert values(result.baseline_kw) == [0.0, 0.0] and values(result.reduction_kw) == [7.0, 7.0]
    assert result.reference_window is None and result.flags == frozenset()


def test_the_markets_seeded_device_method_code_is_metered_output():
    readings = series(profile(default=-1.0, hours={(JUL15, 14): -4.0}), first=JUL15, last=JUL15)
    result = run("metered-device-output", readings, at(2025, 7, 15, 14), at(2025, 7, 15, 15))
    assert result.method == "metered-output" and values(result.reduction_kw) == [3.0]


def test_a_window_that_is_not_a_whole_number_of_intervals_is_refused():
    readings = series(profile(default=1.0), first=JUL15, last=JUL15, minutes=15)
    with pytest.raises(BaselineError) as refused:
        run(
            "meter-before-meter-after",
            readings,
            at(2025, 7, 15, 14),
            at(2025, 7, 15, 15),
            params={"window_minutes": 10},
        )
    assert refused.value.code == "invalid_param" and refused.value.problems[0].field == "window_minutes"
