"""Telemetry read-back: one site's month of 15-minute readings from a full month's partition (target: under 50 ms).

Setup (not timed): a past UTC month's partition of settlement_reading filled with BENCH_READBACK_METERS site
meters (2,000; `make bench-million` uses 20,000) reporting every 15 minutes for the whole month, written in
time order (every meter's interval, then the next interval), as ingestion writes them: a meter's readings are
spread over as many heap pages as it has readings. Then `VACUUM (ANALYZE)`, as autovacuum leaves a month
that is no longer written.

Timed: `settlement.selectors.readings_json` (what GET /api/v1/sites/{id}/readings runs) for one meter over the
month, for BENCH_READBACK_SAMPLES meters, warm (read twice, the second timed) and cold (each a meter not read
before, after the operating system's page cache is dropped: needs root, else skipped). The plan of one read
(EXPLAIN ANALYZE BUFFERS) says what dominates: an index-only scan of the primary key (which carries the
reading's columns) reads a few leaf pages; a plain index scan would read one heap page per reading.

Printed for the storage plan: bytes per reading on disk (heap and index) and what a month is at a million
meters every 15 minutes.
"""

import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from django.db import connection

from aggregator.reference import partitions
from settlement import selectors

METERS = int(os.environ.get("BENCH_READBACK_METERS", "2000"))
SAMPLES = int(os.environ.get("BENCH_READBACK_SAMPLES", "20"))
INTERVAL_SECONDS = 900
TARGET_MS = 50.0
TARGET_FAILED = False
METER_OFFSET = 900_000_000  # meter ids no other benchmark's site has


def _month() -> tuple[datetime, datetime]:
    """The last full UTC month before this one."""
    first_of_this = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (first_of_this - timedelta(days=1)).replace(day=1)
    return start, first_of_this


def _fill(start: datetime, end: datetime) -> tuple[str, int, float]:
    (name,) = partitions.ensure(first=start, last=start) or [partitions.name_for(start)]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {name}")
        # Time-major order, as the fleet reports: each interval's readings of every meter, then the next interval.
        cursor.execute(
            f"""INSERT INTO {name} (meter_kind, meter_id, start, interval_seconds, kwh, quality, received_at, revision)
                SELECT 1, %(offset)s + m, t, %(interval)s,
                       round((0.2 + (m %% 13) * 0.02 + 0.1 * sin(extract(epoch FROM t) / 86400 * 2 * pi()))::numeric, 6),
                       1, t + interval '20 minutes', 1
                FROM generate_series(%(start)s, %(last)s, %(step)s) t CROSS JOIN LATERAL generate_series(1, %(meters)s) m""",
            {
                "offset": METER_OFFSET,
                "interval": INTERVAL_SECONDS,
                "start": start,
                "last": end - timedelta(seconds=INTERVAL_SECONDS),
                "step": timedelta(seconds=INTERVAL_SECONDS),
                "meters": METERS,
            },
        )
        rows = cursor.rowcount
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {name}")
    return name, rows, seconds


def _drop_os_cache() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def _read_ms(meter: int, start: datetime, end: datetime) -> tuple[float, int]:
    started = time.perf_counter()
    body = selectors.readings_json(meter_kind=1, meter_id=meter, start=start, end=end)
    return (time.perf_counter() - started) * 1000, body.count("actual")


def _plan(meter: int, start: datetime, end: datetime) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT start, interval_seconds, kwh, quality, revision "
            "FROM settlement_reading WHERE meter_kind = 1 AND meter_id = %s AND start >= %s AND start < %s ORDER BY start",
            [meter, start, end],
        )
        plan = cursor.fetchone()[0][0]["Plan"]
    while plan.get("Plans") and plan["Node Type"] in ("Append", "Sort", "Result"):
        plan = plan["Plans"][0]
    fetches = plan.get("Heap Fetches")
    return (
        f"{plan['Node Type']} on {plan.get('Relation Name') or plan.get('Index Name')}, "
        f"{plan.get('Shared Hit Blocks', 0) + plan.get('Shared Read Blocks', 0)} pages "
        f"({plan.get('Shared Read Blocks', 0)} read from outside the buffer cache)"
        + (f", {fetches} heap fetches" if fetches is not None else "")
    )


