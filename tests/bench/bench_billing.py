"""A customer's monthly bill and savings under 100 ms: GET /api/v1/sites/{id}/bill/ over HTTP.

Setup (not timed): a time-of-use tariff with seasons, two demand charges, a fixed charge
and an export credit; the measured site with a battery and solar, 15-minute readings on
all three meters for July and the six months before, and OTHER_SITES other sites with
July's site readings (so the readings table is not just this site's). Timed: the whole
request through the production web server with an operator token: the readings query
(site meter joined with the device meters), three bills of 2,976 intervals each in
Decimal, the settled earnings query, and the JSON answer. In-process, the same call is
split into its query and its arithmetic to say what dominates.
"""

import http.client
import math
import os
import statistics
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aggregator.reference import services as reference_services
from tests.bench import web_server

TARGET_MS = 100.0
REPEATS = int(os.environ.get("BENCH_BILL_REPEATS", "30"))
OTHER_SITES = int(os.environ.get("BENCH_BILL_OTHER_SITES", "100"))
NY = ZoneInfo("America/New_York")
TARGET_FAILED = False
TARIFF = {
    "utility": "BENCHCO",
    "code": "TOU-D",
    "name": "Time of use with demand",
    "effective_from": "2025-01-01",
    "seasons": {"summer": [6, 7, 8, 9]},
    "energy": [
        {
            "name": "summer on-peak",
            "season": "summer",
            "days": "weekdays",
            "hours": [[16, 21]],
            "price_per_kwh": "0.3412",
        },
        {"name": "summer mid-peak", "season": "summer", "hours": [[14, 16], [21, 23]], "price_per_kwh": "0.1988"},
        {"name": "off-peak", "price_per_kwh": "0.1123"},
    ],
    "demand": [
        {"name": "facility demand", "price_per_kw": "4.25"},
        {
            "name": "on-peak demand",
            "season": "summer",
            "days": "weekdays",
            "hours": [[16, 21]],
            "price_per_kw": "11.80",
        },
    ],
    "fixed": [{"name": "customer charge", "per_month": "14.50"}],
    "export": {"credit_per_kwh": "0.0450"},
}


def _store(readings):
    from aggregator.reference import readings as meter

    for first in range(0, len(readings), meter.MAX_BATCH):
        batch = readings[first : first + meter.MAX_BATCH]
        sites = frozenset(r["site"] for r in batch if "site" in r) or None
        devices = {r["device"]: r.pop("_meta") for r in batch if "device" in r}
        lines, _ = meter.parse(batch, meters=meter.Meters(devices=devices, default_device=None), sites=sites)
        meter.store(lines=lines, starts=lambda b=batch: enumerate(r["start"] for r in b))


def _quarter_hours(first: datetime, last: datetime):
    at = first.astimezone(ZoneInfo("UTC"))
    while at < last:
        yield at
        at += timedelta(minutes=15)


def _seed():
    from django.contrib.auth import get_user_model

    from aggregator.core.access import tokens
    from aggregator.core.access.models import OperatorToken
    from aggregator.core.access.roles import ensure_role_groups, grant
    from tests.factories import DeviceFactory, SiteFactory

    reference_services.save_tariffs([TARIFF])
    site = SiteFactory(utility="BENCHCO", retail_tariff="TOU-D", time_zone="America/New_York")
    battery = DeviceFactory(site=site, device_type="battery")
    solar = DeviceFactory(site=site, device_type="solar_pv", charge_kw=None, energy_kwh=None, backup_reserve_pct=None)
    site_rows, device_rows = [], []
    for at in _quarter_hours(datetime(2025, 1, 1, tzinfo=NY), datetime(2025, 8, 1, tzinfo=NY)):
        local = at.astimezone(NY)
        hour = local.hour + local.minute / 60
        load = 0.25 + 0.2 * math.sin(math.pi * (hour - 6) / 12) ** 2
        pv = max(0.0, math.sin(math.pi * (hour - 6) / 12)) * 1.2 if 6 <= hour <= 18 else 0.0
        batt = -0.6 if 16 <= hour < 20 and local.weekday() < 5 else (0.5 if 1 <= hour < 5 else 0.0)
        start = at.isoformat()
        site_rows.append({"site": site.pk, "start": start, "interval_seconds": 900, "kwh": round(load - pv + batt, 4)})
        device_rows.append(
            {
                "device": battery.pk,
                "_meta": (site.pk, "battery", True),
                "meter": "device",
                "start": start,
                "interval_seconds": 900,
                "kwh": batt,
            }
        )
        device_rows.append(
            {
                "device": solar.pk,
                "_meta": (site.pk, "solar_pv", False),
                "meter": "device",
                "start": start,
                "interval_seconds": 900,
                "kwh": round(-pv, 4),
            }
        )
    _store(site_rows)
    _store(device_rows)
    july = [at.isoformat() for at in _quarter_hours(datetime(2025, 7, 1, tzinfo=NY), datetime(2025, 8, 1, tzinfo=NY))]
    others = []
    for n in range(OTHER_SITES):
        other = SiteFactory(utility="BENCHCO", retail_tariff="TOU-D", time_zone="America/New_York")
        others += [
            {"site": other.pk, "start": start, "interval_seconds": 900, "kwh": 0.3 + (n % 7) / 10} for start in july
        ]
    _store(others)
    ensure_role_groups()
    user = get_user_model().objects.create_user(username="bench-analyst", password="x-not-used-x")
    grant(user, "analyst")
    issued = tokens.issue("op")
    OperatorToken.objects.create(user=user, key_id=issued.key_id, digest=issued.digest)
    return site, issued.plaintext, len(site_rows) + len(device_rows) + len(others)


def run() -> list[str]:
    global TARGET_FAILED
    from django.db import connection

    from settlement import billing

    t0 = time.perf_counter()
    site, token, rows = _seed()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    lines = [
        (
            f"setup: {rows:,} readings (this site's 7 months on 3 meters, {OTHER_SITES} other sites' July) "
            f"in {time.perf_counter() - t0:.1f} s (not timed)"
        )
    ]

    # What dominates, in process: the query, then the three bills' arithmetic.
    split = {"query": [], "bills": []}
    for _ in range(10):
        started = time.perf_counter()
        intervals = billing.load(site, 2025, 7)
        split["query"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        billing.monthly(site, 2025, 7)
        split["bills"].append((time.perf_counter() - started) * 1000 - split["query"][-1])
    lines.append(
        f"  in process: readings query median {statistics.median(split['query']):.1f} ms "
        f"({len(intervals.starts)} intervals); the rest of monthly() (3 bills, earnings) "
        f"median {statistics.median(split['bills']):.1f} ms"
    )

    port = web_server.free_port()
    server = web_server.start(port, WEB_CONCURRENCY="1")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        path = f"/api/v1/sites/{site.pk}/bill/?month=2025-07"
        times = []
        for _ in range(REPEATS + 1):
            started = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Host": "127.0.0.1"})
            response = conn.getresponse()
            body = response.read()
            times.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise SystemExit(f"{path} answered {response.status}: {body[:300]!r}")
        times = times[1:]
        p95 = statistics.quantiles(times, n=20)[-1]
        lines.append(
            f"  GET {path} over HTTP: median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, "
            f"max {max(times):.1f} ms ({len(body) // 1024} KiB)"
        )
        ok = p95 < TARGET_MS
        TARGET_FAILED = not ok
        lines.append(
            f"  target: a monthly bill and savings under {TARGET_MS:.0f} ms (p95 {p95:.1f} ms) -> {'MET' if ok else 'MISSED'}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return lines
