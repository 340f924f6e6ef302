from datetime import datetime

from django.db import connection

from settlement.models import Quality

QUALITY_NAMES = {q.value: q.label for q in Quality}


def readings(*, meter_kind: int, meter_id: int, start: datetime, end: datetime) -> dict[str, list]:
    """One meter's readings in [start, end), as columns (start, interval, kWh, quality, revision)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT start, interval_seconds, kwh::float8, quality, revision FROM settlement_reading "
            "WHERE meter_kind = %s AND meter_id = %s AND start >= %s AND start < %s ORDER BY start",
            [meter_kind, meter_id, start, end],
        )
        rows = cursor.fetchall()
    columns = list(zip(*rows)) if rows else [(), (), (), (), ()]
    return {
        "start": list(columns[0]), "interval_seconds": list(columns[1]), "kwh": list(columns[2]),
        "quality": [QUALITY_NAMES[q] for q in columns[3]], "revision": list(columns[4]),
    }


def readings_json(*, meter_kind: int, meter_id: int, start: datetime, end: datetime) -> str:
    """The same columns as `readings`, as JSON text built by PostgreSQL.

    For the API: converting 13,000 timestamps to Python datetimes and back costs
    ~10x the query itself, so the database writes the JSON and it passes through.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT json_build_object(
                'start', coalesce(json_agg(start ORDER BY start), '[]'),
                'interval_seconds', coalesce(json_agg(interval_seconds ORDER BY start), '[]'),
                'kwh', coalesce(json_agg(kwh ORDER BY start), '[]'),
                'quality', coalesce(json_agg(CASE quality WHEN 1 THEN 'actual' WHEN 2 THEN 'estimated' ELSE 'missing' END ORDER BY start), '[]'),
                'revision', coalesce(json_agg(revision ORDER BY start), '[]')
            )::text
            FROM settlement_reading
            WHERE meter_kind = %s AND meter_id = %s AND start >= %s AND start < %s
            """,
            [meter_kind, meter_id, start, end],
        )
        return cursor.fetchone()[0]


STATEMENT_HEADER = ["site", "customer", "interval_start", "baseline_kw", "actual_kw", "reduction_kwh", "price_per_mwh",
                    "energy_usd_site_total", "baseline_days_used", "flags"]


def statement_rows(*, run) -> tuple[list[str], list[list]]:
    """A run's evidence, one row per site and interval (UTC ISO times), traceable to the baseline days."""
    from settlement.models import SiteSettlement

    rows = []
    for site in SiteSettlement.objects.filter(run=run).order_by("site_id"):
        days = " ".join(d.isoformat() for d in site.days_used)
        flags = " ".join(site.flags)
        if not site.starts:
            rows.append([site.site_id, site.customer_id, "", "", "", "", "", site.energy, days, flags])
        for i, start in enumerate(site.starts):
            rows.append([site.site_id, site.customer_id, start.isoformat(), site.baseline_kw[i], site.actual_kw[i],
                         site.reduction_kwh[i], site.price_per_mwh[i] if site.price_per_mwh[i] is not None else "",
                         site.energy, days, flags])
    return STATEMENT_HEADER, rows
