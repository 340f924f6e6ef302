"""Dispatch driven by real Celery workers on the real broker: Redis, or RabbitMQ when CELERY_BROKER_URL names one.

Every test here routes its tasks to a queue of its own (the `dispatch_queue` fixture):
other test runs share the broker and consume the default `celery` queue with
workers of their own on other databases, so neither side may see the other's tasks.
The queue, its binding and anything a killed worker left unacknowledged on it (on RabbitMQ:
its messages waiting in the delay queues for their ETA) are removed when the test ends;
nothing else on the broker is touched.

Where the brokers differ, a test says so: RabbitMQ puts back what a lost connection held at once
(Redis after the visibility timeout), and holds a task with an ETA in its delay queues (Redis in
the worker that took it).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from aggregator.celery import app
from dispatch import services, tasks
from dispatch.models import (
    Allocation,
    AllocationRound,
    DeviceCommand,
    DeviceSeasonBurden,
    DispatchEvent,
    EventInterval,
    EventTransition,
)
from tests import rabbitmq
from tests.dispatch.conftest import commands_of, next_dst_day
from tests.rabbitmq import on_rabbitmq
from tests.redis_server import RedisServer, tasks_sent_to

pytestmark = pytest.mark.worker

NEW_YORK = ZoneInfo("America/New_York")
KW = 50  # each generator of make_resource


# --- broker isolation ---------------------------------------------------------------


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def _forget_queue(name: str) -> None:
    """Delete one queue of ours: its lists (one per priority step), its binding, its unacked messages."""
    if on_rabbitmq():
        rabbitmq.forget(name)
        return
    client = _redis()
    sep = "\x06\x16"
    client.delete(name, *(f"{name}{sep}{pri}" for pri in (3, 6, 9)))
    for pattern in ("_kombu.binding.*", "_kombu.binding_permanent.*"):  # binding tables, by exchange
        for key in client.scan_iter(match=pattern):
            for member in client.smembers(key):
                if member.decode().split(sep)[-1] == name:
                    client.srem(key, member)
    for tag, raw in client.hscan_iter("unacked"):
        try:
            _, _, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if routing_key == name:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    client.close()


def _queued(name: str) -> list[dict]:
    """The messages waiting on our queue (priority 0: the only one these tasks use), or for their ETA to it."""
    if on_rabbitmq():
        return rabbitmq.peek(name)
    client = _redis()
    try:
        return [json.loads(raw) for raw in client.lrange(name, 0, -1)]
    finally:
        client.close()


def _purge(name: str) -> int:
    with app.connection_for_write() as conn:
        return conn.default_channel.queue_purge(name) or 0


@pytest.fixture(autouse=True)
def dispatch_queue():
    """Route every task this process sends, and the in-process worker, to a queue of this test's own."""
    name = f"dispatch-test-{uuid.uuid4().hex[:16]}"
    queues = app.amqp.queues
    saved_default, saved_consume = app.conf.task_default_queue, queues._consume_from
    app.conf.task_default_queue = name
    queues.select([name])  # what a worker started now consumes
    try:
        yield name
    finally:
        app.conf.task_default_queue = saved_default
        queues._consume_from = saved_consume
        queues.pop(name, None)
        _forget_queue(name)


@pytest.fixture
def celery_worker(dispatch_queue, celery_worker):
    """tests/conftest.py's in-process worker, consuming this test's queue only."""
    assert list(app.amqp.queues.consume_from) == [dispatch_queue]
    yield celery_worker


# --- helpers -------------------------------------------------------------------------


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout:g} s waiting for {what}.")
        time.sleep(interval)


def fresh(event: DispatchEvent) -> DispatchEvent:
    return DispatchEvent.objects.get(pk=event.pk)


def needing_kw(event: DispatchEvent) -> set[int]:
    return {a.device_id for a in Allocation.objects.filter(event=event) if sum(a.kw) > 0}


def needing_command(event: DispatchEvent) -> set[int]:
    return set(Allocation.objects.filter(event=event, needs_command=True).values_list("device_id", flat=True))


