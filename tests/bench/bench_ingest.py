"""Readings through the HTTP API: sustained ingestion (target 100,000 readings/s, and >= 50% of raw COPY) and one site's 45 days back (target 50 ms).

The production web process (deploy/web.py) serves the device API against PostgreSQL; CLIENTS processes on
this same machine each post batches of 5,000 readings with their own gateway
token over a kept-alive connection, for SECONDS. Every batch is new data (inserts).
Then 45 days of 5-minute site readings (12,960 intervals) are read back through
the operator API and through the selector alone. Last, the bare limit: the table emptied, the same
number of clients COPY the very rows the HTTP clients stored straight into the same partitioned
table (tests/bench/copy_clients.py); ingestion's ratio is its rate over theirs.
"""

import http.client
import json
import multiprocessing
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model

from aggregator.core.access.roles import ensure_role_groups, grant
from aggregator.reference import readings as ingest
from aggregator.reference.models import MeterKind
from enrollment import services
from settlement.selectors import readings
from tests.bench import copy_clients, http_clients, web_server
from tests.bench.ratios import Ratio
from tests.factories import DeviceFactory, GatewayFactory, SiteFactory

CLIENTS = int(os.environ.get("BENCH_INGEST_CLIENTS", "4"))
SECONDS = float(os.environ.get("BENCH_INGEST_SECONDS", "20"))
BATCH = http_clients.BATCH
DEVICES_PER_GATEWAY = 50
TARGET_RATE = 100_000
TARGET_READ_MS = 50.0
TARGET_FAILED = False
TARGET_RATIO = 0.5
RATIOS: list[Ratio] = []
EPOCH = http_clients.EPOCH  # where the clients' readings start


