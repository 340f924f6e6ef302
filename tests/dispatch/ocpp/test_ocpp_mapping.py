"""The OCPP mapping rules on plain values (dispatch.ocpp.mapping): registers to readings, commands to limits."""

from datetime import UTC, datetime, timedelta

from dispatch.ocpp import mapping

T0 = datetime(2026, 7, 15, 18, 0, tzinfo=UTC)


def test_a_register_rise_between_two_aligned_samples_is_the_intervals_energy():
    readings, last = mapping.interval_readings(None, [(T0, 1000.0), (T0 + timedelta(minutes=5), 1600.0)])
    assert readings == [{"meter": "device", "start": "2026-07-15T18:00:00Z", "interval_seconds": 300, "kwh": 0.6}]
    assert last == (T0 + timedelta(minutes=5), 1600.0)


def test_a_sample_a_few_seconds_off_the_minute_counts_at_it():
    readings, _ = mapping.interval_readings((T0, 0.0), [(T0 + timedelta(minutes=15, seconds=3), 2000.0)])
    assert [(r["start"], r["interval_seconds"], r["kwh"]) for r in readings] == [("2026-07-15T18:00:00Z", 900, 2.0)]


def test_samples_not_one_metered_interval_apart_or_off_its_boundary_give_no_reading():
    seven_minutes, _ = mapping.interval_readings((T0, 0.0), [(T0 + timedelta(minutes=7), 500.0)])
    off_boundary, _ = mapping.interval_readings(
        (T0 + timedelta(minutes=5), 0.0), [(T0 + timedelta(minutes=20), 500.0)]
    )  # 15 minutes, but from 18:05
    between, last = mapping.interval_readings((T0, 0.0), [(T0 + timedelta(minutes=2, seconds=30), 500.0)])
    assert seven_minutes == off_boundary == between == []
    assert last == (T0, 0.0)  # a sample between boundaries is not kept as the register's base


def test_a_register_that_falls_starts_over():
    readings, last = mapping.interval_readings(
        (T0, 90_000.0), [(T0 + timedelta(minutes=5), 10.0), (T0 + timedelta(minutes=10), 310.0)]
    )
    assert [(r["start"], r["kwh"]) for r in readings] == [("2026-07-15T18:05:00Z", 0.3)]
    assert last == (T0 + timedelta(minutes=10), 310.0)


def test_plug_state_comes_from_the_connectors_not_the_station():
    assert mapping.plugged_in({"0": "Available", "1": "Charging"}, v16=True) is True
    assert mapping.plugged_in({"1": "Available", "2": "Reserved"}, v16=True) is False
    assert mapping.plugged_in({"1": "Faulted"}, v16=True) is None
    assert mapping.plugged_in({"0": "Unavailable"}, v16=True) is None
    assert mapping.plugged_in({"1": "Occupied"}, v16=False) is True


def test_a_commands_reduction_per_interval_becomes_the_chargers_limit_with_its_rated_kw_between_intervals():
    schedule = [
        {"start": "2026-07-15T18:00:00+00:00", "end": "2026-07-15T19:00:00+00:00", "kw": 3.2},
        {"start": "2026-07-15T20:00:00+00:00", "end": "2026-07-15T21:00:00+00:00", "kw": 9.0},  # more than rated
    ]
    start, duration, periods = mapping.dispatch_periods(schedule, 7.2)
    assert (start, duration) == (T0, 3 * 3600)
    assert [(p.start_period, p.limit_w) for p in periods] == [(0, 4000), (3600, 7200), (7200, 0)]


def test_the_plan_from_now_on_becomes_charging_limits_merged_where_they_repeat():
    kw = [0.0, 0.0, -7.2, -7.2, -3.0, 0.0]
    start, duration, periods = mapping.plan_periods([(T0, 900, kw)], T0 + timedelta(minutes=20))
    assert (start, duration) == (T0 + timedelta(minutes=15), 5 * 900)
    assert [(p.start_period, p.limit_w) for p in periods] == [(0, 0), (900, 7200), (2700, 3000), (3600, 0)]
    assert mapping.plan_periods([(T0, 900, kw)], T0 + timedelta(hours=2)) is None


def test_a_composite_schedule_applies_the_profile_when_it_holds_its_limit_or_lower():
    _, _, periods = mapping.dispatch_periods(
        [{"start": "2026-07-15T18:00:00+00:00", "end": "2026-07-15T19:00:00+00:00", "kw": 3.2}], 7.2
    )
    at = T0 + timedelta(minutes=10)
    holds = [{"start_period": 0, "limit": 3500.0}]
    ignores = [{"start_period": 0, "limit": 7200.0}]
    assert mapping.applies(start=T0, periods=periods, composite_start=at, composite_periods=holds, at=at)
    assert not mapping.applies(start=T0, periods=periods, composite_start=at, composite_periods=ignores, at=at)
