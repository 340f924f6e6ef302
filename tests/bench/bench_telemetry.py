"""Telemetry to the market: 100,000 devices' heartbeats in 1,000 resources scanned every 10 s (target: under 20% of one core, i.e. under 2 s of CPU per scan).

Setup (not timed): 100,000 devices (one per site) written set-based, 1,000 registered PJM resources of 100
members each, a heartbeat status per device; PJM scans every 10 s. Devices report every 60 s.

Timed: the scan (aggregator.market.telemetry.scan, what the stream_telemetry process runs at each grid instant)
at every 10-second instant for BENCH_TELEMETRY_SECONDS (150). Meanwhile a second connection plays the fleet's
heartbeats, as the device API leaves them (one DeviceStatus upsert each): every second a sixtieth of the devices
report, except a share that falls silent during the run (their resources go poor) and some that island. The
CPU a scan costs is the Python process's (the scanning thread's time.thread_time; time.process_time over the run
is printed too, with the heartbeat thread's share) plus
the PostgreSQL backend's that ran it (utime + stime of /proc/<pg_backend_pid()>/stat, before and after).
"""

import os
import threading
import time

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone

from aggregator.market import telemetry
from aggregator.market.models import TelemetrySample
from aggregator.market.scan_grid import next_grid_instant
from aggregator.reference.models import Market, Program

DEVICES = int(os.environ.get("BENCH_TELEMETRY_DEVICES", "100000"))
RESOURCES = 1_000
SCAN_SECONDS = 10
RUN_SECONDS = float(os.environ.get("BENCH_TELEMETRY_SECONDS", "150"))
REPORT_SECONDS = 60
# Devices that fall silent: 30 % of the members of about a tenth of the resources (those resources go poor).
SILENT = "(d.id / 100) %% 10 = 0 AND d.id %% 10 < 3"
TARGET_CORE_SHARE = 0.20
TARGET_FAILED = False
TICK = os.sysconf("SC_CLK_TCK")


