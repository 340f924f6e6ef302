"""Ingestion's bare limit: raw COPY of the same rows into the same partitioned table, run in spawned processes.

Each client copies the very rows one HTTP client stored (the same devices, stamps and values, batch by batch,
a transaction each) straight into settlement_reading: no HTTP, no JSON, no validation, no staging table, no
merge. What is left is what PostgreSQL itself costs on this machine.
"""

import time
from datetime import UTC, datetime, timedelta

import psycopg

from tests.bench.http_clients import BATCH, EPOCH

COLUMNS = "meter_kind, meter_id, start, interval_seconds, kwh, quality, received_at, revision"


def rows(device_ids: list[int], count: int) -> list[str]:
    """`count` batches as COPY text: http_clients.payloads' readings, as the device API stores them."""
    per_device = BATCH // len(device_ids)
    now = datetime.now(UTC).isoformat()
    batches = []
    for step in range(count):
        base = EPOCH + timedelta(minutes=5 * per_device * step)
        stamps = [(base + timedelta(minutes=5 * k)).isoformat() for k in range(per_device)]
        batches.append(
            "".join(
                f"2\t{d}\t{stamps[k]}\t300\t{0.25 + (k % 7) * 0.01:.6f}\t1\t{now}\t1\n"
                for d in device_ids
                for k in range(per_device)
            )
        )
    return batches


def copier(dsn: str, device_ids: list[int], batches: int, ready, go, out) -> None:
    data = rows(device_ids, batches)
    with psycopg.connect(dsn) as conn:
        ready.put(len(data))
        go.wait()
        started = time.perf_counter()
        copied = 0
        for text in data:
            with conn.transaction(), conn.cursor() as cursor:
                with cursor.copy(f"COPY settlement_reading ({COLUMNS}) FROM STDIN") as copy:
                    copy.write(text)
                copied += cursor.rowcount
        out.put((copied, time.perf_counter() - started))
