"""OCPP: 10,000 simulated chargers on one server process; a dispatch to all of them (target: every profile sent within 10 s of the commands, every answer recorded); memory per connection.

Setup (not timed): BENCH_OCPP_CHARGERS EV chargers (7.2 kW) through the fleet import, active
in a program, online and plugged in, members of one registered resource, each with its OCPP
password. One `manage.py run_ocpp` process; BENCH_OCPP_CLIENT_PROCESSES client processes
connect the chargers with the `ocpp` package's charge points (half OCPP 1.6J, half 2.0.1),
each over its own websocket with HTTP Basic, and answer every SetChargingProfile Accepted.
The server's resident memory is read from /proc before and after the connections.

Timed: a real-time event for the resource is created; its start task and fan-out chunks run
on real Celery workers (separate processes); each chunk's chargers are published to the
server process through Redis, which sends their profiles. The clock runs from the first
command's creation to the moment the last charger received its profile; then until every
Accepted is recorded as the command's acknowledgement.
"""

import hashlib
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.db import connection
from django.db.models import Max, Min
from django.utils import timezone

from aggregator.aggregation.models import VirtualResource
from aggregator.demo.fleet import fleet_rows
from aggregator.reference.models import Market, Program
from dispatch import services
from dispatch.models import DeviceCommand
from dispatch.ocpp.models import Charger
from enrollment.fleet_import import COLUMNS, import_fleet
from tests.bench import ocpp_clients

CHARGERS = int(os.environ.get("BENCH_OCPP_CHARGERS", "10000"))
CLIENT_PROCESSES = int(os.environ.get("BENCH_OCPP_CLIENT_PROCESSES", "4"))
WORKER_CONCURRENCY = int(os.environ.get("BENCH_OCPP_WORKERS", "2"))
TARGET_SECONDS = 10.0
TARGET_FAILED = False
ROOT = Path(__file__).resolve().parents[2]
EV = {
    "device_type": "ev_charger",
    "manufacturer": "Wallbox",
    "model": "Pulsar Plus",
    "rated_kw": "7.2",
}


def _fleet_csv() -> bytes:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row in fleet_rows(
        customers=CHARGERS, devices=CHARGERS, markets=("PJM",), nodes_per_market=1, prefix="OCP", retail_dr_share=0
    ):
        writer.writerow({**{k: v for k, v in row.items() if k in _SITE_KEYS}, **EV, "serial": row["serial"]})
    return out.getvalue().encode()


_SITE_KEYS = {
    "customer_ref",
    "customer_name",
    "customer_kind",
    "email",
    "utility",
    "meter_id",
    "market",
    "pricing_node",
    "zone",
    "region",
    "latitude",
    "longitude",
    "retail_programs",
}


