"""Splitting a target over devices: dispatch/allocation.py on numpy arrays, then through services on PostgreSQL."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from aggregator.aggregation import capability
from dispatch import allocation, services
from dispatch.allocation import ALLOCATED, NO_HEADROOM, NOT_ENROLLED, NOT_NEEDED, OFFLINE, OPTED_OUT, Candidates
from dispatch.models import Allocation, DeviceOptOut, DeviceSeasonBurden
from enrollment.models import DeviceStatus
from tests.dispatch.conftest import online
from tests.factories import GENERATOR, active_device, eligible_device

EV_CHARGER = {
    "device_type": "ev_charger",
    "manufacturer": "Wallbox",
    "model": "Pulsar Plus",
    "rated_kw": Decimal("11"),
    "charge_kw": None,
    "energy_kwh": None,
    "backup_reserve_pct": None,
}


def candidates(available, *, excluded=None, hours=None, events=None, ids=None) -> Candidates:
    available = np.asarray(available, dtype=float)
    n = available.shape[0]
    return Candidates(
        device_id=np.asarray(ids if ids is not None else np.arange(1, n + 1), dtype=np.int64),
        available=available,
        excluded=np.array(excluded if excluded is not None else [None] * n, dtype=object),
        customer_hours=np.asarray(hours if hours is not None else [0.0] * n, dtype=float),
        customer_events=np.asarray(events if events is not None else [0] * n, dtype=np.int64),
    )


def this_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def by_device(event) -> dict[int, Allocation]:
    return {a.device_id: a for a in Allocation.objects.filter(event=event)}


def real_time_event(resource, capture, *, target_kw, hours=1, start=None, over_commit_pct=0):
    start = start or this_minute()
    with capture(execute=False):
        event = services.create_event(
            resource=resource,
            source="operator_test",
            start=start,
            end=start + timedelta(hours=hours),
            target_kw=target_kw,
            by="tester",
            over_commit_pct=Decimal(over_commit_pct),
        )
    services.advance(event_id=event.pk)
    event.refresh_from_db()
    return event


# --- fill --------------------------------------------------------------------------------


def test_fill_takes_devices_in_rank_order_and_the_last_only_partially():
    headroom = np.array([[50.0, 50.0], [50.0, 50.0], [50.0, 50.0], [50.0, 50.0]])
    ranks = np.array([3, 1, 2, 4])

    kw = allocation.fill(headroom, np.array([120.0, 60.0]), ranks)

    np.testing.assert_allclose(kw, [[20.0, 0.0], [50.0, 50.0], [50.0, 10.0], [0.0, 0.0]])


def test_fill_never_gives_a_device_more_than_its_headroom_and_stops_at_the_need():
    headroom = np.array([[10.0], [30.0], [5.0]])

    kw = allocation.fill(headroom, np.array([100.0]), np.array([1, 2, 3]))

    np.testing.assert_allclose(kw, [[10.0], [30.0], [5.0]])  # short: everything there is, nothing more


def test_over_commit_allocates_the_margin_above_the_target():
    c = candidates([[50.0, 50.0]] * 3)

    kw, _, why = allocation.allocate(c, targets=np.array([100.0, 100.0]), over_commit_pct=10)

    np.testing.assert_allclose(kw.sum(axis=0), [110.0, 110.0])
    np.testing.assert_allclose(kw, [[50.0, 50.0], [50.0, 50.0], [10.0, 10.0]])
    assert list(why) == [ALLOCATED] * 3


def test_without_over_commit_exactly_the_target_is_allocated():
    c = candidates([[50.0]] * 3)

    kw, _, why = allocation.allocate(c, targets=np.array([100.0]), over_commit_pct=0)

    np.testing.assert_allclose(kw[:, 0], [50.0, 50.0, 0.0])
    assert list(why) == [ALLOCATED, ALLOCATED, NOT_NEEDED]


def test_an_events_over_commit_margin_is_allocated_when_the_resource_has_headroom(
    make_resource, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=3)

    event = real_time_event(resource, django_capture_on_commit_callbacks, target_kw=100, over_commit_pct=10)

    rnd = event.rounds.get()
    assert rnd.target_kw == [110.0] and rnd.allocated_kw == [110.0]
    assert sorted(sum(a.kw) for a in Allocation.objects.filter(event=event)) == [10.0, 50.0, 50.0]


# --- fairness ------------------------------------------------------------------------------


def test_a_customer_with_more_season_hours_ranks_after_one_with_fewer():
    c = candidates([[50.0]] * 3, hours=[6.0, 1.0, 3.0], ids=[1, 2, 3])

    ranks = allocation.rank(c)
    kw, _, why = allocation.allocate(c, targets=np.array([60.0]), over_commit_pct=0)

    assert list(ranks) == [3, 1, 2]
    np.testing.assert_allclose(kw[:, 0], [0.0, 50.0, 10.0])
    assert list(why) == [NOT_NEEDED, ALLOCATED, ALLOCATED]


def test_equal_hours_rank_by_fewer_events_then_more_kw_then_device_id():
    c = candidates([[10.0], [50.0], [50.0], [50.0]], hours=[2.0] * 4, events=[1, 1, 1, 0], ids=[4, 9, 7, 8])

    assert list(allocation.rank(c)) == [4, 3, 2, 1]


def test_over_repeated_events_the_burden_moves_to_the_other_devices(make_resource, django_capture_on_commit_callbacks):
    resource = make_resource(generators=3)  # 50 kW each, each its own customer
    a, b, c = sorted(m.device_id for m in resource.memberships.all())
    day = datetime(datetime.now(UTC).year + 1, 7, 15, 16, tzinfo=UTC)  # mid-season, in the future

    def run(start):
        with django_capture_on_commit_callbacks(execute=False):
            event = services.create_event(
                resource=resource,
                source="operator_test",
                start=start,
                end=start + timedelta(hours=1),
                target_kw=90,
                by="tester",
                over_commit_pct=0,
            )
        services.advance(event_id=event.pk, now=start)
        kw = {d: sum(x.kw) for d, x in by_device(event).items()}
        services.advance(event_id=event.pk, now=start + timedelta(hours=1))
        event.refresh_from_db()
        assert event.state == "completed"
        return kw

    first = run(day)
    assert first == {a: 50.0, b: 40.0, c: 0.0}
    burden = {x.device_id: (x.events, x.hours) for x in DeviceSeasonBurden.objects.filter(season=day.year)}
    assert burden == {a: (1, 1.0), b: (1, 1.0)}

    second = run(day + timedelta(hours=2))
    assert second == {c: 50.0, a: 40.0, b: 0.0}  # c had the lightest season; a and b tie, a by id

    third = run(day + timedelta(hours=4))
    assert third == {b: 50.0, c: 40.0, a: 0.0}  # a now has 2 h, b and c 1 h
    burden = {x.device_id: (x.events, x.hours) for x in DeviceSeasonBurden.objects.filter(season=day.year)}
    assert burden == {a: (2, 2.0), b: (2, 2.0), c: (2, 2.0)}


# --- exclusions ----------------------------------------------------------------------------


def test_excluded_devices_get_nothing_and_their_reason():
    c = candidates([[50.0]] * 5, excluded=[OFFLINE, OPTED_OUT, NOT_ENROLLED, None, None])

    kw, ranks, why = allocation.allocate(c, targets=np.array([80.0]), over_commit_pct=0)

    np.testing.assert_allclose(kw[:, 0], [0.0, 0.0, 0.0, 50.0, 30.0])
    assert list(why) == [OFFLINE, OPTED_OUT, NOT_ENROLLED, ALLOCATED, ALLOCATED]
    assert sorted(ranks[:3]) == [3, 4, 5]  # excluded devices rank last


def test_a_device_with_no_available_kw_is_no_headroom_not_not_needed():
    c = candidates([[0.0, 0.0], [50.0, 50.0], [50.0, 50.0]])

    kw, _, why = allocation.allocate(c, targets=np.array([40.0, 40.0]), over_commit_pct=0)

    assert list(why) == [NO_HEADROOM, ALLOCATED, NOT_NEEDED]
    np.testing.assert_allclose(kw.sum(axis=1), [0.0, 80.0, 0.0])


def test_offline_opted_out_and_not_enrolled_members_get_nothing_in_an_event(
    program, make_resource, django_capture_on_commit_callbacks
):
    serving = active_device(program, **GENERATOR)
    offline = active_device(program, **GENERATOR)
    opted_out = active_device(program, **GENERATOR)
    not_enrolled = eligible_device(program, **GENERATOR)  # consented, never enrolled
    resource = make_resource(devices=[serving, offline, opted_out, not_enrolled])
    now = datetime.now(UTC)
    DeviceStatus.objects.create(device=offline, online=False, last_seen_at=now - timedelta(minutes=10))
    DeviceOptOut.objects.create(device=opted_out, start=now - timedelta(minutes=5), end=now + timedelta(hours=3))

    event = real_time_event(resource, django_capture_on_commit_callbacks, target_kw=40)

    got = by_device(event)
    assert {d: (got[d.pk].reason, got[d.pk].kw) for d in (serving, offline, opted_out, not_enrolled)} == {
        serving: (ALLOCATED, [40.0]),
        offline: (OFFLINE, [0.0]),
        opted_out: (OPTED_OUT, [0.0]),
        not_enrolled: (NOT_ENROLLED, [0.0]),
    }


# --- capability ------------------------------------------------------------------------------


def test_a_battery_at_its_backup_reserve_gets_nothing_for_no_headroom(
    program, make_resource, django_capture_on_commit_callbacks
):
    at_reserve = active_device(program)  # 5 kW / 13.5 kWh battery, 20 % reserve
    charged = active_device(program)
    online(at_reserve, soc=Decimal("20"))
    online(charged, soc=Decimal("80"))
    resource = make_resource(devices=[at_reserve, charged])

    event = real_time_event(resource, django_capture_on_commit_callbacks, target_kw=4)

    got = by_device(event)
    assert got[at_reserve.pk].reason == NO_HEADROOM
    assert got[at_reserve.pk].kw == [0.0] and got[at_reserve.pk].available_kw == [0.0]
    assert got[charged.pk].reason == ALLOCATED and got[charged.pk].kw == [4.0]


def test_battery_capability_is_the_energy_above_its_reserve_over_the_event_capped_at_rated_kw():
    fleet = capability.Fleet.from_rows(
        [
            # id, type, rated, kWh, reserve, efficiency, max h, bidirectional, zone, online, seen, soc, plugged, ratio
            (1, "battery", 5, 13.5, 20, None, None, False, "America/New_York", 1, None, 20, None, None),
            (2, "battery", 5, 13.5, 20, None, None, False, "America/New_York", 1, None, 30, None, None),
            (3, "battery", 5, 13.5, 20, None, None, False, "America/New_York", 1, None, 90, None, None),
            (4, "battery", 5, 13.5, 20, None, None, False, "America/New_York", 1, None, 10, None, None),
        ]
    )
    now = datetime(2026, 7, 15, 18, 0, tzinfo=UTC)

    one_hour = capability.available_kw(fleet, now=now, instants=[now], event_hours=1)[:, 0]
    four_hours = capability.available_kw(fleet, now=now, instants=[now], event_hours=4)[:, 0]

    efficiency = capability.DEFAULT_DISCHARGE_EFFICIENCY  # one way: the square root of the round trip
    np.testing.assert_allclose(one_hour, [0.0, 13.5 * 0.10 * efficiency, 5.0, 0.0])  # 90 %: 8.98 kWh, capped at 5 kW
    np.testing.assert_allclose(four_hours, [0.0, 13.5 * 0.10 * efficiency / 4, 13.5 * 0.70 * efficiency / 4, 0.0])


def test_an_unplugged_ev_charger_gets_nothing_for_the_current_hour(
    program, make_resource, django_capture_on_commit_callbacks
):
    ev = active_device(program, **EV_CHARGER)
    DeviceStatus.objects.create(device=ev, online=True, ev_plugged_in=False, last_seen_at=datetime.now(UTC))
    resource = make_resource(devices=[ev])

    event = real_time_event(resource, django_capture_on_commit_callbacks, target_kw=1, hours=2)

    got = by_device(event)[ev.pk]
    assert got.available_kw[0] == 0.0 and got.kw[0] == 0.0
    assert got.available_kw[1] > 0.0 and got.kw[1] == 1.0  # the next hour follows the charging profile


def test_an_ev_charger_unplugged_mid_event_gets_nothing_for_the_then_current_hour(
    program, make_resource, django_capture_on_commit_callbacks
):
    ev = active_device(program, **EV_CHARGER)
    resource = make_resource(devices=[ev])
    start = this_minute()
    event = real_time_event(resource, django_capture_on_commit_callbacks, target_kw=1, hours=3, start=start)
    assert by_device(event)[ev.pk].kw == [1.0, 1.0, 1.0]  # no status yet: the profile
    later = start + timedelta(minutes=70)  # in the second interval
    DeviceStatus.objects.create(device=ev, online=True, ev_plugged_in=False, last_seen_at=later)

    with django_capture_on_commit_callbacks(execute=False):
        services.modify(event=event, by="op", reason="re-plan the rest", target_kw=Decimal("1"), now=later)

    got = by_device(event)[ev.pk]
    assert got.kw[0] == 1.0  # served before the change: kept
    assert got.kw[1] == 0.0  # unplugged now: nothing for the current hour
    assert got.kw[2] == 1.0


# --- top-up ----------------------------------------------------------------------------------


def test_top_up_covers_a_shortfall_from_the_best_ranked_devices_with_headroom():
    c = candidates([[50.0] * 3] * 4, excluded=[OPTED_OUT, None, None, None], hours=[0.0, 0.0, 0.0, 5.0])
    current = np.array([[50.0] * 3, [40.0] * 3, [0.0] * 3, [0.0] * 3])
    ranks = allocation.rank(c)

    kw = allocation.top_up(c, current=current, shortfall=np.array([99.0, 50.0, 50.0]), ranks=ranks, from_interval=1)

    np.testing.assert_allclose(
        kw,
        [
            [50.0, 0.0, 0.0],  # excluded: zero from from_interval on, the past kept
            [40.0, 50.0, 50.0],  # best-ranked: its 10 kW of headroom first
            [0.0, 40.0, 40.0],  # next: the rest
            [0.0, 0.0, 0.0],  # heaviest season: not needed
        ],
    )


def test_top_up_leaves_intervals_before_from_interval_untouched():
    c = candidates([[50.0] * 3] * 3)
    current = np.array([[10.0, 10.0, 10.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])

    kw = allocation.top_up(
        c, current=current, shortfall=np.array([100.0, 100.0, 30.0]), ranks=allocation.rank(c), from_interval=2
    )

    np.testing.assert_allclose(kw[:, :2], current[:, :2])
    np.testing.assert_allclose(kw[:, 2], [40.0, 0.0, 5.0])
