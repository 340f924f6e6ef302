"""Two requests writing the same intervals at once: neither fails, no value is lost."""

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from aggregator.reference import partitions
from aggregator.reference import readings as ingest
from aggregator.reference.models import Reading, ReadingRevision
from tests.factories import DeviceFactory, SiteFactory

START = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)


def _batch(kwh: float) -> list[dict]:
    return [
        {"start": (START + timedelta(minutes=5 * i)).isoformat(), "interval_seconds": 300, "kwh": kwh}
        for i in range(12)
    ]


def _wait_until_blocked(pid: int) -> None:
    with connection.cursor() as cursor:
        for _ in range(500):
            cursor.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == "transactionid":  # on a row the other transaction wrote
                return
            time.sleep(0.01)
    raise AssertionError("the second writer never waited for the first")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_writer_racing_another_on_the_same_intervals_stores_its_values_as_a_correction():
    device = DeviceFactory()
    partitions.ensure(first=START - timedelta(days=1), last=START + timedelta(days=1))  # as the beat task does
    meters = ingest.Meters(devices={device.pk: (device.site_id, "battery", False)}, default_device=device.pk)
    first_wrote, release = threading.Event(), threading.Event()
    second_pid, results, errors = [], {}, []

    def first():
        try:
            with transaction.atomic():  # holds its new rows uncommitted until released
                results["first"] = ingest.ingest(readings=_batch(0.5), meters=meters)
                first_wrote.set()
                release.wait(10)
        except Exception as exc:
            errors.append(exc)
        finally:
            first_wrote.set()
            connections.close_all()

    def second():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                second_pid.append(cursor.fetchone()[0])
            results["second"] = ingest.ingest(readings=_batch(0.75), meters=meters)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    a = threading.Thread(target=first)
    a.start()
    first_wrote.wait(10)
    b = threading.Thread(target=second)
    b.start()
    for _ in range(500):
        if second_pid:
            break
        time.sleep(0.01)
    _wait_until_blocked(second_pid[0])  # it saw nothing stored and is inserting the same keys
    release.set()
    a.join(10)
    b.join(10)

    assert not errors, errors
    assert results["first"].as_dict() == {"received": 12, "inserted": 12, "updated": 0, "unchanged": 0}
    assert results["second"].as_dict() == {"received": 12, "inserted": 0, "updated": 12, "unchanged": 0}
    stored = Reading.objects.filter(meter_kind=2, meter_id=device.pk)
    assert sorted({(float(r.kwh), r.revision) for r in stored}) == [(0.75, 2)]
    assert ReadingRevision.objects.filter(meter_id=device.pk, revision=1).count() == 12


def _hour_of_fives() -> list[dict]:
    return [
        {"meter": "site", "start": (START + timedelta(minutes=5 * i)).isoformat(), "interval_seconds": 300, "kwh": 0.1}
        for i in range(12)
    ]


def _one_hour() -> list[dict]:
    return [{"meter": "site", "start": START.isoformat(), "interval_seconds": 3600, "kwh": 1.2}]


def _wait_until_blocked_or_done(pid: list[int], done: threading.Event) -> None:
    """The second writer is waiting for a lock the first holds (or finished without one)."""
    with connection.cursor() as cursor:
        for _ in range(500):
            if done.is_set():
                return
            if pid:
                cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid[0]])
                if cursor.fetchone()[0] == "Lock":
                    return
            time.sleep(0.01)
    raise AssertionError("the second writer neither waited nor finished")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(("first_batch", "second_batch"), [(_hour_of_fives, _one_hour), (_one_hour, _hour_of_fives)])
def test_two_devices_racing_intervals_of_different_lengths_at_their_site_meter_one_is_refused(
    device_client, first_batch, second_batch
):
    site = SiteFactory()
    one, other = DeviceFactory(site=site), DeviceFactory(site=site)
    partitions.ensure(first=START - timedelta(days=1), last=START + timedelta(days=1))  # as the beat task does
    alone = DeviceFactory()  # what the same pair answers one after the other, at another site
    alone_client = device_client(device=alone)[0]
    alone_client.post("/api/device/v1/readings", {"readings": first_batch()}, format="json")
    sequential = alone_client.post("/api/device/v1/readings", {"readings": second_batch()}, format="json")
    assert sequential.status_code == 400
    client = device_client(device=other)[0]
    meters = ingest.Meters(devices={one.pk: (site.pk, "battery", False)}, default_device=one.pk)
    both_started = threading.Barrier(2, timeout=10)
    release, second_done = threading.Event(), threading.Event()
    second_pid, results, errors = [], {}, []

    def first():
        try:
            with transaction.atomic():  # its rows stay uncommitted until released
                results["first"] = ingest.ingest(readings=first_batch(), meters=meters)
                both_started.wait()
                release.wait(10)
        except Exception as exc:
            errors.append(exc)
            both_started.abort()
        finally:
            connections.close_all()

    def second():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                second_pid.append(cursor.fetchone()[0])
            both_started.wait()
            results["second"] = client.post("/api/device/v1/readings", {"readings": second_batch()}, format="json")
        except Exception as exc:
            errors.append(exc)
        finally:
            second_done.set()
            connections.close_all()

    a, b = threading.Thread(target=first), threading.Thread(target=second)
    a.start()
    b.start()
    try:
        _wait_until_blocked_or_done(second_pid, second_done)
    finally:
        release.set()
        a.join(10)
        b.join(10)

    assert not errors, errors
    assert results["first"].inserted == len(first_batch())
    refused = results["second"]
    assert (refused.status_code, refused.json()) == (sequential.status_code, sequential.json())
    stored = Reading.objects.filter(meter_kind=1, meter_id=site.pk).order_by("start")
    assert [(r.start.isoformat(), r.interval_seconds) for r in stored] == [
        (r["start"], r["interval_seconds"]) for r in first_batch()
    ]
    assert sum(r.kwh for r in stored) == Decimal("1.2")
