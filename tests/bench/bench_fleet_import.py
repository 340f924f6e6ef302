"""Fleet CSV import: 100,000 devices over 1,000 pricing nodes (target: under 60 s on PostgreSQL; a million over 10,000 under 5 minutes).

Times the whole import path an operator's upload takes (decode, parse and validate
every row, COPY into staging, conflict checks, set-based upserts, commit), then a
re-import of the same file (every row checked, nothing changes).
"""

import os
import time

from django.db import connection

from aggregator.demo.fleet import fleet_csv
from enrollment.fleet_import import import_fleet
from enrollment.models import Customer, Device, Site

DEVICES = int(os.environ.get("BENCH_FLEET_DEVICES", "100000"))
NODES_PER_MARKET = max(DEVICES // 200, 1)  # two markets: a pricing node per 100 devices
# Issue targets: 100,000 devices in under a minute, a million (10,000 nodes) in under five.
TARGET_SECONDS = 60.0 if DEVICES <= 100_000 else 300.0
TARGET_FAILED = False


def _phases(report) -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in report.seconds.items())


def run() -> list[str]:
    global TARGET_FAILED
    t0 = time.perf_counter()
    data = fleet_csv(
        customers=DEVICES, devices=DEVICES, markets=("CAISO", "PJM"), nodes_per_market=NODES_PER_MARKET, prefix="BENCH"
    ).encode()
    lines = [
        f"generated {DEVICES:,} rows, {len(data) / 1e6:.1f} MB of CSV in {time.perf_counter() - t0:.1f} s (not timed)"
    ]

    started = time.perf_counter()
    report = import_fleet(source=data)
    first = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"bench import failed: {report.errors[:5]}")
    sites = Site.objects.filter(customer__external_ref__startswith="BENCH-")
    lines.append(
        f"first import: {first:.2f} s for {Device.objects.filter(serial__startswith='BENCHS').count():,} devices, "
        f"{sites.count():,} sites, {Customer.objects.filter(external_ref__startswith='BENCH-').count():,} customers over "
        f"{sites.values('pricing_node').distinct().count()} pricing nodes = {DEVICES / first:,.0f} rows/s"
    )
    lines.append(f"  phases: {_phases(report)}")

    started = time.perf_counter()
    again = import_fleet(source=data)
    second = time.perf_counter() - started
    lines.append(f"re-import (no changes): {second:.2f} s; created {again.created}, updated {again.updated}")
    lines.append(f"  phases: {_phases(again)}")

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('enrollment_device'))")
        lines.append(f"enrollment_device on disk: {cursor.fetchone()[0]}")
    TARGET_FAILED = first > TARGET_SECONDS
    lines.append(f"target: first import under {TARGET_SECONDS:.0f} s -> {'MET' if not TARGET_FAILED else 'MISSED'}")
    return lines
