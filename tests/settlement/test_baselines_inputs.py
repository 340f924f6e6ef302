"""Inputs shared by every method: interval lengths, time checks, many sites at once."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from settlement.baselines import BaselineError, IntervalReadings, compute_baseline, compute_baselines
from tests.settlement.baseline_fixtures import NEW_YORK, at, profile, series, values

JUL15 = date(2025, 7, 15)
EVENT = {"event_start": at(2025, 7, 15, 14), "event_end": at(2025, 7, 15, 16), "time_zone": NEW_YORK}


def refused(**kw) -> tuple[str, str | None]:
    with pytest.raises(BaselineError) as error:
        compute_baseline(**({"method": "meter-before-meter-after"} | EVENT | kw))
    return error.value.code, error.value.problems[0].field


def hourly(first=JUL15, last=JUL15, value=2.0):
    return series(profile(default=value), first=first, last=last)


def test_the_interval_length_is_taken_from_the_spacing_of_the_readings():
    result = compute_baseline(
        method="meter-before-meter-after",
        readings=series(profile(default=0.5), first=JUL15, last=JUL15, minutes=5),
        **EVENT,
    )
    assert result.interval_minutes == 5 and len(result.starts) == 24
    assert values(result.baseline_kw)[:1] == [6.0]  # 0.5 kWh per 5 minutes


def test_readings_of_mixed_stated_lengths_are_refused():
    r = hourly()
    mixed = IntervalReadings(r.starts, r.kwh, np.where(np.arange(r.starts.size) < 5, 900, 3600))
    assert refused(readings=mixed) == ("mixed_intervals", "interval_seconds")


def test_readings_closer_than_the_stated_interval_are_refused():
    quarter_hours = series(profile(default=0.5), first=JUL15, last=JUL15, minutes=15)
    assert refused(readings=quarter_hours, params={"interval_minutes": 60}) == ("mixed_intervals", "readings")


def test_a_reading_off_the_grid_of_the_others_is_refused():
    t0 = int(at(2025, 7, 15).timestamp())
    starts = np.array([t0, t0 + 900, t0 + 1800, t0 + 1800 + 3000])  # 00:00, 00:15, 00:30, 01:20
    assert refused(readings=IntervalReadings(starts, np.ones(4)))[0] == "mixed_intervals"


def test_an_unsupported_spacing_is_refused():
    t0 = int(at(2025, 7, 15).timestamp())
    assert refused(readings=IntervalReadings(t0 + 1800 * np.arange(10), np.ones(10)))[0] == "unsupported_interval"


def test_two_readings_for_one_interval_are_refused():
    t0 = int(at(2025, 7, 15).timestamp())
    assert (
        refused(readings=IntervalReadings(np.array([t0, t0 + 3600, t0 + 3600]), np.ones(3)))[0] == "duplicate_reading"
    )


def test_hourly_readings_on_the_half_hour_are_off_the_local_grid():
    t0 = int(at(2025, 7, 15).timestamp()) + 1800
    readings = IntervalReadings(t0 + 3600 * np.arange(24), np.ones(24))
    assert refused(readings=readings)[0] == "misaligned_time"


def test_a_naive_reading_time_is_refused():
    with pytest.raises(BaselineError) as error:
        IntervalReadings.from_mapping({datetime(2025, 7, 15, 13): 1.0})
    assert error.value.code == "naive_timestamp"


def test_readings_from_a_mapping_or_unsorted_arrays_give_the_same_result():
    r = hourly(value=3.0)
    mapping = {datetime.fromtimestamp(int(s), UTC): float(k) for s, k in zip(r.starts, r.kwh, strict=True)}
    shuffled = IntervalReadings(r.starts[::-1], r.kwh[::-1])
    results = [
        compute_baseline(method="meter-before-meter-after", readings=x, **EVENT)
        for x in (r, IntervalReadings.from_mapping(mapping), shuffled)
    ]
    assert [values(x.baseline_kw) for x in results] == [[3.0, 3.0]] * 3


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"event_start": datetime(2025, 7, 15, 14)}, ("naive_timestamp", "event_start")),
        ({"event_end": at(2025, 7, 15, 14)}, ("invalid_event", "event_end")),
        ({"event_end": at(2025, 7, 15, 13)}, ("invalid_event", "event_end")),
        ({"event_start": at(2025, 7, 15, 14, 30)}, ("misaligned_time", "event_start")),
        ({"event_end": at(2025, 7, 15, 15, 30)}, ("misaligned_time", "event_end")),
        ({"event_end": at(2025, 7, 16, 15)}, ("invalid_event", "event_end")),
        ({"time_zone": "Mars/Olympus"}, ("unknown_time_zone", "time_zone")),
        ({"method": "hourly-regression"}, ("unknown_method", "method")),
    ],
)
def test_bad_event_input_is_refused_naming_the_field(change, expected):
    assert refused(readings=hourly(), **change) == expected


def test_a_like_day_method_needs_a_market_or_a_holiday_list():
    assert refused(method="pjm-high-4-of-5", readings=hourly())[0] == "unknown_market"
    assert refused(method="pjm-high-4-of-5", readings=hourly(), market="AEMO")[0] == "unknown_market"


def test_an_explicit_holiday_list_replaces_the_market_calendar():
    readings = hourly(first=date(2025, 6, 1), value=5.0)
    result = compute_baseline(
        method="pjm-high-4-of-5",
        readings=readings,
        holidays={date(2025, 7, 14)},
        params={"adjustment": "none"},
        **EVENT,
    )
    # 14 July is now a holiday; 4 July is an ordinary (older, unneeded) weekday.
    assert result.skipped[date(2025, 7, 14)] == "holiday" and result.skipped[date(2025, 7, 4)] == "not_needed"


def test_a_market_on_standard_time_all_year_matches_by_its_own_clock():
    est = ZoneInfo("Etc/GMT+5")
    readings = series(lambda local: float(local.hour), first=date(2025, 6, 1), last=JUL15, tz=est)
    result = compute_baseline(
        method="pjm-high-4-of-5",
        readings=readings,
        event_start=datetime(2025, 7, 15, 14, tzinfo=est),
        event_end=datetime(2025, 7, 15, 15, tzinfo=est),
        time_zone="Etc/GMT+5",
        market="MISO",
    )
    assert result.starts[0] == datetime(2025, 7, 15, 19, tzinfo=UTC)
    assert values(result.baseline_kw) == [14.0]


def test_many_sites_give_the_same_results_as_one_at_a_time_and_a_bad_site_does_not_stop_the_rest():
    first = JUL15 - timedelta(days=50)
    sites = {
        "a": series(profile(default=4.0), first=first, last=JUL15),
        "b": series(lambda local: float(local.hour), first=first, last=JUL15),
        "c": series(profile(default=1.0), first=first, last=JUL15, minutes=15),
        "bad": IntervalReadings(np.array([0, 0]), np.ones(2)),
    }
    kw = EVENT | {"method": "pjm-high-4-of-5", "market": "PJM"}
    results, errors = compute_baselines(sites=sites, event_days={"a": {date(2025, 7, 14)}}, **kw)
    assert set(results) == {"a", "b", "c"} and errors["bad"].code == "duplicate_reading"
    for key in ("a", "b", "c"):
        one = compute_baseline(readings=sites[key], event_days={date(2025, 7, 14)} if key == "a" else (), **kw)
        assert values(results[key].baseline_kw) == values(one.baseline_kw)
        assert results[key].days_used == one.days_used
    assert results["a"].skipped[date(2025, 7, 14)] == "event_day"
    assert date(2025, 7, 14) in results["b"].days_used
    assert values(results["c"].baseline_kw) == [4.0] * 8  # 1 kWh per 15 minutes
