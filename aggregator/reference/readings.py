"""Interval readings in: validation, COPY into staging, one set-based upsert.

A reading is energy over an interval [start, start + interval_seconds) at one meter:
the site's revenue meter (`"meter": "site"`) or a device's own meter (`"meter": "device"`).
Send `kwh` (energy over the interval) or `kw` (average power over it; stored as
kW x hours). Sign convention: positive is import from the grid / consumption,
negative is export / generation. `start` must carry its UTC offset, so DST days
need nothing special: a 23-hour day has 276 five-minute intervals, a 25-hour day 300.

All or nothing: a batch with any bad reading is refused whole, every problem named by
its index and field. Problems are found in two stages: first the shape and values of
each reading, then (only for a batch that passed) the timestamps against the clock and
each other; a batch with both kinds hears of the first kind first. Resending a batch changes nothing; a different value for an
interval already stored replaces it, bumps its revision and keeps the old value in
settlement_readingrevision. Out-of-order and late data are normal, back to a look-back
from now (DEVICE_READINGS_LOOK_BACK_DAYS; operator meter-data imports have none).
"""

import bisect
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction

from aggregator.core.errors import DomainError, Problem
from aggregator.reference import partitions
from aggregator.reference.models import Quality

MAX_BATCH = 10_000
INTERVALS = frozenset({60, 300, 900, 1800, 3600})
QUALITIES = {"actual": Quality.ACTUAL, "estimated": Quality.ESTIMATED, "missing": Quality.MISSING}
FIELDS = frozenset({"meter", "device", "start", "interval_seconds", "kwh", "kw", "quality"})
SITE_FIELDS = frozenset({"site", "start", "interval_seconds", "kwh", "kw", "quality"})
CLOCK_SKEW = timedelta(minutes=5)
MAX_ABS_KWH = 1e7  # inside numeric(14,6); far beyond any behind-the-meter interval
# Device types that only consume: a negative reading at their own meter is impossible.
CONSUMPTION_ONLY = frozenset({"thermostat", "water_heater", "controllable_load"})

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS reading_stage (
    idx integer, meter_kind smallint, meter_id bigint, start timestamptz, interval_seconds integer,
    value numeric, is_kw boolean, quality smallint
) ON COMMIT DELETE ROWS;
{empty} reading_stage
"""
_STAGE_COLUMNS = "idx, meter_kind, meter_id, start, interval_seconds, value, is_kw, quality"


# The ISO 8601 forms both Python and PostgreSQL read the same way; the offset is checked apart.
_ISO = re.compile(
    r"(?:19|[2-9]\d)\d\d-\d\d-\d\d[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?"
    r"(?P<offset>[Zz]|[+-](?:0\d|1[0-5])(?::?[0-5]\d)?)?\Z"
)


@dataclass(frozen=True)
class Meters:
    """What the caller may write: its devices (id -> (site id, type, bidirectional))."""

    devices: dict[int, tuple[int, str, bool]]
    default_device: int | None  # a device token's own device; None for a gateway

    @property
    def sites(self) -> set[int]:
        return {site for site, _, _ in self.devices.values()}


@dataclass
class IngestResult:
    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "received": self.received,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
        }


class BatchRejected(DomainError):
    status = 400


def _number(value) -> bool:
    return (type(value) is int or type(value) is float) and value == value and abs(value) <= MAX_ABS_KWH


def _reading(idx: int) -> str:
    return f"readings[{idx}]"


def parse(readings, *, meters: Meters, label=_reading, sites: frozenset[int] | None = None) -> tuple[list[str], int]:
    """COPY lines for a batch (types, ownership and values checked here; timestamps in SQL),
    or BatchRejected naming every problem by index and field.

    With `sites` (operator imports), readings name a site meter by `"site": <id>` instead.
    """
    if not isinstance(readings, list):
        raise BatchRejected(Problem("invalid", "readings must be a list.", "readings"))
    if not readings:
        raise BatchRejected(Problem("empty", "readings is empty.", "readings"))
    if len(readings) > MAX_BATCH:
        raise BatchRejected(
            Problem("too_large", f"At most {MAX_BATCH} readings per batch, not {len(readings)}.", "readings")
        )
    problems: list[Problem] = []
    lines: list[str] = []
    append = lines.append
    devices, default = meters.devices, meters.default_device
    fields = FIELDS if sites is None else SITE_FIELDS
    intervals, qualities, iso = INTERVALS, QUALITIES, _ISO.match
    good_starts: set[str] = set()
    for i, r in enumerate(readings):
        if type(r) is not dict:
            problems.append(Problem("invalid", "Each reading is an object.", f"{label(i)}"))
            continue
        if not fields.issuperset(r):
            extra = sorted(set(r) - fields)
            problems.append(
                Problem("unknown_field", f"Unknown field(s): {', '.join(map(str, extra))}.", f"{label(i)}.{extra[0]}")
            )
        if sites is not None:
            site = r.get("site")
            if type(site) is not int or site not in sites:
                problems.append(Problem("unknown_meter", "No such site meter.", f"{label(i)}.site"))
                continue
            device, meta = None, (site, "", False)
        else:
            device = r.get("device", default)
            meta = devices.get(device) if type(device) is int else None
        if meta is None:
            problems.append(
                Problem(
                    "unknown_meter",
                    f"Device {device!r} is not yours."
                    if device is not None
                    else "Name the device (gateway tokens speak for several).",
                    f"{label(i)}.device",
                )
            )
            continue
        meter = "site" if sites is not None else r.get("meter", "device")
        if meter == "device":
            kind, meter_id = 2, device
        elif meter == "site":
            kind, meter_id = 1, meta[0]
        else:
            problems.append(Problem("unknown_meter", "meter is 'site' or 'device'.", f"{label(i)}.meter"))
            continue
        start = r.get("start")
        if type(start) is not str or start not in good_starts:  # a gateway's devices share their starts
            shape = iso(start) if type(start) is str else None
            if shape is None:
                problems.append(
                    Problem(
                        "invalid_timestamp",
                        "start must be an ISO 8601 date and time like "
                        f"2026-07-15T14:00:00-04:00 (from 1900), not {start!r}.",
                        f"{label(i)}.start",
                    )
                )
                continue
            if shape.group("offset") is None:
                problems.append(
                    Problem("naive_timestamp", "start needs its UTC offset (e.g. -04:00 or Z).", f"{label(i)}.start")
                )
                continue
            good_starts.add(start)
        interval = r.get("interval_seconds")
        if type(interval) is not int or interval not in intervals:
            problems.append(
                Problem(
                    "invalid_interval",
                    f"interval_seconds is one of {sorted(intervals)}.",
                    f"{label(i)}.interval_seconds",
                )
            )
            continue
        quality = r.get("quality", "actual")
        quality = qualities.get(quality) if type(quality) is str else None
        if quality is None:
            problems.append(
                Problem("invalid_choice", f"quality is one of {', '.join(qualities)}.", f"{label(i)}.quality")
            )
            continue
        kw = r.get("kw")
        value = r.get("kwh") if kw is None else kw
        if kw is not None and r.get("kwh") is not None:
            problems.append(Problem("ambiguous_value", "Send kwh or kw, not both.", f"{label(i)}.kwh"))
            continue
        if value is None:
            if quality != Quality.MISSING:
                problems.append(
                    Problem("required", "kwh (or kw) is required unless quality is missing.", f"{label(i)}.kwh")
                )
                continue
            append(f"{i}\t{kind}\t{meter_id}\t{start}\t{interval}\t\\N\tf\t{quality}\n")
            continue
        name = "kwh" if kw is None else "kw"
        vtype = type(value)
        if (vtype is not float and vtype is not int) or not -MAX_ABS_KWH <= value <= MAX_ABS_KWH:
            problems.append(Problem("not_a_number", f"{name} must be a finite number.", f"{label(i)}.{name}"))
            continue
        if value < 0 and kind == 2 and meta[1] in CONSUMPTION_ONLY:
            problems.append(
                Problem(
                    "negative_consumption",
                    f"A {meta[1]} only consumes; its meter cannot read below zero.",
                    f"{label(i)}.{name}",
                )
            )
            continue
        append(f"{i}\t{kind}\t{meter_id}\t{start}\t{interval}\t{value!r}\t{'f' if kw is None else 't'}\t{quality}\n")
    if problems:
        raise BatchRejected(problems[:200])
    return lines, len(lines)


# Timestamps parsed by COPY; here: not in the future, not before the look-back, and no two
# readings of the batch overlapping at one meter.
_TIME_PROBLEMS = """
SELECT idx, CASE WHEN stop > %(latest)s THEN 'future_timestamp' WHEN start < %(earliest)s THEN 'too_old'
                 WHEN start = prev_start AND stop = prev_stop THEN 'duplicate_interval' ELSE 'overlapping_interval' END,
       prev_idx