def fully_issued(event: DispatchEvent, rounds: int = 1) -> bool:
    e = fresh(event)
    return e.allocation_round >= rounds and e.commands_issued_round == e.allocation_round


def as_utc(value: str | datetime) -> datetime:
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(UTC)


# --- 1. the ETA task ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_event_fires_at_its_start_through_its_eta_task_and_not_before(make_resource, celery_worker):
    resource = make_resource(generators=4)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=start,
        end=start + timedelta(hours=1),
        notify_at=start,
        target_kw=120,
        by="tester",
        over_commit_pct=0,
    )

    # Before start: the worker holds the ETA task and nothing happens.
    while datetime.now(UTC) < start - timedelta(milliseconds=300):
        e = fresh(event)
        assert (e.state, e.allocation_round) == ("scheduled", 0)
        assert not DeviceCommand.objects.filter(event=event).exists()
        time.sleep(0.1)

    wait_for(
        lambda: fresh(event).state == "active" and fully_issued(event),
        timeout=10,
        what="the event to start and its commands to be issued",
    )
    seen_at = datetime.now(UTC)
    assert seen_at < start + timedelta(seconds=6)

    event.refresh_from_db()
    actions = {t.action: t.at for t in EventTransition.objects.filter(event=event)}
    assert set(actions) == {"create", "notify", "start"}
    assert start <= actions["notify"] <= actions["start"] < start + timedelta(seconds=5)
    wanted = needing_kw(event)
    assert len(wanted) == 3  # 50 + 50 + 20 kW of 120
    assert commands_of(event) == dict.fromkeys(wanted, 1)
    commands = DeviceCommand.objects.filter(event=event)
    assert {(c.kind, c.round, c.sequence, c.not_before) for c in commands} == {("dispatch", 1, 1, start)}
    assert all(c.created_at >= start for c in commands)


# --- 2. a worker killed mid fan-out ---------------------------------------------------

WORKER = """
import sys
from aggregator.celery import app
queue, name = sys.argv[1], sys.argv[2]
app.conf.task_default_queue = queue  # what its tasks send (fan_out's chunks) stays on our queue
app.conf.worker_enable_remote_control = False
app.worker_main(["worker", "--pool=solo", "--concurrency=1", "-Q", queue, "-n", name, "--loglevel=INFO",
                 "--without-heartbeat", "--without-mingle", "--without-gossip"])
"""


