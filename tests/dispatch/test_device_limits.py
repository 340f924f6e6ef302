"""Allocation within what the devices allow: minimum kW (off or at least it, the remainder to the next device),
event hours per event, per day and per engine year, minimum run, notice, ramp rate, an engine already running,
and a site's export limit. Hand-checked cases on the pure core, then through dispatch on PostgreSQL."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from dispatch import allocation, services
from dispatch.allocation import Candidates, Limits
from dispatch.models import Allocation, DeviceSeasonBurden
from enrollment.models import DeviceStatus
from tests.dispatch.conftest import online
from tests.factories import GENERATOR, active_device


def case(available, *, min_kw=None, max_hours=None, min_run=None, hours=None, site=None, site_cap=None):
    """Devices ranked in the order given (the first is the lightest season), intervals of `hours` (1 h each)."""
    available = np.asarray(available, dtype=float)
    n, k = available.shape
    limits = Limits.none(n, np.asarray(hours if hours is not None else [1.0] * k))
    if min_kw is not None:
        limits.min_kw = np.asarray(min_kw, float)
    if max_hours is not None:
        limits.max_hours = np.asarray(max_hours, float)
    if min_run is not None:
        limits.min_run = np.asarray(min_run, np.int64)
    if site is not None:
        limits.site, limits.site_cap = np.asarray(site, np.int64), np.asarray(site_cap, float)
    return Candidates(
        device_id=np.arange(1, n + 1),
        available=available,
        excluded=np.array([None] * n, dtype=object),
        customer_hours=np.arange(n, dtype=float),
        customer_events=np.zeros(n, dtype=np.int64),
        limits=limits,
    )


def allocate(c: Candidates, targets) -> np.ndarray:
    return allocation.allocate(c, targets=np.asarray(targets, float), over_commit_pct=0)[0]


def test_a_remainder_below_a_devices_minimum_goes_to_the_next_device():
    # 10 kW: the first gives its 8, the 2 kW left is below the second's 4 kW minimum, so the third gives it.
    kw = allocate(case([[8.0], [5.0], [3.0]], min_kw=[0, 4, 0]), [10])
    assert kw[:, 0].tolist() == [8.0, 0.0, 2.0]


def test_devices_whose_minimum_exceeds_what_they_have_give_nothing_and_a_remainder_rounds_up_to_a_minimum():
    # A resource whose only devices are chargers at 3 kW available with a 6 kW minimum: nothing can be given.
    kw = allocate(case([[3.0], [3.0]], min_kw=[6, 6]), [5])
    assert kw.sum() == 0
    # With 7 kW available, 5 kW is below every minimum: the best-ranked gives its 6 (over the target, not short).
    kw = allocate(case([[7.0], [7.0]], min_kw=[6, 6]), [5])
    assert kw[:, 0].tolist() == [6.0, 0.0]


def test_a_device_serves_at_most_its_event_hours_and_the_next_takes_over():
    kw = allocate(case([[5.0] * 4, [5.0] * 4], max_hours=[2, np.inf]), [5, 5, 5, 5])
    assert kw.tolist() == [[5, 5, 0, 0], [0, 0, 5, 5]]
    # Half-hour intervals: 1.5 h is three of them.
    kw = allocate(case([[5.0] * 4, [5.0] * 4], max_hours=[1.5, np.inf], hours=[0.5] * 4), [5, 5, 5, 5])
    assert kw.tolist() == [[5, 5, 5, 0], [0, 0, 0, 5]]


def test_an_engine_is_not_started_for_less_than_its_minimum_run():
    # Needed for two intervals, the engine would have to run three: the next device serves instead.
    kw = allocate(case([[10.0] * 4, [10.0] * 4], min_run=[3, 0]), [10, 10, 0, 0])
    assert kw.tolist() == [[0, 0, 0, 0], [10, 10, 0, 0]]
    kw = allocate(case([[10.0] * 4, [10.0] * 4], min_run=[3, 0]), [10, 10, 10, 0])
    assert kw.tolist() == [[10, 10, 10, 0], [0, 0, 0, 0]]


def test_a_sites_injecting_devices_stay_within_its_export_cap():
    # A battery and an engine at one site capped at 6 kW together; a device elsewhere gives the rest of 12 kW.
    c = case([[5.0], [5.0], [10.0]], site=[0, 0, -1], site_cap=[[6.0]])
    kw = allocate(c, [12])
    assert kw[:, 0].tolist() == [5.0, 1.0, 6.0]


def test_a_top_up_keeps_the_limits():
    c = case([[5.0] * 2, [5.0] * 2, [5.0] * 2], min_kw=[0, 0, 3])
    current = allocate(c, [5, 5])
    assert current.tolist() == [[5, 5], [0, 0], [0, 0]]
    # 2 kW short from the second interval: the second device gives it (the third's minimum is 3).
    kw = allocation.top_up(
        c, current=current, shortfall=np.array([0.0, 2.0]), ranks=allocation.rank(c), from_interval=1
    )
    assert kw.tolist() == [[5, 5], [0, 2], [0, 0]]


# Through dispatch: the limits come from the devices, their sites and their history.


def start_in(minutes: int) -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=minutes)


def event_on(resource, *, start, hours=1.0, target_kw=20, **kwargs):
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=start,
        end=start + timedelta(hours=hours),
        target_kw=target_kw,
        over_commit_pct=0,
        by="tester",
        **kwargs,
    )
    services.advance(event_id=event.pk)
    return {a.device_id: a for a in Allocation.objects.filter(event=event)}


LOAD = {
    "device_type": "controllable_load",
    "rated_kw": Decimal("20"),
    "max_event_hours": Decimal("4"),
    "charge_kw": None,
    "energy_kwh": None,
    "backup_reserve_pct": None,
}


def test_a_device_is_not_asked_for_an_event_inside_its_notice(program, make_resource):
    slow = active_device(program, **LOAD, notice_minutes=120)
    quick = active_device(program, **LOAD)
    online(slow, quick)
    allocations = event_on(make_resource(devices=[slow, quick]), start=start_in(30))
    assert allocations[slow.pk].reason == "short_notice" and max(allocations[slow.pk].kw) == 0
    assert allocations[quick.pk].reason == "allocated" and max(allocations[quick.pk].kw) == 20


def test_an_engines_minimum_run_longer_than_the_event_keeps_it_off(program, make_resource):
    engine = active_device(program, **{**GENERATOR, "min_run_minutes": 60})
    online(engine)
    allocations = event_on(make_resource(devices=[engine]), start=start_in(5), hours=0.5)
    assert allocations[engine.pk].reason == "run_too_long" and max(allocations[engine.pk].kw) == 0


def test_an_engine_already_running_for_its_site_offers_only_what_it_has_left(program, make_resource):
    engine = active_device(program, **GENERATOR)  # 50 kW
    DeviceStatus.objects.create(device=engine, online=True, last_seen_at=datetime.now(UTC), power_kw=Decimal("-30"))
    allocations = event_on(make_resource(devices=[engine]), start=start_in(5), target_kw=50)
    assert max(allocations[engine.pk].kw) == pytest.approx(20)


def test_an_engines_hours_left_this_year_bound_its_event(program, make_resource):
    engine = active_device(program, **GENERATOR, max_run_hours_per_year=Decimal("40"))
    online(engine)
    season = start_in(5).astimezone(ZoneInfo(program.market.time_zone)).year
    DeviceSeasonBurden.objects.create(device=engine, season=season, hours=39.5)
    allocations = event_on(make_resource(devices=[engine]), start=start_in(5), hours=2, target_kw=50)
    kw = allocations[engine.pk].kw  # hourly intervals: the half hour left does not cover one
    assert max(kw) == 0


def test_a_devices_daily_hours_count_its_other_events_that_day(program, make_resource):
    load = active_device(program, **LOAD, max_event_hours_per_day=Decimal("2"))
    spare = active_device(program, **LOAD)
    online(load, spare)
    resource = make_resource(devices=[load, spare])
    zone = ZoneInfo(load.site.time_zone)
    tomorrow = datetime.now(zone).date() + timedelta(days=1)
    first = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 10, tzinfo=zone)
    event_on(resource, start=first, hours=1, target_kw=20)
    later = event_on(resource, start=first + timedelta(hours=2), hours=2, target_kw=20)
    assert later[load.pk].kw == [20.0, 0.0] and later[spare.pk].kw == [0.0, 20.0]


def test_a_sites_export_limit_caps_what_its_battery_injects(program, make_resource):
    battery = active_device(
        program,
        device_type="battery",
        rated_kw=Decimal("10"),
        charge_kw=Decimal("10"),
        energy_kwh=Decimal("40"),
        backup_reserve_pct=Decimal("0"),
    )
    battery.site.export_limit_kw = Decimal("3")
    battery.site.save()
    online(battery, soc=Decimal("100"))
    allocations = event_on(make_resource(devices=[battery]), start=start_in(5), target_kw=10)
    assert max(allocations[battery.pk].kw) == pytest.approx(3)  # no site history: no load it has at least


def test_a_ramp_rate_bounds_what_an_engine_reaches_in_an_interval(program, make_resource):
    engine = active_device(program, **GENERATOR, ramp_kw_per_minute=Decimal("0.5"))
    online(engine)
    allocations = event_on(make_resource(devices=[engine]), start=start_in(5), hours=1, target_kw=50)
    # An hourly interval: at 0.5 kW a minute the 50 kW engine reaches 30 kW in it.
    assert max(allocations[engine.pk].kw) == pytest.approx(30)
