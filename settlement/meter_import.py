"""Bulk interval data from a utility's file: many site meters in one CSV.

Columns: utility, meter_id (the site's revenue meter), start (ISO 8601 with offset),
interval_seconds, and kwh or kw (average power), optional quality (actual, estimated,
missing). All or nothing, like a device batch: every row is checked (by the same
rules as the device API) and every problem reported by file line and column; with
any problem nothing is written. A good file is written in chunks of 10,000 readings
in one transaction, reporting progress as it goes. Resent rows change nothing;
changed values are corrections and keep their old values as revisions.
"""

import re
from dataclasses import dataclass, field

from django.db import transaction

from aggregator.core.csv_files import RowError, UnreadableFile, read_csv
from aggregator.reference import readings
from enrollment.models import Site

MAX_ROWS = 5_000_000
CHUNK = readings.MAX_BATCH
COLUMNS = ("utility", "meter_id", "start", "interval_seconds", "kwh", "kw", "quality")
REQUIRED = ("utility", "meter_id", "start", "interval_seconds")
_FIELD = re.compile(r"rows\[(\d+)\]\.?(\w*)")


@dataclass
class MeterImportReport:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [e.as_dict() for e in self.errors[:1000]],
            "error_count": len(self.errors),
        }

    def summary(self) -> str:
        if not self.ok:
            return f"{len(self.errors)} problem(s) in {self.rows} row(s); nothing was written."
        return f"{self.rows} row(s): {self.inserted} new, {self.updated} corrected, {self.unchanged} unchanged."


def _label(row: int) -> str:
    return f"rows[{row}]"


def _row_problems(problems) -> list[RowError]:
    out = []
    for p in problems:
        match = _FIELD.match(p.field or "")
        row, column = (int(match.group(1)), match.group(2) or None) if match else (0, p.field)
        if column == "site":
            column = "meter_id"
        out.append(RowError(row, column, p.code, p.message))
    return out


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text  # parse() names it not_a_number
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def import_meter_data(*, source, progress=None) -> MeterImportReport:
    """Check and write a meter-data file; `progress(done_rows, total_rows)` is called per chunk."""
    report = MeterImportReport()
    try:
        header, records = read_csv(source, max_rows=MAX_ROWS)
    except UnreadableFile as exc:
        report.errors.append(RowError(exc.line, None, exc.problem.code, exc.problem.message))
        return report
    report.rows = len(records)
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    report.errors += [RowError(1, h, "unknown_column", f"Unknown column {h!r}.") for h in unknown]
    report.errors += [RowError(1, c, "missing_column", f"Required column {c!r} is missing.") for c in missing]
    if report.errors:
        return report
    if not records:
        report.errors.append(RowError(2, None, "empty", "The file has a header but no rows."))
        return report
    at = {name: header.index(name) for name in COLUMNS if name in header}
    meters = {
        (u, m): pk
        for pk, u, m in Site.objects.exclude(meter_id="")
        .filter(meter_id__in={r[at["meter_id"]].strip() for _, r in records if len(r) == len(header)})
        .values_list("pk", "utility", "meter_id")
    }

    batch = []
    for line, record in records:
        if len(record) != len(header):
            report.errors.append(
                RowError(line, None, "wrong_field_count", f"Expected {len(header)} fields, found {len(record)}.")
            )
            continue
        value = {name: record[i].strip() for name, i in at.items()}
        site = meters.get((value["utility"], value["meter_id"]))
        if site is None:
            report.errors.append(
                RowError(
                    line,
                    "meter_id",
                    "unknown_meter",
                    f"No site has meter {value['meter_id']!r} at utility {value['utility']!r}.",
                )
            )
            continue
        reading = {"site": site, "start": value["start"], "quality": value.get("quality") or "actual"}
        interval = value["interval_seconds"]
        reading["interval_seconds"] = int(interval) if interval.isascii() and interval.isdigit() else interval
        for unit in ("kwh", "kw"):
            if value.get(unit):
                reading[unit] = _number(value[unit])
        batch.append((line, reading))
    if report.errors:
        return report

    sites = frozenset(meters.values())
    lines_of = [line for line, _ in batch]
    problems = []
    prepared = []
    for offset in range(0, len(batch), CHUNK):
        chunk = batch[offset : offset + CHUNK]
        try:
            prepared.append(
                (
                    offset,
                    readings.parse(
                        [r for _, r in chunk],
                        meters=readings.Meters({}, None),
                        label=lambda i, o=offset: _label(lines_of[o + i]),
                        sites=sites,
                    )[0],
                )
            )
        except readings.BatchRejected as exc:
            problems += exc.problems
    if problems:
        report.errors = sorted(_row_problems(problems), key=lambda e: e.row)
        return report

    try:
        with transaction.atomic():
            done = 0
            for offset, copy_lines in prepared:
                chunk = batch[offset : offset + CHUNK]
                result = readings.store(
                    lines=copy_lines,
                    label=lambda i, o=offset: _label(lines_of[o + i]),
                    starts=lambda c=chunk: ((i, r["start"]) for i, (_, r) in enumerate(c)),
                )
                report.inserted += result.inserted
                report.updated += result.updated
                report.unchanged += result.unchanged
                done += len(chunk)
                if progress:
                    progress(done, len(batch))
    except readings.BatchRejected as exc:
        report.errors = sorted(_row_problems(exc.problems), key=lambda e: e.row)
        report.inserted = report.updated = report.unchanged = 0
    return report
