"""Two requests writing the same intervals at once: neither fails, no value is lost."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction

from aggregator.reference import partitions
from aggregator.reference import readings as ingest
from aggregator.reference.models import Reading, ReadingRevision
from tests.factories import DeviceFactory

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