def _figures(label: str, times: list[float]) -> str:
    times = sorted(times)
    return (
        f"{label}: median {statistics.median(times):.1f} ms, p95 {times[int(len(times) * 0.95) - 1]:.1f} ms, "
        f"max {times[-1]:.1f} ms over {len(times)} meters"
    )


def _compact(name: str, rows: int, start: datetime, end: datetime, meters: list[int]) -> list[str]:
    """The closed month's step of the retention plan: its key rebuilt without the page splits that time-ordered
    inserts across meters leave (online: REINDEX CONCURRENTLY), then its size and a cold read again."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass AND indisprimary", [name]
        )
        (key,) = cursor.fetchone()
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [key])
        before = cursor.fetchone()[0]
        started = time.perf_counter()
        cursor.execute(f"REINDEX INDEX CONCURRENTLY {key}")
        seconds = time.perf_counter() - started
        cursor.execute("SELECT pg_relation_size(%s::regclass), pg_total_relation_size(%s::regclass)", [key, name])
        after, total = cursor.fetchone()
    lines = [
        (
            f"closed month, key rebuilt online (REINDEX CONCURRENTLY) in {seconds:.1f} s ({rows / seconds:,.0f} readings/s): "
            f"key {before / rows:.0f} -> {after / rows:.0f} B a reading; the month {total / rows:.0f} B a reading, "
            f"~{1_000_000 * 96 * 30.44 * total / rows / 1e9:,.0f} GB at a million meters every 15 minutes"
        )
    ]
    if _drop_os_cache():
        cold = []
        for meter in meters[: SAMPLES // 2]:
            _drop_os_cache()
            cold.append(_read_ms(meter, start, end)[0])
        lines.append("  " + _figures("cold read after it", cold))
    return lines


def run() -> list[str]:
    global TARGET_FAILED
    start, end = _month()
    name, rows, seconds = _fill(start, end)
    per_meter = rows // METERS
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass), pg_total_relation_size(%s::regclass)",
            [name, name, name],
        )
        heap, indexes, total = cursor.fetchone()
    lines = [
        (
            f"setup: {name}, {METERS:,} meters x {per_meter:,} readings (15 min, {start:%B %Y}) = {rows:,} rows in "
            f"{seconds:.1f} s ({rows / seconds:,.0f} rows/s; not timed)"
        ),
        f"on disk: {total / 1e9:.2f} GB ({heap / rows:.0f} B a reading in the heap, {indexes / rows:.0f} B in its indexes)",
    ]
    month_rows = 1_000_000 * 96 * 30.44
    lines.append(
        f"a month at 1,000,000 meters every 15 minutes: {month_rows / 1e9:.2f} billion readings, "
        f"~{month_rows * total / rows / 1e9:,.0f} GB; at 5 minutes ~{3 * month_rows * total / rows / 1e9:,.0f} GB"
    )
    meters = random.Random(7).sample(range(METER_OFFSET + 1, METER_OFFSET + METERS + 1), 2 * SAMPLES)
    warm = []
    for meter in meters[:SAMPLES]:
        _read_ms(meter, start, end)
        ms, count = _read_ms(meter, start, end)
        assert count == per_meter, (meter, count, per_meter)
        warm.append(ms)
    lines.append(_figures(f"one meter's month ({per_meter:,} readings as JSON), warm", warm))
    lines.append(f"  plan: {_plan(meters[0], start, end)}")
    worst = max(warm)
    cold = []
    for meter in meters[SAMPLES:]:
        if not _drop_os_cache():
            lines.append("cold: not measured (dropping the page cache needs root)")
            break
        ms, count = _read_ms(meter, start, end)
        assert count == per_meter
        cold.append(ms)
    if cold:
        lines.append(_figures("cold (each after the page cache is dropped, a meter not read before)", cold))
        _drop_os_cache()
        lines.append(f"  plan, cold: {_plan(meters[-1] - 1, start, end)}")
        worst = max(worst, statistics.median(cold))
    lines += _compact(name, rows, start, end, meters)
    ok = worst < TARGET_MS
    TARGET_FAILED = not ok
    lines.append(
        f"target: one site's month under {TARGET_MS:.0f} ms (slowest warm read, median cold read) -> {'MET' if ok else 'MISSED'}"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {name}")
    return lines