FROM (
    SELECT idx, start, stop, lag(idx) OVER m AS prev_idx, lag(start) OVER m AS prev_start, lag(stop) OVER m AS prev_stop
    FROM (SELECT idx, meter_kind, meter_id, start, start + interval_seconds * interval '1 second' AS stop FROM reading_stage) s
    WINDOW m AS (PARTITION BY meter_kind, meter_id ORDER BY start, idx)
) w
WHERE stop > %(latest)s OR start < %(earliest)s OR prev_stop > start
ORDER BY 1 LIMIT 200
"""
_BOUNDS = "SELECT min(start), max(start + make_interval(secs => interval_seconds)) FROM reading_stage"
_MESSAGES = {
    "invalid_timestamp": "start must be an ISO 8601 timestamp.",
    "naive_timestamp": "start needs its UTC offset (e.g. -04:00 or Z).",
    "future_timestamp": "The interval has not ended yet: start is too late.",
}


def _time_problems(cursor, *, latest: datetime, earliest: datetime | None, label=_reading) -> list[Problem]:
    cursor.execute(_TIME_PROBLEMS, {"latest": latest, "earliest": earliest})
    messages = dict(_MESSAGES)
    if earliest is not None:
        messages["too_old"] = (
            f"start is before {earliest:%Y-%m-%d %H:%M} UTC, the oldest a device may send; "
            "older data comes in through an operator's meter-data import."
        )
    return [
        Problem(code, messages.get(code) or f"Overlaps {label(other)} at the same meter.", f"{label(idx)}.start")
        for idx, code, other in cursor.fetchall()
    ]


def device_earliest(now: datetime) -> datetime:
    """The oldest start a device may send: settings.DEVICE_READINGS_LOOK_BACK_DAYS before now.

    Each month written is a partition, created on demand; without a bound one request
    dated 1900 and today would create some 1,400 of them.
    """
    return now - timedelta(days=settings.DEVICE_READINGS_LOOK_BACK_DAYS)


def _unreadable_timestamps(starts, label=_reading) -> list[Problem]:
    """After COPY refused a batch: which starts are not dates and times (rare, so in Python)."""
    problems = []
    for idx, start in starts:
        try:
            datetime.fromisoformat(start)
        except (TypeError, ValueError):
            problems.append(Problem("invalid_timestamp", f"{start!r} is not a date and time.", f"{label(idx)}.start"))
    return problems or [Problem("invalid_timestamp", "A start could not be read as a date and time.", "readings")]


# Writers of one meter take turns from here to their commit (see ReadingMeter), so the
# check below sees every batch that went before. A new meter's row is inserted, a known
# one locked and left as it is (DO UPDATE ... WHERE false locks without writing); in
# meter order, so two batches of the same meters cannot deadlock.
_LOCK_METERS = """
INSERT INTO settlement_readingmeter AS m (meter_kind, meter_id)
SELECT DISTINCT meter_kind, meter_id FROM reading_stage ORDER BY 1, 2
ON CONFLICT (meter_kind, meter_id) DO UPDATE SET meter_id = EXCLUDED.meter_id WHERE false
"""


# One pass over the stored readings in the batch's window at the batch's meters (range
# scans; the constant window lets PostgreSQL prune partitions when it plans): how many
# are the very intervals being written (a resend or a correction), and the others, which
# are normally none and get the precise overlap test below.
_STORED = """
SELECT count(*) FILTER (WHERE exact),
       coalesce(json_agg(json_build_array(meter_kind, meter_id, start, interval_seconds)) FILTER (WHERE NOT exact), '[]')::text
