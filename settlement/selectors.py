from datetime import date, datetime

from django.db import connection

from aggregator.aggregation.models import VirtualResource
from aggregator.reference.models import Quality
from enrollment.models import Customer
from settlement.models import CustomerPayout, SettlementRun, SiteSettlement

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
        "start": list(columns[0]),
        "interval_seconds": list(columns[1]),
        "kwh": list(columns[2]),
        "quality": [QUALITY_NAMES[q] for q in columns[3]],
        "revision": list(columns[4]),
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


STATEMENT_HEADER = [
    "site",
    "device",
    "customer",
    "interval_start",
    "baseline_kw",
    "actual_kw",
    "reduction_kwh",
    "price_per_mwh",
    "energy_usd_site_total",
    "baseline_days_used",
    "flags",
]


def statement_rows(*, run: SettlementRun) -> tuple[list[str], list[list]]:
    """A run's evidence, one row per site and interval (UTC ISO times), traceable to the baseline days."""

    rows = []
    for site in SiteSettlement.objects.filter(run=run).order_by("site_id", "device_id"):
        days = " ".join(d.isoformat() for d in site.days_used)
        flags = " ".join(site.flags)
        device = site.device_id or ""
        if not site.starts:
            rows.append([site.site_id, device, site.customer_id, "", "", "", "", "", site.energy, days, flags])
        for i, start in enumerate(site.starts):
            rows.append(
                [
                    site.site_id,
                    device,
                    site.customer_id,
                    start.isoformat(),
                    site.baseline_kw[i],
                    site.actual_kw[i],
                    site.reduction_kwh[i],
                    site.price_per_mwh[i] if site.price_per_mwh[i] is not None else "",
                    site.energy,
                    days,
                    flags,
                ]
            )
    return STATEMENT_HEADER, rows


def interval_totals(*, run: SettlementRun) -> list[dict]:
    """The resource's baseline vs actual per interval in a run: every measured site summed (kW), with the target.

    An interval sums only meters (sites, or devices under a method that measures devices)
    with both a baseline and an actual value there, so the two lines compare like with like;
    `meters` says how many that was.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT u.start, sum(u.b) FILTER (WHERE u.b IS NOT NULL AND u.a IS NOT NULL),
                   sum(u.a) FILTER (WHERE u.b IS NOT NULL AND u.a IS NOT NULL),
                   count(*) FILTER (WHERE u.b IS NOT NULL AND u.a IS NOT NULL), sum(u.r)
            FROM settlement_sitesettlement s, unnest(s.starts, s.baseline_kw, s.actual_kw, s.reduction_kwh) AS u(start, b, a, r)
            WHERE s.run_id = %s GROUP BY u.start ORDER BY u.start
            """,
            [run.pk],
        )
        rows = cursor.fetchall()
    intervals = list(run.event.intervals.order_by("start").values_list("start", "end", "target_kw"))
    out = []
    for n, (start, baseline, actual, meters, reduction) in enumerate(rows):
        target = next((float(kw) for s, e, kw in intervals if s <= start < e), None)
        end = min(rows[n + 1][0], run.event.end) if n + 1 < len(rows) else run.event.end
        committed_kwh = target * (end - start).total_seconds() / 3600 if target else None
        out.append(
            {
                "start": start,
                "baseline_kw": baseline,
                "actual_kw": actual,
                "meters": meters,
                "reduction_kwh": reduction,
                "target_kw": target,
                "performance_factor": round(float(reduction) / committed_kwh, 4) if committed_kwh else None,
            }
        )
    return out


_PERIOD_RUNS = """
SELECT latest.id FROM (
    SELECT DISTINCT ON (r.event_id) r.id, r.event_id
    FROM settlement_settlementrun r
    JOIN dispatch_dispatchevent e ON e.id = r.event_id
    JOIN aggregator_virtualresource v ON v.id = e.resource_id
    JOIN aggregator_market m ON m.id = v.market_id
    WHERE {resource} (e.start AT TIME ZONE m.time_zone)::date BETWEEN %(first)s AND %(last)s
    ORDER BY r.event_id, r.version DESC
) latest
WHERE {customer} TRUE
ORDER BY latest.event_id
"""

RESOURCE_HEADER = [
    "event",
    "external_ref",
    "event_date",
    "start",
    "end",
    "version",
    "kind",
    "settled_at",
    "method",
    "sites",
    "committed_kwh",
    "delivered_kwh",
    "performance_factor",
    "energy_usd",
    "capacity_usd",
    "penalty_usd",
    "net_usd",
    "initial_net_usd",
    "paid_to_customers_usd",
]
CUSTOMER_HEADER = [
    "event",
    "resource",
    "event_date",
    "start",
    "end",
    "version",
    "kind",
    "settled_at",
    "sites",
    "delivered_kwh",
    "gross_usd",
    "fee_usd",
    "net_usd",
    "initial_net_usd",
]
CUSTOMER_INTERVAL_HEADER = [
    "event",
    "version",
    "site",
    "device",
    "interval_start",
    "baseline_kw",
    "actual_kw",
    "reduction_kwh",
    "price_per_mwh",
    "baseline_days_used",
    "flags",
]


