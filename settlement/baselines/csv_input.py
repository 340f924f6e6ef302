"""An analyst's files for the `baseline` command: readings (start,value) and event days.

Readings: header `start,value`; start is an ISO 8601 time with its UTC offset, value the kWh
of the interval (empty: a reading known to be missing). Event days: one ISO date a line,
with or without a `date` header. Every problem names the file line (the header is line 1).
"""

import math
from datetime import date, datetime

import numpy as np

from aggregator.core.csv_files import UnreadableFile, read_csv
from settlement.baselines.errors import BaselineError
from settlement.baselines.timeline import IntervalReadings

MAX_ROWS = 2_000_000


def _read(source: bytes | str, name: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        return read_csv(source, max_rows=MAX_ROWS)
    except UnreadableFile as exc:
        raise BaselineError(exc.problem.code, f"{name} line {exc.line}: {exc.problem.message}", name) from None


def parse_readings(source: bytes | str, *, name: str = "readings") -> IntervalReadings:
    header, records = _read(source, name)
    if header != ["start", "value"]:
        raise BaselineError(
            "invalid_header", f"{name} line 1: the header is start,value, not {','.join(header)}.", f"{name}:1"
        )
    if not records:
        raise BaselineError("empty", f"{name}: no readings after the header.", name)
    starts = np.empty(len(records), dtype=np.int64)
    kwh = np.empty(len(records), dtype=np.float64)
    for i, (line, record) in enumerate(records):
        if len(record) != 2:
            raise BaselineError(
                "wrong_field_count", f"{name} line {line}: expected 2 fields, found {len(record)}.", f"{name}:{line}"
            )
        text, value = record[0].strip(), record[1].strip()
        try:
            start = datetime.fromisoformat(text)
        except ValueError:
            raise BaselineError(
                "invalid_timestamp",
                f"{name} line {line}, start: {text!r} is not an ISO 8601 date and time.",
                f"{name}:{line}.start",
            ) from None
        if start.utcoffset() is None:
            raise BaselineError(
                "naive_timestamp",
                f"{name} line {line}, start: {text!r} needs its UTC offset (e.g. -04:00 or Z).",
                f"{name}:{line}.start",
            )
        if value == "":
            kwh[i] = math.nan
        else:
            try:
                kwh[i] = float(value)
            except ValueError:
                kwh[i] = math.nan
                ok = False
            else:
                ok = math.isfinite(kwh[i])
            if not ok:
                raise BaselineError(
                    "not_a_number",
                    f"{name} line {line}, value: {value!r} is not a number of kWh.",
                    f"{name}:{line}.value",
                )
        starts[i] = math.floor(start.timestamp())
    order = np.argsort(starts, kind="stable")
    return IntervalReadings(starts[order], kwh[order])


def parse_event_days(source: bytes | str, *, name: str = "event days") -> frozenset[date]:
    if not (source.strip() if isinstance(source, str | bytes) else source):
        return frozenset()  # no other events
    header, records = _read(source, name)
    rows = records if header == ["date"] else [(1, header), *records]
    days = set()
    for line, record in rows:
        text = ",".join(record).strip()
        if not text:
            continue
        try:
            days.add(date.fromisoformat(text))
        except ValueError:
            raise BaselineError(
                "invalid_date", f"{name} line {line}: {text!r} is not a date (YYYY-MM-DD).", f"{name}:{line}"
            ) from None
    return frozenset(days)