FROM (
    SELECT r.meter_kind, r.meter_id, r.start, r.interval_seconds,
           EXISTS (SELECT 1 FROM reading_stage s WHERE s.meter_kind = r.meter_kind AND s.meter_id = r.meter_id
                   AND s.start = r.start AND s.interval_seconds = r.interval_seconds) AS exact
    FROM settlement_reading r
    WHERE r.start >= %(lo)s AND r.start < %(hi)s AND r.start + make_interval(secs => r.interval_seconds) > %(first)s
      AND (r.meter_kind, r.meter_id) IN (SELECT DISTINCT meter_kind, meter_id FROM reading_stage)
) stored
"""


def _overlaps_stored(cursor, neighbours: list[list], label=_reading) -> list[Problem]:
    """Staged readings that overlap a stored one of another start or length (neighbours are few)."""
    neighbours = [
        (kind, meter_id, datetime.fromisoformat(start), seconds) for kind, meter_id, start, seconds in neighbours
    ]
    meters = sorted({(kind, meter_id) for kind, meter_id, _, _ in neighbours})
    cursor.execute(
        "SELECT meter_kind, meter_id, start, interval_seconds, idx FROM reading_stage "
        "WHERE (meter_kind, meter_id) IN (SELECT * FROM unnest(%s::smallint[], %s::bigint[]))",
        [[m[0] for m in meters], [m[1] for m in meters]],
    )
    by_meter: dict[tuple, list[tuple]] = {}
    for kind, meter_id, start, seconds, idx in cursor.fetchall():
        by_meter.setdefault((kind, meter_id), []).append((start, start + timedelta(seconds=seconds), idx))
    for intervals in by_meter.values():
        intervals.sort()
    starts = {meter: [i[0] for i in intervals] for meter, intervals in by_meter.items()}
    problems = []
    for kind, meter_id, start, seconds in neighbours:
        end = start + timedelta(seconds=seconds)
        intervals = by_meter[(kind, meter_id)]
        # Staged intervals are disjoint: only the last one starting before `end` can overlap.
        k = bisect.bisect_left(starts[(kind, meter_id)], end) - 1
        if k >= 0 and intervals[k][1] > start:
            problems.append(
                Problem(
                    "overlapping_interval",
                    f"Overlaps a stored {seconds // 60}-minute interval starting {start.isoformat()}; "
                    "intervals of different lengths cannot overlap.",
                    f"{label(intervals[k][2])}.start",
                )
            )
    return sorted(problems, key=lambda p: p.field)


# One statement: remember the values a correction replaces, then upsert. All parts
# see the same snapshot, so `replaced` reads the values as they were before.
_UPSERT = """
WITH incoming AS (
    SELECT meter_kind, meter_id, start, interval_seconds, quality,
           CASE WHEN is_kw THEN round(value * interval_seconds / 3600.0, 6) ELSE round(value, 6) END AS kwh
    FROM reading_stage
), replaced AS (
    INSERT INTO settlement_readingrevision (meter_kind, meter_id, start, interval_seconds, kwh, quality, revision, received_at, replaced_at)
    SELECT r.meter_kind, r.meter_id, r.start, r.interval_seconds, r.kwh, r.quality, r.revision, r.received_at, %(now)s
    FROM incoming i JOIN settlement_reading r USING (meter_kind, meter_id, start)
    -- Range scans of the batch's meters in its window: the cost does not grow with the partition.
    WHERE r.start >= %(lo)s AND r.start < %(hi)s
      AND (r.meter_kind, r.meter_id) IN (SELECT DISTINCT meter_kind, meter_id FROM reading_stage)
      AND (r.kwh, r.quality) IS DISTINCT FROM (i.kwh, i.quality)
    RETURNING 1
), upserted AS (
    INSERT INTO settlement_reading AS r (meter_kind, meter_id, start, interval_seconds, kwh, quality, received_at, revision)
    SELECT meter_kind, meter_id, start, interval_seconds, kwh, quality, %(now)s, 1 FROM incoming
    ON CONFLICT (meter_kind, meter_id, start) DO UPDATE
        SET kwh = EXCLUDED.kwh, quality = EXCLUDED.quality, received_at = EXCLUDED.received_at, revision = r.revision + 1
        WHERE (r.kwh, r.quality) IS DISTINCT FROM (EXCLUDED.kwh, EXCLUDED.quality)
    RETURNING 1
)
-- upserted holds new rows and changed rows; replaced holds exactly the changed ones.
SELECT (SELECT count(*) FROM upserted) - (SELECT count(*) FROM replaced), (SELECT count(*) FROM replaced)
"""


# New data, the usual case: nothing to replace, so no revisions to keep. A plain insert,
# not ON CONFLICT DO NOTHING: speculative insertion nearly doubles the cost of the
# statement that dominates ingestion (5,000 rows: ~28 ms against ~49 ms). A concurrent
# writer of the same intervals makes it fail instead, and the upsert takes over.
_INSERT_NEW = """
INSERT INTO settlement_reading (meter_kind, meter_id, start, interval_seconds, kwh, quality, received_at, revision)
SELECT meter_kind, meter_id, start, interval_seconds,
       CASE WHEN is_kw THEN round(value * interval_seconds / 3600.0, 6) ELSE round(value, 6) END, quality, %(now)s, 1
