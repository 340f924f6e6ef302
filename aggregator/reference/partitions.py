"""Monthly partitions of settlement_reading (UTC months), created ahead and on demand.

A beat task keeps the current month and the next three ready; ingestion creates a
partition for an older month when late or back-filled data needs one. Retention is
by partition: see deploy/README.md.
"""

from datetime import UTC, datetime

from django.db import connection

PARENT = "settlement_reading"
# Partitions this process has seen. Retention may drop one while it runs: the write that
# then finds no partition forgets this and creates it again (readings._write).
_known: set[str] = set()


def _month_start(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return datetime(value.year, value.month, 1, tzinfo=UTC)


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def name_for(month: datetime) -> str:
    return f"{PARENT}_p{month:%Y%m}"


def ensure(*, first: datetime, last: datetime) -> list[str]:
    """Make sure a partition exists for every UTC month from `first` to `last`; returns those created."""
    month, end = _month_start(first), _month_start(last)
    wanted = []
    while month <= end:
        wanted.append(month)
        month = _next_month(month)
    missing = [m for m in wanted if name_for(m) not in _known]
    if not missing:
        return []
    created = []
    with connection.cursor() as cursor:
        # Two writers creating the same partition at once would collide in the catalog
        # (CREATE TABLE IF NOT EXISTS is not safe against a concurrent create): take turns.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [PARENT])
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [PARENT],
        )
        _known.update(name for (name,) in cursor.fetchall())
        for month in missing:
            name = name_for(month)
            if name in _known:
                continue
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {PARENT} FOR VALUES FROM (%s) TO (%s)",
                [month, _next_month(month)],
            )
            _known.add(name)
            created.append(name)
    return created


def ensure_ahead(*, now: datetime, months: int = 3) -> list[str]:
    last = _month_start(now)
    for _ in range(months):
        last = _next_month(last)
    return ensure(first=now, last=last)


def forget() -> None:
    """Drop the process cache (tests that recreate the database)."""
    _known.clear()
