"""Retail demand-response events from a utility's list (CSV), kept so that their days leave the sites' baselines.

Columns: utility, meter_id (the site's revenue meter), program, start, end (ISO 8601 with a UTC offset).
All or nothing: with any bad row every problem is reported by line and column and nothing is written;
importing the same list again changes nothing (an event is its site, program and start; a later list's
end wins).
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from aggregator.core.csv_files import ImportReport, RowError, UnreadableFile, read_csv
from enrollment.models import Site
from settlement.models import RetailEvent

COLUMNS = ("utility", "meter_id", "program", "start", "end")
MAX_ROWS = 200_000


def _moment(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def import_retail_events(source: bytes) -> ImportReport:
    report = ImportReport()
    try:
        header, records = read_csv(source, max_rows=MAX_ROWS)
    except UnreadableFile as bad:
        report.problems.append(RowError(bad.line, None, bad.problem.code, bad.problem.message))
        return report
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        message = f"Missing column(s) {', '.join(missing)}: the header is {','.join(COLUMNS)}."
        report.problems.append(RowError(1, missing[0], "missing_column", message))
        return report
    at = {c: header.index(c) for c in COLUMNS}
    report.rows = len(records)
    parsed: dict[tuple[str, str], list[tuple[int, str, datetime, datetime]]] = {}
    for line, record in records:
        cells = {c: (record[i].strip() if i < len(record) else "") for c, i in at.items()}
        bad = next((c for c in COLUMNS if not cells[c]), None)
        if bad:
            report.problems.append(RowError(line, bad, "required", f"{bad} is required."))
            continue
        if len(cells["program"]) > 100:
            report.problems.append(RowError(line, "program", "too_long", "At most 100 characters."))
            continue
        start, end = _moment(cells["start"]), _moment(cells["end"])
        for name, value in (("start", start), ("end", end)):
            if value is None:
                report.problems.append(
                    RowError(line, name, "invalid", f"{name}: an ISO 8601 time with its UTC offset.")
                )
        if start is None or end is None:
            continue
        if end <= start:
            report.problems.append(RowError(line, "end", "invalid", "end must be after start."))
            continue
        parsed.setdefault((cells["utility"], cells["meter_id"]), []).append((line, cells["program"], start, end))
    sites = {
        (s.utility, s.meter_id): s.pk
        for s in Site.objects.filter(meter_id__in={m for _, m in parsed}).only("id", "utility", "meter_id")
    }
    events: dict[tuple[int, str, datetime], tuple[int, datetime]] = {}
    for key, rows in parsed.items():
        site = sites.get(key)
        for line, program, start, end in rows:
            if site is None:
                report.problems.append(
                    RowError(line, "meter_id", "unknown_site", f"No site with meter {key[1]!r} of {key[0]!r}.")
                )
                continue
            if (site, program, start) in events:
                first = events[(site, program, start)][0]
                report.problems.append(RowError(line, "start", "duplicate", f"Same event as line {first}."))
                continue
            events[(site, program, start)] = (line, end)
    if not report.problems and not events:
        report.problems.append(RowError(1, None, "empty", "No rows."))
    if report.problems:
        report.problems.sort(key=lambda p: p.row)
        return report
    now = timezone.now()
    with transaction.atomic():
        RetailEvent.objects.bulk_create(
            [
                RetailEvent(site_id=site, program=program, start=start, end=end, imported_at=now)
                for (site, program, start), (_, end) in events.items()
            ],
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["site", "program", "start"],
            update_fields=["end", "imported_at"],
        )
    report.stored = len(events)
    return report