def _setup() -> Market:
    market = Market.objects.get(code="PJM")
    Market.objects.filter(pk=market.pk).update(telemetry_scan_seconds=SCAN_SECONDS, telemetry_min_reporting_pct=75)
    program = Program.objects.create(
        market=market, code="bench-telemetry", name="Bench telemetry", service="energy", terms_version="1"
    )
    per = DEVICES // RESOURCES
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO enrollment_customer (external_ref, name, kind, contact_name, email, phone, created_at,
                                             updated_at)
            SELECT 'TEL-' || i, 'Customer ' || i, 'residential', '', '', '', now(), now()
            FROM generate_series(1, %(n)s) i
            """,
            {"n": DEVICES},
        )
        cursor.execute(
            """
            INSERT INTO enrollment_site (name, utility, meter_id, load_serving_entity, retail_tariff, pricing_node,
                                         zone, time_zone, address, city, region, postal_code, country, created_at,
                                         updated_at, customer_id, market_id)
            SELECT 'Home', 'PECO', 'TELM' || c.id, '', '', 'PECO_N' || (c.id %% 50), 'PECO', 'America/New_York',
                   '', '', '', '', 'US', now(), now(), c.id, %(market)s
            FROM enrollment_customer c WHERE c.external_ref LIKE 'TEL-%%'
            """,
            {"market": market.pk},
        )
        cursor.execute(
            """
            INSERT INTO enrollment_device (device_type, manufacturer, model, serial, rated_kw, bidirectional,
                                           telemetry_interval_seconds, communication_path, created_at, updated_at,
                                           site_id, charge_kw, energy_kwh, backup_reserve_pct)
            SELECT 'battery', 'Acme', 'B1', 'TELS' || s.id, 5, true, %(every)s, 'native_api', now(), now(), s.id, 5, 13.5, 20
            FROM enrollment_site s WHERE s.meter_id LIKE 'TELM%%'
            """,
            {"every": REPORT_SECONDS},
        )
        cursor.execute(
            """
            INSERT INTO aggregator_virtualresource (name, market_id, program_id, participation_model, scope_kind,
                                                    scope, state, market_resource_id, created_at, updated_at)
            SELECT 'tel-' || i, %(market)s, %(program)s, 'energy', 'zone', 'PECO', 'registered', 'PJM-TEL-' || i,
                   now(), now()
            FROM generate_series(1, %(n)s) i
            """,
            {"market": market.pk, "program": program.pk, "n": RESOURCES},
        )
        cursor.execute(
            """
            INSERT INTO aggregator_resourcemembership (resource_id, device_id, joined_at)
            SELECT r.id, d.id, now() - interval '1 day'
            FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM enrollment_device
                  WHERE serial LIKE 'TELS%%') d
            JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM aggregator_virtualresource
                  WHERE name LIKE 'tel-%%') r ON r.n = d.n / %(per)s
            """,
            {"per": per},
        )
        cursor.execute(
            f"""
            INSERT INTO enrollment_devicestatus (device_id, online, last_seen_at, power_kw, mode, firmware,
                                                 grid_status, updated_at)
            SELECT d.id, true,
                   now() - make_interval(secs => CASE WHEN {SILENT} THEN 100 ELSE d.id %% %(every)s END),
                   ((d.id %% 13) - 6) * 0.5, '', '', 'grid_connected', now()
            FROM enrollment_device d WHERE d.serial LIKE 'TELS%%'
            """,
            {"every": REPORT_SECONDS},
        )
        cursor.execute("VACUUM ANALYZE")
    market.refresh_from_db()
    return market


class Heartbeats(threading.Thread):
    """The fleet reporting: each second, the devices whose id falls in this second of the minute update their
    status on a connection of their own; the SILENT ones never do (they go stale 20 s into the run), and
    those with id % 97 == 0 report themselves islanded."""

    def __init__(self, stop: threading.Event):
        super().__init__(daemon=True)
        self.stop = stop
        self.beats = 0
        self.cpu = 0.0
        self.started = time.monotonic()

    def run(self) -> None:
        url = settings.DATABASES["default"]
        dsn = f"host={url['HOST']} port={url['PORT']} dbname={url['NAME']} user={url['USER']}"
        with psycopg.connect(dsn, autocommit=True, password=url.get("PASSWORD") or None) as conn:
            second = 0
            while not self.stop.wait(max(0.0, self.started + second + 1 - time.monotonic())):
                second += 1
                begun = time.thread_time()
                cur = conn.execute(
                    f"""
                    UPDATE enrollment_devicestatus st
                    SET last_seen_at = now(), online = true, power_kw = ((d.id + %(s)s) %% 13 - 6) * 0.5,
                        grid_status = CASE WHEN d.id %% 97 = 0 THEN 'islanded' ELSE 'grid_connected' END,
                        updated_at = now()
                    FROM enrollment_device d
                    WHERE d.id = st.device_id AND d.id %% %(every)s = %(s)s %% %(every)s AND NOT ({SILENT})
                    """,
                    {"s": second, "every": REPORT_SECONDS},
                )
                self.beats += cur.rowcount
                self.cpu += time.thread_time() - begun


def _backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of the whole line)


def _plan(market: Market) -> list[str]:
    """EXPLAIN ANALYZE of the scan's statement at an instant already scanned (the aggregate runs, nothing is
    written), rolled back."""
    at = TelemetrySample.objects.order_by("-at").values_list("at", flat=True).first()
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON) " + telemetry._SCAN_SQL,
            {
                "market": market.pk,
                "at": at,
                "scan": SCAN_SECONDS,
                "min_pct": market.telemetry_min_reporting_pct,
                "states": list(telemetry.STREAMED_STATES),
            },
        )
        lines = [row[0] for row in cursor.fetchall()]
        cursor.execute("ROLLBACK")
    return lines


def run() -> list[str]:
    global TARGET_FAILED
    started = time.perf_counter()
    market = _setup()
    lines = [
        (
            f"setup: {DEVICES:,} devices in {RESOURCES:,} registered resources, heartbeat statuses, in "
            f"{time.perf_counter() - started:.1f} s (not timed)"
        )
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_setting('jit')")
        backend, jit = cursor.fetchone()

    stop = threading.Event()
    fleet = Heartbeats(stop)
    fleet.start()
    process0 = time.process_time()
    walls, python_cpu, backend_cpu, samples = [], [], [], []
    qualities: dict[str, int] = {}
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        due = next_grid_instant(timezone.now(), SCAN_SECONDS)
        time.sleep(max(0.0, (due - timezone.now()).total_seconds()))
        cpu0, pg0, wall0 = time.thread_time(), _backend_cpu(backend), time.perf_counter()
        result = telemetry.scan(market=market, at=timezone.now())
        walls.append(time.perf_counter() - wall0)
        python_cpu.append(time.thread_time() - cpu0)
        backend_cpu.append(_backend_cpu(backend) - pg0)
        samples.append(result.samples)
        for quality in TelemetrySample.objects.filter(at=result.at).values_list("quality", flat=True):
            qualities[quality] = qualities.get(quality, 0) + 1
    stop.set()
    fleet.join(timeout=10)
    process_cpu = time.process_time() - process0

    scans = len(walls)
    per_scan_cpu = (sum(python_cpu) + sum(backend_cpu)) / scans
    share = per_scan_cpu / SCAN_SECONDS
    lines.append(
        f"{scans} scans every {SCAN_SECONDS} s over {RUN_SECONDS:.0f} s, {sum(samples):,} samples "
        f"({min(samples)}-{max(samples)} a scan); qualities over the run: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(qualities.items()))
    )
    lines.append(
        f"heartbeats played meanwhile: {fleet.beats:,} ({fleet.beats / RUN_SECONDS:,.0f}/s, on their own "
        "connection; not counted below)"
    )
    lines.append(
        f"Python process CPU over the run: {process_cpu:.2f} s, of which the heartbeat thread {fleet.cpu:.2f} s "
        f"and the scans {sum(python_cpu):.2f} s (each scan's own thread CPU, time.thread_time)"
    )
    lines.append(
        f"wall per scan: median {sorted(walls)[scans // 2] * 1000:.0f} ms, max {max(walls) * 1000:.0f} ms "
        f"(first {walls[0] * 1000:.0f} ms)"
    )
    lines.append(
        f"CPU per scan: PostgreSQL backend {sum(backend_cpu) / scans * 1000:.0f} ms + Python "
        f"{sum(python_cpu) / scans * 1000:.0f} ms = {per_scan_cpu * 1000:.0f} ms "
        f"-> {share * 100:.1f}% of one core at one scan per {SCAN_SECONDS} s (jit={jit}; /proc ticks are 10 ms)"
    )
    backend_share = sum(backend_cpu) / max(sum(backend_cpu) + sum(python_cpu), 1e-9)
    lines.append(
        f"dominant: the PostgreSQL backend ({backend_share * 100:.0f}% of the scan's CPU): three hash joins over the "
        "members, their devices and their statuses and one hash aggregate; Python only sends the statement"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size('market_telemetrysample'), count(*) FROM market_telemetrysample")
        size, rows = cursor.fetchone()
    lines.append(f"storage: {size / rows:.0f} bytes per sample with its indexes ({rows:,} samples)")
    plan = _plan(market)
    lines.append("plan of the scan statement (EXPLAIN ANALYZE, an instant already claimed):")
    lines.extend(f"  {line}" for line in plan if any(k in line for k in ("Hash", "Scan", "Aggregate", "Time", "JIT")))
    TARGET_FAILED = share >= TARGET_CORE_SHARE
    lines.append(
        f"target: under {TARGET_CORE_SHARE * 100:.0f}% of one core -> {'MISSED' if TARGET_FAILED else 'MET'} "
        "(2 shared cores: wall times include contention with the heartbeat writer and other work on the machine)"
    )
    return lines
