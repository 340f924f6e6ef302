"""Telemetry scans: what a resource's real-time value is made of, the scan grid, idempotence, retention and the
scanning process. Real PostgreSQL; heartbeats are DeviceStatus rows as the device API leaves them."""

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction

from aggregator.market import telemetry
from aggregator.market.models import MarketConnection, TelemetrySample, TelemetryScan
from aggregator.market.scan_grid import grid_instant, next_grid_instant
from aggregator.market.tasks import prune_telemetry
from enrollment.models import DeviceStatus
from tests.factories import market
from tests.market.telemetry_setup import heartbeat, resource, set_rules

pytestmark = pytest.mark.django_db

AT = datetime(2026, 7, 15, 14, 0, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
S = timedelta(seconds=1)


def sample(res, at) -> tuple:
    row = TelemetrySample.objects.get(resource=res, at=at)
    return row.kw, row.devices_reporting, row.devices_expected, row.quality


# --- what a sample is made of --------------------------------------------------------------------------------


def test_devices_dropping_out_move_the_quality_from_good_to_poor_to_none():
    pjm = set_rules(market("PJM"), scan_seconds=10, min_pct="75")
    res, (d1, d2, d3, d4) = resource(pjm, members=4, interval_seconds=5)  # fresh: max(2 x 5, 2 x 10) = 20 s
    heartbeat(d1, at=AT - 5 * S, kw="2.500")
    heartbeat(d2, at=AT - 15 * S, kw="-1.250")
    heartbeat(d3, at=AT - 19 * S, kw="4.000")
    heartbeat(d4, at=AT - 30 * S, kw="3.000")  # already stale

    telemetry.scan(market=pjm, at=AT)
    telemetry.scan(market=pjm, at=AT + 10 * S)  # d2 and d3 now older than 20 s
    telemetry.scan(market=pjm, at=AT + 30 * S)  # nobody within 20 s

    assert sample(res, AT) == (5.25, 3, 4, "good")  # 2.5 - 1.25 + 4.0; 3 of 4 is 75 %, not below it
    assert sample(res, AT + 10 * S) == (2.5, 1, 4, "poor")
    assert sample(res, AT + 30 * S) == (0.0, 0, 4, "none")


def test_a_device_reporting_every_five_minutes_stays_fresh_for_two_of_its_intervals():
    pjm = set_rules(market("PJM"), scan_seconds=10)
    res, (slow_fresh, slow_stale) = resource(pjm, members=2, interval_seconds=300)  # fresh: 600 s
    heartbeat(slow_fresh, at=AT - 599 * S, kw="1.000")
    heartbeat(slow_stale, at=AT - 601 * S, kw="7.000")

    telemetry.scan(market=pjm, at=AT)

    assert sample(res, AT) == (1.0, 1, 2, "poor")


def test_a_fast_device_is_judged_on_two_scans_not_two_of_its_own_intervals():
    pjm = set_rules(market("PJM"), scan_seconds=60)
    res, (fast,) = resource(pjm, members=1, interval_seconds=2)  # fresh: max(4 s, 120 s)
    heartbeat(fast, at=AT - 100 * S, kw="0.750")

    telemetry.scan(market=pjm, at=AT)

    assert sample(res, AT) == (0.75, 1, 1, "good")


def test_offline_unmeasured_and_silent_members_do_not_report_and_islanded_ones_report_zero_kw():
    pjm = set_rules(market("PJM"), scan_seconds=10, min_pct="50")
    res, (ok, offline, no_power, _never, islanded, outage) = resource(pjm, members=6, interval_seconds=10)
    heartbeat(ok, at=AT - S, kw="3.000")
    heartbeat(offline, at=AT - S, kw="9.000", online=False)
    heartbeat(no_power, at=AT - S, kw=None)
    # `never` has no status row at all
    heartbeat(islanded, at=AT - S, kw="-4.000", grid_status="islanded")  # serving its own house
    heartbeat(outage, at=AT - S, kw="2.000", grid_status="outage")

    telemetry.scan(market=pjm, at=AT)

    assert sample(res, AT) == (3.0, 3, 6, "good")  # ok + the two off-grid members (0 kW each); 3 of 6 = 50 %


def test_only_current_members_of_registered_and_active_resources_of_the_market_are_scanned():
    pjm = set_rules(market("PJM"), scan_seconds=10)
    registered, (stays, leaves) = resource(pjm, members=2, state="registered")
    active, (member,) = resource(pjm, members=1, state="active")
    _draft, (draft_member,) = resource(pjm, members=1, state="draft")
    _retired, _ = resource(pjm, members=0, state="retired")
    _other, (elsewhere,) = resource(set_rules(market("NYISO")), members=1)
    empty, _ = resource(pjm, members=0, state="registered")
    for device in (stays, leaves, member, draft_member, elsewhere):
        heartbeat(device, at=AT - S, kw="1.500")
    registered.memberships.filter(device=leaves).update(left_at=AT - 60 * S)

    result = telemetry.scan(market=pjm, at=AT)

    assert result.samples == 3
    assert set(TelemetrySample.objects.values_list("resource_id", flat=True)) == {registered.pk, active.pk, empty.pk}
    assert sample(registered, AT) == (1.5, 1, 1, "good")
    assert sample(active, AT) == (1.5, 1, 1, "good")
    assert sample(empty, AT) == (0.0, 0, 0, "none")


# --- the grid and idempotence --------------------------------------------------------------------------------


def test_a_scan_is_stored_at_its_grid_instant_and_a_repeat_of_that_instant_writes_nothing():
    pjm = set_rules(market("PJM"), scan_seconds=10)
    res, (device,) = resource(pjm, members=1)
    heartbeat(device, at=AT + 2 * S, kw="2.000")

    first = telemetry.scan(market=pjm, at=AT + 3 * S)
    heartbeat(device, at=AT + 8 * S, kw="5.000")
    again = telemetry.scan(market=pjm, at=AT + 9 * S)  # the same instant: AT

    assert (first.at, first.claimed, first.samples) == (AT, True, 1)
    assert (again.at, again.claimed, again.samples) == (AT, False, 0)
    assert sample(res, AT) == (2.0, 1, 1, "good")  # the first reading stands
    assert TelemetryScan.objects.get(market=pjm, at=AT).samples == 1


def test_the_grid_counts_from_the_epoch_in_utc_whatever_the_offset_given():
    assert grid_instant(datetime(1970, 1, 1, 0, 0, 13, tzinfo=UTC), 7) == datetime(1970, 1, 1, 0, 0, 7, tzinfo=UTC)
    local = datetime(2026, 7, 15, 10, 0, 9, 999999, tzinfo=NEW_YORK)  # 14:00:09.999999Z
    assert grid_instant(local, 10) == AT
    assert next_grid_instant(local, 10) == AT + 10 * S
    assert next_grid_instant(AT, 10) == AT + 10 * S  # strictly after
    with pytest.raises(ValueError):
        grid_instant(datetime(2026, 7, 15, 14, 0, 0), 10)


def test_the_grid_runs_straight_through_the_spring_forward_day():
    before = datetime(2026, 3, 8, 1, 59, 57, tzinfo=NEW_YORK)  # EST, 06:59:57Z
    after = datetime(2026, 3, 8, 3, 0, 4, tzinfo=NEW_YORK)  # EDT, 07:00:04Z

    assert grid_instant(before, 10) == datetime(2026, 3, 8, 6, 59, 50, tzinfo=UTC)
    assert grid_instant(after, 10) == datetime(2026, 3, 8, 7, 0, 0, tzinfo=UTC)
    assert next_grid_instant(before, 10) == grid_instant(after, 10)
    day_start = datetime(2026, 3, 8, tzinfo=NEW_YORK)
    day_end = datetime(2026, 3, 9, tzinfo=NEW_YORK)
    assert (grid_instant(day_end, 10) - grid_instant(day_start, 10)) // timedelta(seconds=10) == 23 * 360


def test_the_repeated_hour_of_the_fall_back_day_gives_two_sets_of_samples():
    pjm = set_rules(market("PJM"), scan_seconds=60)
    res, (device,) = resource(pjm, members=1, interval_seconds=30)
    first = datetime(2026, 11, 1, 1, 30, 7, tzinfo=NEW_YORK)  # EDT, 05:30:07Z
    second = datetime(2026, 11, 1, 1, 30, 7, fold=1, tzinfo=NEW_YORK)  # EST, 06:30:07Z
    heartbeat(device, at=first, kw="1.000")
    telemetry.scan(market=pjm, at=first)
    heartbeat(device, at=second, kw="2.000")
    telemetry.scan(market=pjm, at=second)

    stored = list(TelemetrySample.objects.filter(resource=res).order_by("at").values_list("at", "kw"))
    assert stored == [
        (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), 1.0),
        (datetime(2026, 11, 1, 6, 30, tzinfo=UTC), 2.0),
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_concurrent_scan_of_the_same_instant_waits_for_the_first_and_writes_nothing():
    pjm = set_rules(market("PJM"), scan_seconds=10)
    res, devices = resource(pjm, members=3)
    for device in devices:
        heartbeat(device, at=AT - S, kw="1.000")
    outcome = {}

    def second_scanner():
        try:
            outcome["result"] = telemetry.scan(market=pjm, at=AT + 4 * S)
        finally:
            connection.close()

    with transaction.atomic():
        first = telemetry.scan(market=pjm, at=AT)
        racer = threading.Thread(target=second_scanner)
        racer.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock():  # the second scan is blocked on the first one's claim
            assert time.monotonic() < deadline, "the second scan never reached the claim"
            time.sleep(0.02)
    racer.join(timeout=10)

    assert (first.claimed, first.samples) == (True, 1)
    assert (outcome["result"].claimed, outcome["result"].samples) == (False, 0)
    assert sample(res, AT) == (3.0, 3, 3, "good")


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # activity is otherwise read once per transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


# --- the scanning process ------------------------------------------------------------------------------------


def test_the_stream_scans_each_market_at_its_own_rate_and_never_fills_in_instants_it_slept_through():
    pjm = set_rules(market("PJM"), scan_seconds=10)
    nyiso = set_rules(market("NYISO"), scan_seconds=30)
    pjm_resource, (a,) = resource(pjm, members=1)
    nyiso_resource, (b,) = resource(nyiso, members=1)
    heartbeat(a, at=AT, kw="1.000")
    heartbeat(b, at=AT, kw="2.000")
    # The clock the process reads: it wakes at these wall-clock moments (a 50-second pause after the second).
    moments = iter([AT + 1 * S, AT + 10 * S, AT + 61 * S, AT + 70 * S])
    seen: list[tuple[int, datetime]] = []
    stop = threading.Event()
    current = {"now": next(moments)}

    def clock():
        return current["now"]

    def on_scan(result):
        seen.append((result.market_id, result.at))

    def advance(_=None):
        try:
            current["now"] = next(moments)
        except StopIteration:
            stop.set()

    telemetry.stream(stop=stop, clock=clock, max_sleep_seconds=0.01, on_scan=on_scan, wait=advance)

    assert seen == [
        (pjm.pk, AT),
        (nyiso.pk, AT),
        (pjm.pk, AT + 10 * S),
        (pjm.pk, AT + 60 * S),  # 20, 30, 40 and 50 were slept through: missing, not made up
        (nyiso.pk, AT + 60 * S),
        (pjm.pk, AT + 70 * S),
    ]
    assert TelemetrySample.objects.filter(resource=pjm_resource).count() == 4
    assert TelemetrySample.objects.filter(resource=nyiso_resource).count() == 2


# --- retention -----------------------------------------------------------------------------------------------


def test_prune_removes_samples_and_scans_older_than_the_kept_days_in_batches(settings):
    settings.MARKET_TELEMETRY_KEEP_DAYS = 35
    pjm = set_rules(market("PJM"), scan_seconds=10)
    _res, (device,) = resource(pjm, members=1)
    now = datetime.now(UTC)
    old = [grid_instant(now - timedelta(days=36) + i * 10 * S, 10) for i in range(5)]
    recent = grid_instant(now - timedelta(days=34), 10)
    for at in [*old, recent]:
        heartbeat(device, at=at, kw="1.000")
        telemetry.scan(market=pjm, at=at)

    assert telemetry.prune(batch=2) == 5
    assert list(TelemetrySample.objects.values_list("at", flat=True)) == [recent]
    assert list(TelemetryScan.objects.values_list("at", flat=True)) == [recent]
    assert prune_telemetry() == 0  # the beat task: nothing left to prune


def test_a_scan_is_marked_for_push_only_where_the_market_has_a_push_url():
    pjm = set_rules(market("PJM"), scan_seconds=10)
    nyiso = set_rules(market("NYISO"), scan_seconds=10)
    resource(pjm, members=0)
    resource(nyiso, members=0)
    MarketConnection.objects.create(market=pjm, telemetry_push_url="http://127.0.0.1:9/telemetry")
    MarketConnection.objects.create(market=nyiso, telemetry_push_url="http://127.0.0.1:9/t", enabled=False)

    assert telemetry.scan(market=pjm, at=AT).push_pending
    assert not telemetry.scan(market=nyiso, at=AT).push_pending
    assert TelemetryScan.objects.get(market=nyiso).push_state == "none"
    assert DeviceStatus.objects.count() == 0