FROM reading_stage
"""


def _no_partition(exc: IntegrityError) -> bool:
    return isinstance(exc.__cause__, psycopg.errors.CheckViolation) and str(exc.__cause__).startswith(
        "no partition of relation"
    )


def _write(cursor, sql: str, params: dict, *, first: datetime, last: datetime) -> None:
    """Run an insert into settlement_reading; if a partition the process cache knew of is gone
    (dropped by the retention step), learn the catalog again, create it and run it once more."""
    try:
        with transaction.atomic():
            cursor.execute(sql, params)
        return
    except IntegrityError as exc:
        if not _no_partition(exc):
            raise
    partitions.forget()
    partitions.ensure(first=first, last=last)
    try:
        with transaction.atomic():
            cursor.execute(sql, params)
    except IntegrityError as exc:
        if not _no_partition(exc):
            raise
        # A table of the month's name that is not a partition: detached, being archived.
        raise BatchRejected(
            Problem(
                "month_unavailable",
                "A month of this batch is being archived; its readings cannot be written now.",
                "readings",
            ),
            status=409,
        ) from exc


def ingest(*, readings, meters: Meters, now: datetime | None = None) -> IngestResult:
    """Validate and store a device API batch; see the module docstring."""
    t0 = time.perf_counter()
    lines, _count = parse(readings, meters=meters)
    parsed = time.perf_counter() - t0
    now = now or datetime.now(UTC)
    result = store(
        lines=lines,
        now=now,
        earliest=device_earliest(now),
        starts=lambda: ((i, r.get("start")) for i, r in enumerate(readings) if isinstance(r, dict)),
    )
    result.seconds["parse"] = parsed
    return result


def store(
    *, lines: list[str], now: datetime | None = None, earliest: datetime | None = None, starts, label=_reading
) -> IngestResult:
    """The set-based half: COPY checked COPY lines into staging, check timestamps, upsert.

    `starts()` yields (index, start text) to name an unreadable timestamp; `label(index)`
    names a reading in problems (readings[3] on the API, a file row in imports). A start
    before `earliest` is refused (devices: device_earliest; operator imports: no bound).
    """
    now = now or datetime.now(UTC)
    count = len(lines)
    result = IngestResult(received=count)
    # Alone, a batch finds the stage emptied by the last commit, and DELETE costs nothing. Many
    # batches in one transaction (a utility file's chunks) would leave each one's rows dead in
    # it, for every later check to scan: quadratic. TRUNCATE gives such a batch a fresh table.
    empty = "TRUNCATE" if connection.in_atomic_block else "DELETE FROM"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_STAGE.format(empty=empty))
        t1 = time.perf_counter()
        try:
            with transaction.atomic(), cursor.copy(f"COPY reading_stage ({_STAGE_COLUMNS}) FROM STDIN") as copy:
                copy.write("".join(lines))
        except (DataError, psycopg.DataError):  # Django does not wrap errors raised inside copy()
            raise BatchRejected(_unreadable_timestamps(starts(), label)[:200]) from None
        result.seconds["copy"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        problems = _time_problems(cursor, latest=now + CLOCK_SKEW, earliest=earliest, label=label)
        if problems:
            raise BatchRejected(problems)
        cursor.execute(_BOUNDS)
        first, last_end = cursor.fetchone()
        lo = first - timedelta(seconds=max(INTERVALS))
        partitions.ensure(first=first, last=last_end)  # only months the batch writes
        cursor.execute(_LOCK_METERS)
        params = {"now": now, "lo": lo, "hi": last_end, "first": first}
        cursor.execute(_STORED, params)
        already_stored, neighbours = cursor.fetchone()
        neighbours = orjson.loads(neighbours)
        if neighbours:
            clashes = _overlaps_stored(cursor, neighbours, label)
            if clashes:
                raise BatchRejected(clashes[:200])
        result.seconds["check"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        try:
            if not already_stored:
                try:
                    _write(cursor, _INSERT_NEW, params, first=first, last=last_end)
                    result.inserted = cursor.rowcount
                except IntegrityError:  # another request stored some of these intervals meanwhile
                    result.inserted = 0
            if result.inserted < count:  # stored intervals (a resend or a correction), or a concurrent writer
                _write(cursor, _UPSERT, params, first=first, last=last_end)
                inserted, result.updated = cursor.fetchone()
                result.inserted += inserted
        except DataError as exc:  # a value PostgreSQL cannot hold; parse() should have caught it
            raise BatchRejected(Problem("invalid", f"A value could not be stored: {exc}", "readings")) from exc
        result.seconds["upsert"] = time.perf_counter() - t3
    result.unchanged = count - result.inserted - result.updated
    return result