def _test_database_url() -> str:
    """DATABASE_URL with pytest-django's test database (named by DJANGO_TEST_DATABASE_NAME) in its path."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


class WorkerProcess:
    """`celery worker` as a separate OS process on the test database and our queue.

    On a Redis server (`redis_url`) or a broker (`broker_url`) of the test's own, it is the worker deploy/Procfile
    runs, every part on (prefork pool, heartbeat, mingle, gossip, remote control), on the default queue.
    """

    def __init__(self, queue: str, log_dir, label: str, *, redis_url: str | None = None, broker_url: str = ""):
        self.log = log_dir / f"worker-{label}.log"
        env = {**os.environ, "DATABASE_URL": _test_database_url(), "PYTHONUNBUFFERED": "1"}
        name = f"{label}-{uuid.uuid4().hex[:8]}@%h"
        command = [sys.executable, "-c", WORKER, queue, name]
        if redis_url or broker_url:
            if redis_url:  # its broker (unless broker_url names another), result backend and cache
                env["REDIS_URL"] = redis_url
            if broker_url:
                env["CELERY_BROKER_URL"] = broker_url
            command = [sys.executable, "-m", "celery", "-A", "aggregator", "worker", "--loglevel", "INFO"]
            command += ["--concurrency", "1", "--hostname", name]
        self.process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def result(self, async_result, *, timeout: float):
        """The task's return value; fails at once, with the worker's log, if the worker died."""
        wait_for(
            lambda: async_result.ready() or self.process.poll() is not None,
            timeout=timeout,
            what=f"task {async_result.id} on worker {self.log.name}",
        )
        assert self.process.poll() is None, f"the worker exited with {self.process.returncode}:\n{self.tail()}"
        return async_result.get(timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _unacked_ids(queue: str) -> list[str]:
    """Ids of the tasks on our queue that a worker took and never acknowledged."""
    client = _redis()
    try:
        return [
            payload["headers"]["id"]
            for payload, _, routing_key in (json.loads(raw) for _, raw in client.hscan_iter("unacked"))
            if routing_key == queue
        ]
    finally:
        client.close()


def _backends_waiting_on_a_lock() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees its first snapshot throughout
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND wait_event_type = 'Lock'"
        )
        return [row[0] for row in cursor.fetchall()]


def _backends_alive(pids: list[int]) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_killed_mid_fan_out_loses_no_command_and_duplicates_none(
    make_resource, dispatch_queue, monkeypatch, tmp_path
):
    assert connection.settings_dict["NAME"].startswith("test_")  # the worker subprocess must use the test database
    n, k = 40, 10
    resource = make_resource(generators=n)
    now = datetime.now(UTC)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=now,
        end=now + timedelta(hours=1),
        target_kw=n * KW - 25,
        by="tester",
        over_commit_pct=0,
    )
    # Allocate here, with one device per chunk so that the fan-out is many tasks.
    monkeypatch.setattr(services.rounds, "FAN_OUT_CHUNK", 1)
    chunks = services.advance(event_id=event.pk)
    wanted = needing_command(event)
    assert len(wanted) == n and needing_kw(event) == wanted
    assert [c[2] for c in chunks] == sorted(wanted) and all(c[2] == c[3] for c in chunks)
    devices = [c[2] for c in chunks]
    # The tasks create_event and advance queued (no worker ran yet) would fan out in one chunk: drop them.
    _purge(dispatch_queue)
    sent = [tasks.issue_command_chunk.apply_async(args=chunk, queue=dispatch_queue) for chunk in chunks]

    workers = []
    try:
        # An uncommitted command of our own for chunk k's device makes the worker's INSERT wait on it, so the
        # worker is inside chunk k's transaction when it is killed.
        with transaction.atomic():
            DeviceCommand.objects.create(
                event=event,
                device_id=devices[k],
                sequence=1,
                round=1,
                kind="dispatch",
                schedule=[],
                not_before=event.start,
                expires_at=event.end,
            )
            first = WorkerProcess(dispatch_queue, tmp_path, "first")
            workers.append(first)
            waiting = wait_for(
                lambda: _backends_waiting_on_a_lock() or first.process.poll() is not None,
                timeout=60,
                what="the first worker to reach chunk k",
            )
            assert first.process.poll() is None, first.tail()
            first.kill()
            transaction.set_rollback(True)
        # Its database session, orphaned mid-statement, ends without committing.
        wait_for(lambda: not _backends_alive(waiting), timeout=30, what="the dead worker's database session to end")
        assert commands_of(event) == dict.fromkeys(devices[:k], 1), first.tail()
        # acks_late: the message it held is still the broker's (RabbitMQ put it back on the queue when the
        # worker's connection went; Redis keeps it unacked until the visibility timeout).
        if on_rabbitmq():
            assert sent[k].id in {m["headers"]["id"] for m in _queued(dispatch_queue)}
        else:
            assert _unacked_ids(dispatch_queue) == [sent[k].id]
        assert not fully_issued(event)

        # A new worker takes the rest of the queue; a marker sent last tells when it is through.
        second = WorkerProcess(dispatch_queue, tmp_path, "second")
        workers.append(second)
        marker = tasks.issue_command_chunk.apply_async(args=chunks[0], queue=dispatch_queue)
        assert second.result(marker, timeout=60) == 0  # a re-run of a done chunk issues nothing
        if on_rabbitmq():  # chunk k was back on the queue, before the marker: the new worker ran it
            assert set(commands_of(event)) == wanted
        else:
            assert set(commands_of(event)) == wanted - {devices[k]}  # chunk k waits in the broker for an hour
            assert not fully_issued(event)

            # The recovery path: the beat's sweep re-drives a fan-out stalled for STALLED_AFTER (here: backdated).
            AllocationRound.objects.filter(event=event).update(created_at=F("created_at") - tasks.STALLED_AFTER)
            assert second.result(tasks.sweep.apply_async(), timeout=30) == 1
        wait_for(
            lambda: fully_issued(event) or second.process.poll() is not None,
            timeout=60,
            what="the fan-out to complete",
        )
        assert second.process.poll() is None, second.tail()
        # The broker redelivering every chunk (as it does after the visibility timeout) changes nothing.
        again = [tasks.issue_command_chunk.apply_async(args=chunk, queue=dispatch_queue) for chunk in chunks]
        assert [second.result(r, timeout=60) for r in again] == [0] * n
    finally:
        for worker in workers:
            worker.stop()

    assert commands_of(event) == dict.fromkeys(wanted, 1)
    assert {(c.round, c.sequence, c.kind, c.status) for c in DeviceCommand.objects.filter(event=event)} == {
        (1, 1, "dispatch", "pending")
    }
    event.refresh_from_db()
    assert (event.state, event.allocation_round, event.commands_issued_round) == ("active", 1, 1)


# --- 3. the sweep ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_sweep_starts_an_event_whose_eta_task_was_lost(make_resource, celery_worker):
    resource = make_resource(generators=4)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=start,
        end=start + timedelta(hours=1),
        notify_at=start,
        target_kw=120,
        by="tester",
        over_commit_pct=0,
    )
    # Its ETA tasks (held by the worker) fire an hour from now: move the event to have started a minute ago,
    # as if the task at its start had been lost.
    shift = timedelta(hours=1, minutes=1)
    DispatchEvent.objects.filter(pk=event.pk).update(
        notify_at=F("notify_at") - shift, start=F("start") - shift, end=F("end") - shift
    )
    EventInterval.objects.filter(event=event).update(start=F("start") - shift, end=F("end") - shift)
    assert (fresh(event).state, fresh(event).allocation_round) == ("scheduled", 0)

    assert tasks.sweep.delay().get(timeout=30) == 1
    wait_for(
        lambda: fresh(event).state == "active" and fully_issued(event),
        timeout=15,
        what="the swept event to start and issue its commands",
    )
    wanted = needing_kw(event)
    assert len(wanted) == 3
    assert commands_of(event) == dict.fromkeys(wanted, 1)
    assert [t.action for t in EventTransition.objects.filter(event=event)] == ["create", "notify", "start"]


# --- 4. cancellation ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_cancelling_an_active_event_sends_a_cancel_command_to_every_device_with_a_live_command(
    make_resource, celery_worker
):
    resource = make_resource(generators=4)
    now = datetime.now(UTC)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=now,
        end=now + timedelta(hours=1),
        target_kw=120,
        by="tester",
        over_commit_pct=0,
    )
    wait_for(lambda: fresh(event).state == "active" and fully_issued(event), timeout=15, what="the event to start")
    live = set(commands_of(event))
    assert len(live) == 3

    services.cancel(event=event, by="tester", reason="Grid emergency over.")
    wait_for(lambda: fully_issued(event, rounds=2), timeout=15, what="the cancel commands to be issued")

    event.refresh_from_db()
    assert (event.state, event.allocation_round, event.commands_issued_round) == ("cancelled", 2, 2)
    assert commands_of(event) == dict.fromkeys(live, 2)
    by_device = {}
    for c in DeviceCommand.objects.filter(event=event).order_by("device_id", "sequence"):
        by_device.setdefault(c.device_id, []).append((c.sequence, c.round, c.kind, c.status, c.schedule))
    for device_id in live:
        (_, _, kind1, status1, _), (seq2, round2, kind2, status2, schedule2) = by_device[device_id]
        assert (kind1, status1) == ("dispatch", "superseded")
        assert (seq2, round2, kind2, status2, schedule2) == (2, 2, "cancel", "pending", [])
    assert all(sum(a.kw) == 0 for a in Allocation.objects.filter(event=event))


def _hold_command_slot(event: DispatchEvent, device_id: int):
    """An uncommitted command (round 1, sequence 1) on a connection of its own: an INSERT of the same one waits on it."""
    held = psycopg.connect(_test_database_url())
    held.execute(
        """INSERT INTO dispatch_devicecommand (id, event_id, device_id, sequence, round, kind, schedule, ramp_seconds,
                                               not_before, expires_at, status, created_at, reason)
           VALUES (gen_random_uuid(), %s, %s, 1, 1, 'dispatch', '[]', 0, %s, %s, 'pending', now(), '')""",
        [event.pk, device_id, event.start, event.end],
    )
    return held


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_cancel_while_a_fan_out_chunk_is_in_flight_leaves_no_device_a_live_dispatch(
    make_resource, dispatch_queue, monkeypatch, tmp_path
):
    resource = make_resource(generators=4)
    now = datetime.now(UTC)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=now,
        end=now + timedelta(hours=1),
        target_kw=120,
        by="tester",
        over_commit_pct=0,
    )
    monkeypatch.setattr(services.rounds, "FAN_OUT_CHUNK", 1)
    chunks = services.advance(event_id=event.pk)
    assert len(chunks) == 3
    _purge(dispatch_queue)  # the worker runs only the chunk sent below
    first, in_flight, _ = chunks
    services.issue_commands(event_id=first[0], round_number=first[1], first_device=first[2], last_device=first[3])

    held = _hold_command_slot(event, in_flight[2])
    worker = WorkerProcess(dispatch_queue, tmp_path, "race")
    try:
        chunk = tasks.issue_command_chunk.apply_async(args=in_flight)
        wait_for(
            lambda: _backends_waiting_on_a_lock() or worker.process.poll() is not None,
            timeout=60,
            what="the worker's chunk to be in flight",
        )
        assert worker.process.poll() is None, worker.tail()

        def cancel():
            try:
                services.cancel(event=event, by="tester", reason="Grid emergency over.")
            finally:
                connection.close()

        canceller = threading.Thread(target=cancel)
        canceller.start()
        canceller.join(timeout=3)  # done, or waiting for the chunk (if chunks lock the event)
        held.rollback()
        held.close()
        canceller.join(timeout=30)
        assert not canceller.is_alive()
        assert worker.result(chunk, timeout=30) in (0, 1)
        wait_for(lambda: fully_issued(event, rounds=2), timeout=30, what="the cancel round to be issued")
    finally:
        worker.stop()

    event.refresh_from_db()
    assert (event.state, event.allocation_round) == ("cancelled", 2)
    live = DeviceCommand.objects.filter(event=event, status__in=["pending", "accepted"])
    assert sorted((c.device_id, c.round, c.kind) for c in live if c.kind != "cancel") == []


# --- 5. daylight saving ---------------------------------------------------------------

SPRING_FORWARD = next_dst_day(NEW_YORK, spring=True)
FALL_BACK = next_dst_day(NEW_YORK, spring=False)
DST_DAYS = [
    # (local start, local end, real hours): spring forward has 2 real hours in 01:00-04:00, fall back 4 in 00:00-03:00.
    pytest.param(
        datetime.combine(SPRING_FORWARD, wall_time(1), NEW_YORK),
        datetime.combine(SPRING_FORWARD, wall_time(4), NEW_YORK),
        2,
        id="spring-forward",
    ),
    pytest.param(
        datetime.combine(FALL_BACK, wall_time(0), NEW_YORK),
        datetime.combine(FALL_BACK, wall_time(3), NEW_YORK),
        4,
        id="fall-back",
    ),
]


def _dst_event_runs(make_resource, capture, start, end, hours, queue):
    resource = make_resource(generators=3)
    with capture(execute=True):
        event = services.create_event(
            resource=resource,
            source="operator_test",
            start=start,
            end=end,
            notify_at=start - timedelta(hours=1),
            target_kw=3 * KW,
            by="tester",
            over_commit_pct=0,
        )
    utc_start = start.astimezone(UTC)
    expected = [(utc_start + timedelta(hours=h), utc_start + timedelta(hours=h + 1)) for h in range(hours)]
    intervals = list(EventInterval.objects.filter(event=event).order_by("start"))
    assert [(i.start, i.end) for i in intervals] == expected
    assert all(i.start.utcoffset() == timedelta(0) for i in intervals)

    # The tasks queued at notify, start and end carry those instants as their ETA.
    etas = sorted(
        as_utc(m["headers"]["eta"]) for m in _queued(queue) if m["headers"]["task"] == "dispatch.tasks.advance_event"
    )
    wanted = [utc_start - timedelta(hours=1), utc_start, utc_start + timedelta(hours=hours)]
    if on_rabbitmq():  # Celery turns the ETA into a countdown for the delay queues and back, microseconds later
        assert len(etas) == 3 and all(w <= e < w + timedelta(seconds=1) for e, w in zip(etas, wanted, strict=True))
    else:
        assert etas == wanted

    for chunk in services.advance(event_id=event.pk, now=utc_start + timedelta(minutes=1)):
        services.issue_commands(
            event_id=chunk[0],
            round_number=chunk[1],
            first_device=chunk[2],
            last_device=chunk[3],
            now=utc_start + timedelta(minutes=1),
        )
    assert fresh(event).state == "active"
    commands = list(DeviceCommand.objects.filter(event=event))
    assert len(commands) == 3
    for command in commands:
        assert [(as_utc(s["start"]), as_utc(s["end"]), s["kw"]) for s in command.schedule] == [
            (a, b, KW) for a, b in expected
        ]
        assert all(s["start"].endswith("+00:00") for s in command.schedule)

    assert services.advance(event_id=event.pk, now=utc_start + timedelta(hours=hours, minutes=1)) == []
    assert fresh(event).state == "completed"
    burdens = DeviceSeasonBurden.objects.filter(device_id__in=[c.device_id for c in commands])
    assert sorted((b.season, b.events, b.hours) for b in burdens) == [(start.year, 1, float(hours))] * 3


@pytest.mark.parametrize("start, end, hours", DST_DAYS)
def test_an_event_on_a_dst_day_has_utc_hourly_intervals_and_burdens_real_hours(
    make_resource, django_capture_on_commit_callbacks, dispatch_queue, start, end, hours
):
    """Given as UTC instants (as the API's serializers hand them to the service)."""
    _dst_event_runs(
        make_resource,
        django_capture_on_commit_callbacks,
        start.astimezone(UTC),
        end.astimezone(UTC),
        hours,
        dispatch_queue,
    )


@pytest.mark.parametrize("start, end, hours", DST_DAYS)
def test_an_event_given_in_local_time_on_a_dst_day_has_hourly_intervals(
    make_resource, django_capture_on_commit_callbacks, dispatch_queue, start, end, hours
):
    """Given as zone-aware local datetimes: an hour is still a real hour (wall-clock arithmetic would not be)."""
    _dst_event_runs(make_resource, django_capture_on_commit_callbacks, start, end, hours, dispatch_queue)


# --- 6. a Redis restart under the worker -------------------------------------------------


@pytest.fixture
def private_broker(tmp_path):
    """A Redis server of this test's own, and the project's app sending this process's tasks to it (default queue)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        with tasks_sent_to(server.url):
            yield server
    finally:
        server.stop()


@pytest.mark.skipif(on_rabbitmq(), reason="the Redis transport's own close (aggregator.core.broker); see below")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_survives_a_redis_restart_and_starts_the_next_event_on_time(
    make_resource, dispatch_queue, private_broker, tmp_path
):
    worker = WorkerProcess(dispatch_queue, tmp_path, "restart", redis_url=private_broker.url)
    try:
        now = datetime.now(UTC)
        # A scheduled event: its steps (notify, start, end) wait in the worker for their ETAs, unacknowledged,
        # when Redis goes.
        services.create_event(
            resource=make_resource(generators=2, name="held"),
            source="operator_test",
            start=now + timedelta(hours=2),
            end=now + timedelta(hours=3),
            notify_at=now + timedelta(hours=1),
            target_kw=KW,
            by="tester",
            over_commit_pct=0,
        )
        redis_client = private_broker.client()
        wait_for(
            lambda: redis_client.hlen("unacked") == 3 or worker.process.poll() is not None,
            timeout=60,
            what="the worker to hold the event's three ETA tasks",
        )
        # ... and waits on Redis for the next task, as an idle worker does.
        wait_for(
            lambda: any(c["cmd"] == "brpop" for c in redis_client.client_list()) or worker.process.poll() is not None,
            timeout=30,
            what="the worker to wait for its next task",
        )
        assert worker.process.poll() is None, worker.tail()

        private_broker.restart()

        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        event = services.create_event(
            resource=make_resource(generators=4, name="next"),
            source="operator_test",
            start=start,
            end=start + timedelta(hours=1),
            notify_at=start,
            target_kw=120,
            by="tester",
            over_commit_pct=0,
        )
        wait_for(
            lambda: (fresh(event).state == "active" and fully_issued(event)) or worker.process.poll() is not None,
            timeout=30,
            what="the event created after the restart to start",
        )
        assert worker.process.poll() is None, f"the worker exited with {worker.process.returncode}:\n{worker.tail()}"
        started = EventTransition.objects.get(event=event, action="start").at
        assert start <= started < start + timedelta(seconds=5)
        assert commands_of(event) == dict.fromkeys(needing_kw(event), 1)
    finally:
        worker.stop()


@pytest.fixture
def private_vhost():
    """A RabbitMQ virtual host of this test's own, and the project's app sending this process's tasks to it."""
    vhost = rabbitmq.PrivateVhost()
    try:
        with tasks_sent_to(vhost.url, result_backend=settings.CELERY_RESULT_BACKEND):
            yield vhost
    finally:
        vhost.delete()


@pytest.mark.skipif(not on_rabbitmq(), reason="RabbitMQ's counterpart of the Redis restart above")
@pytest.mark.skipif(on_rabbitmq() and not rabbitmq.can_manage_vhosts(), reason="needs rabbitmqctl")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_survives_rabbitmq_closing_its_connections_and_starts_the_next_event_on_time(
    make_resource, dispatch_queue, private_vhost, tmp_path
):
    worker = WorkerProcess(dispatch_queue, tmp_path, "restart", broker_url=private_vhost.url)
    try:
        wait_for(
            lambda: b"ready." in worker.log.read_bytes() or worker.process.poll() is not None,
            timeout=60,
            what="the worker to be ready",
        )
        now = datetime.now(UTC)
        # A scheduled event: its steps (notify, start, end) wait in RabbitMQ's delay queues for their ETAs.
        held = services.create_event(
            resource=make_resource(generators=2, name="held"),
            source="operator_test",
            start=now + timedelta(hours=2),
            end=now + timedelta(hours=3),
            notify_at=now + timedelta(hours=1),
            target_kw=KW,
            by="tester",
            over_commit_pct=0,
        )
        assert worker.process.poll() is None, worker.tail()

        private_vhost.close_connections()

        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        event = services.create_event(
            resource=make_resource(generators=4, name="next"),
            source="operator_test",
            start=start,
            end=start + timedelta(hours=1),
            notify_at=start,
            target_kw=120,
            by="tester",
            over_commit_pct=0,
        )
        wait_for(
            lambda: (fresh(event).state == "active" and fully_issued(event)) or worker.process.poll() is not None,
            timeout=30,
            what="the event created after the connections closed to start",
        )
        assert worker.process.poll() is None, f"the worker exited with {worker.process.returncode}:\n{worker.tail()}"
        started = EventTransition.objects.get(event=event, action="start").at
        assert start <= started < start + timedelta(seconds=5)
        assert commands_of(event) == dict.fromkeys(needing_kw(event), 1)
        # The held event's three steps are still waiting in the broker, as Redis's unacked set kept them.
        steps = [m["headers"]["eta"] for m in rabbitmq.peek("celery") if m["body"][0] == [held.pk]]
        assert len(steps) == 3
    finally:
        worker.stop()
