"""Hourly temperatures per weather station, from a CSV (`start,temperature_f`, or `temperature_c`).

All or nothing: any bad row is reported by line and column and nothing is written; an hour already stored takes
the new value (stations correct their data). Starts are ISO 8601 with a UTC offset, on the hour.
"""

from datetime import datetime

import numpy as np
from django.db import transaction
from django.utils import timezone

from aggregator.core.csv_files import ImportReport, RowError, UnreadableFile, read_csv
from aggregator.reference.models import Temperature

MAX_ROWS = 400_000


def import_temperatures(*, station: str, source: bytes) -> ImportReport:
    report = ImportReport()
    station = station.strip().upper()
    if not station or len(station) > 32:
        report.problems.append(RowError(0, "station", "invalid", "A station identifier of 1 to 32 characters."))
        return report
    try:
        header, records = read_csv(source, max_rows=MAX_ROWS)
    except UnreadableFile as bad:
        report.problems.append(RowError(bad.line, None, bad.problem.code, bad.problem.message))
        return report
    unit = "temperature_f" if "temperature_f" in header else "temperature_c" if "temperature_c" in header else None
    if "start" not in header or unit is None:
        message = "The header is start,temperature_f (or start,temperature_c)."
        report.problems.append(
            RowError(1, "start" if "start" not in header else "temperature_f", "missing_column", message)
        )
        return report
    at, value_at = header.index("start"), header.index(unit)
    report.rows = len(records)
    hours: dict[datetime, tuple[int, float]] = {}
    for line, record in records:
        text = record[at].strip() if at < len(record) else ""
        try:
            start = datetime.fromisoformat(text)
        except ValueError:
            start = None
        if start is None or start.utcoffset() is None or start.minute or start.second or start.microsecond:
            report.problems.append(
                RowError(line, "start", "invalid", "The hour's start, ISO 8601 with its UTC offset.")
            )
            continue
        raw = record[value_at].strip() if value_at < len(record) else ""
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        value = value * 9 / 5 + 32 if unit == "temperature_c" else value
        if not np.isfinite(value) or not -80 <= value <= 140:
            report.problems.append(RowError(line, unit, "invalid", "A temperature, -80 to 140 °F (-62 to 60 °C)."))
            continue
        if start in hours:
            report.problems.append(RowError(line, "start", "duplicate", f"Same hour as line {hours[start][0]}."))
            continue
        hours[start] = (line, value)
    if not report.problems and not hours:
        report.problems.append(RowError(1, None, "empty", "No rows."))
    if report.problems:
        return report
    now = timezone.now()
    with transaction.atomic():
        Temperature.objects.bulk_create(
            [Temperature(station=station, start=s, temperature_f=v, imported_at=now) for s, (_, v) in hours.items()],
            batch_size=5000,
            update_conflicts=True,
            unique_fields=["station", "start"],
            update_fields=["temperature_f", "imported_at"],
        )
    report.stored = len(hours)
    return report


def temperatures(stations: set[str], start: datetime, end: datetime) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Station -> (hour starts as epoch seconds, °F), sorted, for [start, end)."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for station, at, value in (
        Temperature.objects.filter(station__in=stations, start__gte=start, start__lt=end)
        .order_by("station", "start")
        .values_list("station", "start", "temperature_f")
    ):
        starts, values = out.setdefault(station, ([], []))
        starts.append(int(at.timestamp()))
        values.append(value)
    return {k: (np.array(a, dtype=np.int64), np.array(b, dtype=np.float64)) for k, (a, b) in out.items()}
