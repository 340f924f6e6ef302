"""How an event's devices and sites performed: delivered against allocated energy, set-based in SQL, and a season's
summary per program. Read by the console's performance report (and its CSV)."""

from django.db import connection

from dispatch.models import DispatchEvent

# Per device: kWh allocated (its kW per interval times the interval's hours) and delivered (as it reported them).
_DEVICES = """
WITH iv AS (
    SELECT row_number() OVER (ORDER BY start) AS n, start, extract(epoch FROM "end" - start) / 3600.0 AS hours
    FROM dispatch_eventinterval WHERE event_id = %(event)s
), allocated AS (
    SELECT a.device_id, a.customer_id, a.reason, sum(coalesce(a.kw[iv.n], 0) * iv.hours) AS kwh
    FROM dispatch_allocation a CROSS JOIN iv WHERE a.event_id = %(event)s
    GROUP BY a.device_id, a.customer_id, a.reason
), delivered AS (
    SELECT r.device_id, sum(r.delivered_kw * iv.hours) AS kwh
    FROM dispatch_deliveryreport r JOIN iv ON iv.start = r.interval_start
    WHERE r.event_id = %(event)s GROUP BY r.device_id
)
SELECT a.device_id, d.device_type, d.site_id, site.utility || ' ' || site.meter_id, c.id, c.external_ref, c.name,
       a.reason, a.kwh::float8, coalesce(dl.kwh, 0)::float8
FROM allocated a JOIN enrollment_device d ON d.id = a.device_id JOIN enrollment_site site ON site.id = d.site_id
JOIN enrollment_customer c ON c.id = site.customer_id LEFT JOIN delivered dl ON dl.device_id = a.device_id
WHERE a.kwh > 0 OR dl.kwh IS NOT NULL
ORDER BY coalesce(dl.kwh, 0) - a.kwh, a.device_id
"""


def device_performance(*, event: DispatchEvent) -> list[dict]:
    """Every device given energy (or reporting some), the worst under-deliverer first: allocated and delivered kWh,
    the shortfall and the share delivered (None when nothing was allocated)."""
    with connection.cursor() as cursor:
        cursor.execute(_DEVICES, {"event": event.pk})
        rows = cursor.fetchall()
    return [
        {
            "device_id": device_id,
            "device_type": device_type,
            "site_id": site_id,
            "meter": meter,
            "customer_id": customer_id,
            "customer_ref": customer_ref,
            "customer_name": customer_name,
            "reason": reason,
            "allocated_kwh": round(allocated, 3),
            "delivered_kwh": round(delivered, 3),
            "shortfall_kwh": round(max(allocated - delivered, 0.0), 3),
            "delivered_share": round(delivered / allocated, 4) if allocated > 0 else None,
        }
        for (
            device_id,
            device_type,
            site_id,
            meter,
            customer_id,
            customer_ref,
            customer_name,
            reason,
            allocated,
            delivered,
        ) in rows
    ]


def site_performance(devices: list[dict]) -> list[dict]:
    """The devices' figures summed per site, the largest shortfall first."""
    sites: dict[int, dict] = {}
    for d in devices:
        site = sites.setdefault(
            d["site_id"],
            {
                "site_id": d["site_id"],
                "meter": d["meter"],
                "customer_ref": d["customer_ref"],
                "devices": 0,
                "allocated_kwh": 0.0,
                "delivered_kwh": 0.0,
            },
        )
        site["devices"] += 1
        site["allocated_kwh"] += d["allocated_kwh"]
        site["delivered_kwh"] += d["delivered_kwh"]
    for site in sites.values():
        site["shortfall_kwh"] = round(max(site["allocated_kwh"] - site["delivered_kwh"], 0.0), 3)
        share = site["delivered_kwh"] / site["allocated_kwh"] if site["allocated_kwh"] > 0 else None
        site["delivered_share"] = None if share is None else round(share, 4)
    return sorted(sites.values(), key=lambda s: (-s["shortfall_kwh"], s["site_id"]))


_SEASON = """
WITH ev AS (
    -- the season is the market's calendar year, on its own clock
    SELECT e.id, r.program_id FROM dispatch_dispatchevent e JOIN aggregator_virtualresource r ON r.id = e.resource_id
    JOIN aggregator_market mk ON mk.id = r.market_id
    WHERE e.start >= make_timestamp(%(year)s, 1, 1, 0, 0, 0) AT TIME ZONE mk.time_zone
      AND e.start < make_timestamp(%(year)s + 1, 1, 1, 0, 0, 0) AT TIME ZONE mk.time_zone
      AND e.state NOT IN ('cancelled')
), iv AS (
    SELECT i.event_id, row_number() OVER (PARTITION BY i.event_id ORDER BY i.start) AS n, i.start, i.target_kw,
           extract(epoch FROM i."end" - i.start) / 3600.0 AS hours
    FROM dispatch_eventinterval i JOIN ev ON ev.id = i.event_id
), target AS (
    SELECT ev.program_id, sum(iv.target_kw * iv.hours) AS kwh FROM iv JOIN ev ON ev.id = iv.event_id GROUP BY ev.program_id
), allocated AS (
    SELECT ev.program_id, sum(coalesce(a.kw[iv.n], 0) * iv.hours) AS kwh, count(DISTINCT a.customer_id)
               FILTER (WHERE a.reason = 'allocated') AS customers
    FROM dispatch_allocation a JOIN ev ON ev.id = a.event_id JOIN iv ON iv.event_id = a.event_id GROUP BY ev.program_id
), delivered AS (
    SELECT ev.program_id, sum(r.delivered_kw * iv.hours) AS kwh
    FROM dispatch_deliveryreport r JOIN ev ON ev.id = r.event_id
    JOIN iv ON iv.event_id = r.event_id AND iv.start = r.interval_start GROUP BY ev.program_id
)
SELECT p.id, p.code, p.name, m.code, (SELECT count(*) FROM ev WHERE ev.program_id = p.id),
       coalesce(t.kwh, 0)::float8, coalesce(a.kwh, 0)::float8, coalesce(d.kwh, 0)::float8, coalesce(a.customers, 0)
FROM aggregator_program p JOIN aggregator_market m ON m.id = p.market_id
LEFT JOIN target t ON t.program_id = p.id LEFT JOIN allocated a ON a.program_id = p.id
LEFT JOIN delivered d ON d.program_id = p.id
ORDER BY m.code, p.code
"""


def season_summary(*, year: int) -> list[dict]:
    """Per program, over events starting in `year` on its market's clock: events, target, allocated and delivered
    kWh, the share of the target delivered, and the customers dispatched."""
    with connection.cursor() as cursor:
        cursor.execute(_SEASON, {"year": year})
        rows = cursor.fetchall()
    return [
        {
            "program_id": pk,
            "program": code,
            "name": name,
            "market": market,
            "events": events,
            "target_kwh": round(target, 1),
            "allocated_kwh": round(allocated, 1),
            "delivered_kwh": round(delivered, 1),
            "delivered_share": round(delivered / target, 4) if target > 0 else None,
            "customers": customers,
        }
        for pk, code, name, market, events, target, allocated, delivered, customers in rows
    ]