def _setup() -> tuple[VirtualResource, list[tuple[str, str]]]:
    report = import_fleet(source=_fleet_csv())
    assert report.ok, report.errors[:3]
    market = Market.objects.get(code="PJM")
    program = Program.objects.create(
        market=market, code="bench-ocpp", name="Bench OCPP", service="capacity", terms_version="1"
    )
    resource = VirtualResource.objects.create(
        name="bench-ocpp",
        market=market,
        program=program,
        participation_model="capacity",
        scope="PJM_N0001",
        state="registered",
        market_resource_id="PJM-OCPP",
    )
    passwords = {}
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO enrollment_enrollment (device_id, program_id, state, applied_at, activated_at, review_outcome,
                                                  utility_reference, updated_at)
               SELECT id, %s, 'active', now(), now(), 'approved', '', now() FROM enrollment_device WHERE serial LIKE 'OCPS%%'""",
            [program.pk],
        )
        cursor.execute(
            """INSERT INTO enrollment_devicestatus (device_id, online, last_seen_at, ev_plugged_in, mode, firmware,
                                                    grid_status, updated_at)
               SELECT id, true, now(), true, '', '', 'grid_connected', now() FROM enrollment_device WHERE serial LIKE 'OCPS%%'"""
        )
        cursor.execute(
            """INSERT INTO aggregator_resourcemembership (resource_id, device_id, joined_at)
               SELECT %s, id, now() - interval '1 day' FROM enrollment_device WHERE serial LIKE 'OCPS%%'""",
            [resource.pk],
        )
        cursor.execute(
            """INSERT INTO ocpp_charger (device_id, identity, protocol, connected, node, last_action, vendor, model,
                                         serial_number, firmware, connectors, plan_answer, created_at)
               SELECT id, serial, '', false, '', '', '', '', '', '', '{}', '', now()
               FROM enrollment_device WHERE serial LIKE 'OCPS%%' ORDER BY id RETURNING id, identity"""
        )
        chargers = cursor.fetchall()
        rows, now = [], timezone.now().isoformat()
        for charger_id, identity in chargers:
            password = secrets.token_hex(16)
            passwords[identity] = password
            digest = hashlib.sha256(password.encode()).hexdigest()
            rows.append(f"{secrets.token_hex(8)}\t{digest}\tbench\t{now}\t{charger_id}\n")
        with cursor.copy(
            "COPY ocpp_chargercredential (key_id, digest, label, created_at, charger_id) FROM STDIN"
        ) as copy:
            copy.write("".join(rows))
        cursor.execute("ANALYZE")
    return resource, sorted(passwords.items())


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _workers() -> subprocess.Popen:
    from tests.bench.bench_dispatch import _workers as dispatch_workers

    return dispatch_workers()


def run() -> list[str]:
    global TARGET_FAILED
    lines: list[str] = []
    t0 = time.perf_counter()
    resource, passwords = _setup()
    lines.append(f"setup: {CHARGERS:,} OCPP chargers in {time.perf_counter() - t0:.1f} s")

    port = 19000 + os.getpid() % 500
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    log_path = ROOT / ".data" / "bench-ocpp-server.log"
    log_path.parent.mkdir(exist_ok=True)
    server_log = open(log_path, "w")  # noqa: SIM115  (closed in the finally below)
    server = subprocess.Popen(
        [sys.executable, "manage.py", "run_ocpp", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=server_log,
        stderr=server_log,
    )
    clients, worker = [], None
    try:
        time.sleep(3)
        rss_before = _rss_kb(server.pid)
        ctx = multiprocessing.get_context("spawn")
        connected, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        entries = [
            (identity, password, "ocpp1.6" if n % 2 else "ocpp2.0.1")
            for n, (identity, password) in enumerate(passwords)
        ]
        t1 = time.perf_counter()
        for k in range(CLIENT_PROCESSES):
            process = ctx.Process(
                target=ocpp_clients.client,
                args=(f"ws://127.0.0.1:{port}", entries[k::CLIENT_PROCESSES], connected, go, out),
            )
            process.start()
            clients.append(process)
        up = sum(connected.get(timeout=600) for _ in clients)
        deadline = time.time() + 300
        while Charger.objects.filter(connected=True).count() < up and time.time() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # each connection's greeting (plan, live commands) is done
        connect_seconds = time.perf_counter() - t1
        rss_after = _rss_kb(server.pid)
        lines.append(f"connected: {up:,} of {CHARGERS:,} chargers in {connect_seconds:.1f} s (handshake with password)")
        lines.append(
            f"  server memory: {rss_before / 1024:.0f} MB -> {rss_after / 1024:.0f} MB, "
            f"{(rss_after - rss_before) / max(up, 1):.1f} kB per connection"
        )

        worker = _workers()
        go.set()
        start = timezone.now() + timedelta(seconds=2)
        event = services.create_event(
            resource=resource,
            source="operator_test",
            start=start,
            end=start + timedelta(hours=1),
            notify_at=start,
            target_kw=1_000_000,
            over_commit_pct=0,
            by="bench",
        )
        received: dict[str, float] = {}
        for _ in clients:
            received.update(out.get(timeout=300))
        commands = DeviceCommand.objects.filter(event=event)
        issued = commands.aggregate(first=Min("created_at"), last=Max("created_at"))
        total = commands.count()
        if received and issued["first"]:
            last_received = max(received.values())
            seconds = last_received - issued["first"].timestamp()
            lines.append(
                f"dispatch: {total:,} commands (written {(issued['last'] - issued['first']).total_seconds():.2f} s "
                f"first to last); {len(received):,} profiles received, the last {seconds:.2f} s after the first command"
            )
        else:
            seconds = float("inf")
            lines.append(f"dispatch: {total:,} commands, {len(received):,} profiles received")
        deadline = time.time() + 300
        accepted = 0
        while time.time() < deadline:
            accepted = commands.filter(status="accepted").count()
            if accepted >= total:
                break
            time.sleep(0.25)
        answered_at = time.time()
        answered = answered_at - issued["first"].timestamp() if issued["first"] else float("inf")
        lines.append(
            f"  answers recorded: {accepted:,} of {total:,} accepted, the last {answered:.1f} s after the first command"
        )
        ok = seconds <= TARGET_SECONDS and len(received) == total == up == CHARGERS and accepted == total
        TARGET_FAILED = TARGET_FAILED or not ok
        lines.append(
            f"  target: every profile sent within {TARGET_SECONDS:.0f} s, every answer recorded -> "
            f"{'MET' if ok else 'MISSED'}"
        )
    finally:
        for process in clients:
            process.terminate()
        for process in clients:
            process.join(timeout=10)
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
            from aggregator.celery import app

            app.control.purge()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()
    lines.append(f"  (the server's log: {log_path.relative_to(ROOT)})")
    return lines