def _wal() -> tuple[int, int]:
    """(checkpoints so far, WAL position in bytes) of the server."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.pg_version >= 170000:
            cursor.execute("SELECT num_timed + num_requested FROM pg_stat_checkpointer")
        else:
            cursor.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
        checkpoints = cursor.fetchone()[0]
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
        return checkpoints, cursor.fetchone()[0]


def run() -> list[str]:
    global TARGET_FAILED
    lines = []
    tokens = []
    for _ in range(CLIENTS):
        gateway = GatewayFactory()
        devices = [DeviceFactory(site=gateway.site, gateway=gateway).pk for _ in range(DEVICES_PER_GATEWAY)]
        tokens.append((services.issue_credential(gateway=gateway, by="bench")[1], devices))
    ensure_role_groups()
    analyst = get_user_model().objects.create_user("bench-analyst")
    grant(analyst, "analyst")
    from aggregator.core.access import tokens as token_lib
    from aggregator.core.access.models import OperatorToken

    issued = token_lib.issue("op")
    OperatorToken.objects.create(user=analyst, key_id=issued.key_id, digest=issued.digest)
    # Partitions for the months the clients will write, as the beat task keeps them ahead.
    from aggregator.reference import partitions

    partitions.ensure(first=EPOCH, last=EPOCH + timedelta(days=400))

    port = web_server.free_port()
    server = web_server.start(port)
    try:
        # Fresh interpreters, not forks: an earlier benchmark in this process may hold broker
        # connections and their threads, which a fork would copy mid-lock.
        context = multiprocessing.get_context("spawn")
        go, ready, out = context.Event(), context.Queue(), context.Queue()
        procs = [
            context.Process(target=http_clients.ingester, args=(port, token, devices, i, ready, go, SECONDS, out))
            for i, (token, devices) in enumerate(tokens)
        ]
        for p in procs:
            p.start()
        for _ in procs:  # every client has built its batches
            ready.get(timeout=600)
        wal_before = _wal()
        started = time.perf_counter()
        go.set()
        results = [out.get() for _ in procs]
        elapsed = time.perf_counter() - started
        wal_after = _wal()
        for p in procs:
            p.join()
        inserted = sum(r[0] for r in results)
        batches = sum(r[1] for r in results)
        errors = sum(r[2] for r in results)
        latencies = sorted(x for r in results for x in r[3])
        rate = inserted / elapsed
        lines.append(
            f"ingest (web: {server.shape}): {inserted:,} readings in {batches} batches of {BATCH:,} over {elapsed:.1f} s from {CLIENTS} clients "
            f"= {rate:,.0f} readings/s ({errors} failed batches)"
        )
        lines.append(
            f"  batch latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
            f"WAL {(wal_after[1] - wal_before[1]) / elapsed / 1e6:.0f} MB/s, "
            f"{wal_after[0] - wal_before[0]} checkpoint(s) during the run"
        )

        # One site's 45 days of 5-minute data, back through the operator API.
        site = SiteFactory()
        device = DeviceFactory(site=site)
        end = datetime(2026, 6, 1, tzinfo=UTC)
        start = end - timedelta(days=45)
        batch = [
            {
                "meter": "site",
                "start": (start + timedelta(minutes=5 * i)).isoformat(),
                "interval_seconds": 300,
                "kwh": 0.3 + (i % 12) * 0.01,
            }
            for i in range(45 * 288)
        ]
        meters = ingest.Meters(devices={device.pk: (site.pk, "battery", False)}, default_device=device.pk)
        for chunk in range(0, len(batch), 10_000):
            ingest.ingest(readings=batch[chunk : chunk + 10_000], meters=meters, now=end)
        query = f"/api/v1/sites/{site.pk}/readings/?start={start.isoformat().replace('+', '%2B')}&end={end.isoformat().replace('+', '%2B')}"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        http_ms, sizes = [], set()
        for _ in range(30):
            t = time.perf_counter()
            conn.request("GET", query, headers={"Authorization": f"Bearer {issued.plaintext}"})
            response = conn.getresponse()
            body = response.read()
            http_ms.append((time.perf_counter() - t) * 1000)
            assert response.status == 200, body[:300]
            sizes.add(len(json.loads(body)["start"]))
        selector_ms = []
        for _ in range(30):
            t = time.perf_counter()
            readings(meter_kind=MeterKind.SITE, meter_id=site.pk, start=start, end=end)
            selector_ms.append((time.perf_counter() - t) * 1000)
        read_ms = statistics.median(http_ms)
        lines.append(
            f"read back 45 days of 5-minute site data ({sizes.pop():,} intervals, {len(body) / 1e6:.2f} MB JSON): "
            f"HTTP p50 {read_ms:.1f} ms, p95 {sorted(http_ms)[28]:.1f} ms; selector alone p50 {statistics.median(selector_ms):.1f} ms"
        )
        TARGET_FAILED = rate < TARGET_RATE or read_ms > TARGET_READ_MS
        lines.append(
            f"targets: {TARGET_RATE:,} readings/s -> {'MET' if rate >= TARGET_RATE else 'MISSED'}; "
            f"read under {TARGET_READ_MS:.0f} ms -> {'MET' if read_ms <= TARGET_READ_MS else 'MISSED'}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        errors_logged = web_server.errors(server)
        if errors_logged:
            lines.append(f"server errors: {errors_logged[-3:]}")
    lines.append(_profile(tokens[0][1], skip=max(r[1] for r in results)))
    raw = _raw_copy(tokens, {r[4]: r[1] - r[2] for r in results})
    lines.append(
        f"bare limit: raw COPY of the same {inserted:,} rows into settlement_reading from {CLIENTS} clients "
        f"= {raw:,.0f} rows/s; ingestion is {rate / raw:.0%} of it"
    )
    RATIOS.append(Ratio("ingestion vs raw COPY", rate, raw, "rows/s", target=TARGET_RATIO))
    return lines


def _profile(device_ids: list[int], *, skip: int, batches: int = 20) -> str:
    """Where a batch's server time goes: fresh batches (after the ones the clients sent) through the ingest
    service in this process, JSON decoding included; the HTTP server's own share is the rest."""
    import orjson

    from enrollment.models import Device

    devices = {d.pk: (d.site_id, d.device_type, d.bidirectional) for d in Device.objects.filter(pk__in=device_ids)}
    meters = ingest.Meters(devices=devices, default_device=None)
    totals: dict[str, float] = {}
    for body in http_clients.payloads(device_ids, skip + batches)[skip:]:
        started = time.perf_counter()
        readings_in = orjson.loads(body)["readings"]
        totals["JSON"] = totals.get("JSON", 0.0) + time.perf_counter() - started
        for stage, seconds in ingest.ingest(readings=readings_in, meters=meters).seconds.items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    whole = sum(totals.values())
    shares = ", ".join(
        f"{stage} {seconds / batches * 1000:.1f} ms ({seconds / whole:.0%})" for stage, seconds in totals.items()
    )
    return f"profile of a {BATCH:,}-reading batch in the ingest service ({batches} batches, one thread): {whole / batches * 1000:.1f} ms: {shares}"


def _raw_copy(tokens: list[tuple[str, list[int]]], batches_by_client: dict[int, int]) -> float:
    """Rows/s of CLIENTS processes COPYing the rows each HTTP client stored, into the emptied table."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE settlement_reading")  # the same partitions, empty again as the HTTP run found them
    context = multiprocessing.get_context("spawn")
    go, ready, out = context.Event(), context.Queue(), context.Queue()
    dsn = os.environ["DATABASE_URL"]
    procs = [
        context.Process(target=copy_clients.copier, args=(dsn, devices, batches_by_client.get(i, 0), ready, go, out))
        for i, (_, devices) in enumerate(tokens)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=600)
    started = time.perf_counter()
    go.set()
    copied = [out.get() for _ in procs]
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join()
    return sum(c[0] for c in copied) / elapsed