def period_runs(
    *, first: date, last: date, resource_id: int | None = None, customer_id: int | None = None
) -> list[SettlementRun]:
    """Each event's latest settlement run, for events whose start falls on a day (market time) in [first, last]."""

    sql = _PERIOD_RUNS.format(
        resource="e.resource_id = %(resource)s AND" if resource_id is not None else "",
        customer="EXISTS (SELECT 1 FROM settlement_sitesettlement s WHERE s.run_id = latest.id "
        "AND s.customer_id = %(customer)s) AND"
        if customer_id is not None
        else "",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"first": first, "last": last, "resource": resource_id, "customer": customer_id})
        ids = [row[0] for row in cursor.fetchall()]
    runs = SettlementRun.objects.filter(pk__in=ids).select_related("event__resource__market").order_by("event_id")
    return list(runs)


def _initial_net(runs) -> dict[int, object]:

    return dict(
        SettlementRun.objects.filter(event_id__in=[r.event_id for r in runs], version=1).values_list("event_id", "net")
    )


def _event_cells(run) -> list:
    from zoneinfo import ZoneInfo

    event = run.event
    zone = ZoneInfo(event.resource.market.time_zone)
    return [
        event.start.astimezone(zone).date().isoformat(),
        event.start.isoformat(),
        event.end.isoformat(),
        run.version,
        run.kind,
        run.created_at.isoformat(),
    ]


def resource_statement(*, resource: VirtualResource, first: date, last: date) -> tuple[list[str], list[list], dict]:
    """A resource's settled events in a period, one line each (latest version), and the period's totals."""
    from django.db.models import Sum

    runs = period_runs(first=first, last=last, resource_id=resource.pk)
    initial = _initial_net(runs)
    paid = dict(
        CustomerPayout.objects.filter(run__in=runs).values("run_id").annotate(t=Sum("net")).values_list("run_id", "t")
    )
    rows = []
    for run in runs:
        event = run.event
        rows.append(
            [
                event.pk,
                event.external_ref,
                *_event_cells(run),
                run.method,
                run.sites,
                run.committed_kwh,
                run.delivered_kwh,
                run.performance_factor,
                run.energy,
                run.capacity,
                run.penalty,
                run.net,
                initial.get(event.pk),
                paid.get(run.pk, 0),
            ]
        )
    totals = _totals(
        RESOURCE_HEADER,
        rows,
        [
            "committed_kwh",
            "delivered_kwh",
            "energy_usd",
            "capacity_usd",
            "penalty_usd",
            "net_usd",
            "paid_to_customers_usd",
        ],
    )
    return RESOURCE_HEADER, rows, totals


def customer_statement(*, customer: Customer, first: date, last: date) -> tuple[list[str], list[list], dict]:
    """A customer's payouts in a period, one line per settled event (latest version), and the period's totals."""
    from django.db.models import Count

    runs = period_runs(first=first, last=last, customer_id=customer.pk)
    payouts = {p.run_id: p for p in CustomerPayout.objects.filter(run__in=runs, customer=customer)}
    initial = dict(
        CustomerPayout.objects.filter(
            run__event_id__in=[r.event_id for r in runs], run__version=1, customer=customer
        ).values_list("run__event_id", "net")
    )
    sites = dict(
        SiteSettlement.objects.filter(run__in=runs, customer=customer)
        .values("run_id")
        .annotate(n=Count("site_id", distinct=True))
        .values_list("run_id", "n")
    )
    rows = []
    for run in runs:
        p = payouts.get(run.pk)
        rows.append(
            [
                run.event_id,
                str(run.event.resource),
                *_event_cells(run),
                sites.get(run.pk, 0),
                p.delivered_kwh if p else 0,
                p.gross if p else 0,
                p.fee if p else 0,
                p.net if p else 0,
                initial.get(run.event_id),
            ]
        )
    return CUSTOMER_HEADER, rows, _totals(CUSTOMER_HEADER, rows, ["delivered_kwh", "gross_usd", "fee_usd", "net_usd"])


def customer_intervals(*, customer: Customer, first: date, last: date) -> tuple[list[str], list[list]]:
    """The evidence behind a customer's statement: each of its sites' intervals in each run, with the baseline days."""

    runs = period_runs(first=first, last=last, customer_id=customer.pk)
    version = {r.pk: (r.event_id, r.version) for r in runs}
    rows = []
    for site in SiteSettlement.objects.filter(run__in=runs, customer=customer).order_by(
        "run__event_id", "site_id", "device_id"
    ):
        event_id, v = version[site.run_id]
        days, flags = " ".join(d.isoformat() for d in site.days_used), " ".join(site.flags)
        if not site.starts:
            rows.append([event_id, v, site.site_id, site.device_id or "", "", "", "", "", "", days, flags])
        for i, start in enumerate(site.starts):
            rows.append(
                [
                    event_id,
                    v,
                    site.site_id,
                    site.device_id or "",
                    start.isoformat(),
                    site.baseline_kw[i],
                    site.actual_kw[i],
                    site.reduction_kwh[i],
                    "" if site.price_per_mwh[i] is None else site.price_per_mwh[i],
                    days,
                    flags,
                ]
            )
    return CUSTOMER_INTERVAL_HEADER, rows


def _totals(header: list[str], rows: list[list], names: list[str]) -> dict:
    from decimal import Decimal

    return {
        "events": len(rows),
        **{name: sum((Decimal(r[header.index(name)]) for r in rows), Decimal(0)) for name in names},
    }
