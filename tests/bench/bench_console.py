"""Console: every operator page under 300 ms with the demo fleet and with 100,000 devices, through the production
web server.

Setup (not timed): `seed_demo` (300 customers, 396 devices, 45 days of hourly history,
a settled past event, an upcoming event), every device with a heartbeat, and an operator
logged in (a session cookie). Timed: each console page fetched REPEATS times over HTTP
from the real web process (deploy/web.py), one request at a time: the whole server-side
path (middleware, session, role check, queries, template) plus the loopback round trip.
Then 100,000 more devices (as many customers and sites, CAISO and PJM, through the fleet
import, nearly all online) are added (not timed) and every page is timed again. After each setup, what beat
does every minute for the fleet page and the map (count the fleet, refresh the sites' states) is run and timed.
Bare limit, on the same server in the same run: Django's bare view returning a static string
(tests/bench/bare_urls.py, the platform's settings and URLs plus that one), fetched the same way with
the same session cookie: what the server, Django's request cycle and the middleware cost alone.
"""

import http.client
import os
import statistics
import tempfile
import time
from datetime import timedelta
from importlib import import_module
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection

from tests.bench import web_server
from tests.bench.ratios import Ratio

TARGET_MS = 300.0
REPEATS = int(os.environ.get("BENCH_CONSOLE_REPEATS", "20"))
TARGET_FAILED = False
RATIOS: list[Ratio] = []


def _session_cookie() -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model

    user = get_user_model().objects.get(username="demo")
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY], store[BACKEND_SESSION_KEY] = str(user.pk), "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def _pages() -> list[tuple[str, str]]:
    from aggregator.aggregation.models import VirtualResource
    from dispatch.models import DispatchEvent
    from enrollment.models import Device
    from settlement.models import SettlementRun

    resource = VirtualResource.objects.order_by("pk").first()
    past = DispatchEvent.objects.get(external_ref="DEMO-PAST")
    run = SettlementRun.objects.filter(event=past).first()
    device = Device.objects.order_by("pk").values_list("pk", flat=True).first()
    return [
        ("fleet", "/console/"),
        ("resources", "/console/resources/"),
        ("resource", f"/console/resources/{resource.pk}/"),
        ("events", "/console/events/"),
        ("event (settled)", f"/console/events/{past.pk}/"),
        ("event live part", f"/console/events/{past.pk}/?part=live"),
        ("settlement", "/console/settlement/"),
        ("statement", f"/console/settlement/runs/{run.pk}/"),
        (
            "period statement",
            (
                f"/console/settlement/statements/?resource={past.resource_id}"
                f"&date_from={past.start.date() - timedelta(days=30)}&date_to={past.start.date() + timedelta(days=30)}"
            ),
        ),
        ("storm watch", "/console/storm-watches/"),
        ("health", "/console/health/"),
        ("devices list", "/console/lists/devices/"),
        ("devices searched", "/console/lists/devices/?search=tesla&market=PJM&online=true&ordering=-rated_kw"),
        ("devices page 100", "/console/lists/devices/?page=100"),
        ("customers list", "/console/lists/customers/?search=household"),
        ("sites list", "/console/lists/sites/?market=CAISO"),
        ("enrollments list", "/console/lists/enrollments/"),
        ("resources list", "/console/lists/resources/"),
        ("events list", "/console/lists/events/"),
        ("runs list", "/console/lists/settlement-runs/"),
        ("device history", f"/console/history/enrollment.device/{device}/"),
        ("map", "/console/map/"),
        ("map, whole fleet", "/console/map/?format=json&zoom=4", _uncached_map({}, 4, None)),
        (
            "map, a region",
            "/console/map/?format=json&zoom=9&bbox=38.5,-77.5,41.5,-73.5",
            _uncached_map({}, 9, (38.5, -77.5, 41.5, -73.5)),
        ),
        (
            "map, a city",
            "/console/map/?format=json&zoom=12&bbox=39.8,-75.4,40.1,-74.9",
            _uncached_map({}, 12, (39.8, -75.4, 40.1, -74.9)),
        ),
        (
            "map, streets",
            "/console/map/?format=json&zoom=15&bbox=39.94,-75.2,39.98,-75.12",
            _uncached_map({}, 14, (39.94, -75.2, 39.98, -75.12)),
        ),
        ("fleet imports", "/console/fleet-imports/"),
        ("event performance", f"/console/events/{past.pk}/performance/"),
        ("season", "/console/season/"),
    ]


def _uncached_map(query: dict, zoom: int, bbox):
    """Before each request, drop the map's cached answer: the figure is the cold one."""
    import orjson
    from django.core.cache import cache

    full = {"market": "", "node": "", "state": "", **query}
    key = "console:map:" + orjson.dumps([full, zoom, list(bbox) if bbox else None]).decode()
    return lambda: cache.delete(key)


def run() -> list[str]:
    global TARGET_FAILED
    t0 = time.perf_counter()
    settings.VPP_DATA_DIR = Path(tempfile.mkdtemp(prefix="bench-console-"))  # the demo's token file goes there
    call_command("collectstatic", interactive=False, verbosity=0)  # the production server serves the hashed names
    call_command("seed_demo", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO enrollment_devicestatus (device_id, online, last_seen_at, mode, firmware, updated_at) "
            "SELECT id, true, now(), '', '', now() FROM enrollment_device "
            "ON CONFLICT (device_id) DO UPDATE SET online = true, last_seen_at = now()"
        )
        cursor.execute("ANALYZE")
    cookie = _session_cookie()
    lines = [f"setup: the demo seed and a logged-in operator in {time.perf_counter() - t0:.1f} s (not timed)"]
    lines.extend(_beat_counts())
    port = web_server.free_port()
    server = web_server.start(port, WEB_CONCURRENCY="1", DJANGO_SETTINGS_MODULE="tests.bench.bare_settings")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        bare = statistics.median(_timed(conn, cookie, "/bench/bare/"))
        lines.append(f"bare limit: Django's bare view returning a static string, median {bare:.1f} ms")
        lines.append("demo fleet:")
        worst, medians = _time_pages(conn, cookie, lines)
        RATIOS.append(Ratio("console pages (median page) vs bare view", statistics.median(medians), bare, "ms", False))
        RATIOS.append(Ratio("  the slowest page vs the same", max(medians), bare, "ms", False))
        t1 = time.perf_counter()
        _add_large_fleet()
        lines.append(f"{LARGE_FLEET:,} more devices (setup {time.perf_counter() - t1:.1f} s, not timed):")
        lines.extend(_beat_counts())
        # A new connection: the server closes one left idle through a long import (keep-alive timeout).
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        large, medians = _time_pages(conn, cookie, lines)
        worst = max(worst, large)
        RATIOS.append(
            Ratio(f"  with {LARGE_FLEET:,} more devices: median page", statistics.median(medians), bare, "ms", False)
        )
        ok = worst < TARGET_MS
        TARGET_FAILED = not ok
        lines.append(
            f"  target: every page under {TARGET_MS:.0f} ms (slowest request {worst:.1f} ms) -> {'MET' if ok else 'MISSED'}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return lines


LARGE_FLEET = int(os.environ.get("BENCH_CONSOLE_DEVICES", "100000"))


def _add_large_fleet() -> None:
    from aggregator.demo.fleet import fleet_csv
    from enrollment.fleet_import import import_fleet

    report = import_fleet(
        source=fleet_csv(customers=LARGE_FLEET, devices=LARGE_FLEET, prefix="BIG", retail_dr_share=0).encode()
    )
    assert report.ok, report.errors[:3]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO enrollment_devicestatus (device_id, online, last_seen_at, mode, firmware, updated_at) "
            "SELECT id, id % 50 <> 0, now(), '', '', now() FROM enrollment_device "
            "ON CONFLICT (device_id) DO NOTHING"
        )
        cursor.execute("ANALYZE")


def _beat_counts() -> list[str]:
    """What beat does every minute for the fleet page and the map (enrollment.tasks.count_fleet), timed: the first
    refresh after the import writes every site; the next, with nothing changed, is the steady cost per minute."""
    from enrollment import services

    counted = services.count_fleet()
    t0 = time.perf_counter()
    written = services.refresh_site_states()
    first = time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute("UPDATE enrollment_devicestatus SET online = NOT online WHERE device_id % 1000 = 0")
    t0 = time.perf_counter()
    changed = services.refresh_site_states()
    steady = time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE enrollment_sitestate")
        cursor.execute("ANALYZE enrollment_sitecell")
    line = (
        f"  beat's minute: the fleet counted in {counted.seconds:.1f} s; the map's site states refreshed in "
        f"{first:.1f} s ({written:,} sites written, the first time) then {steady:.1f} s ({changed:,} sites changed)"
    )
    return [line]


def _timed(conn, cookie: str, path: str, before=()) -> list[float]:
    """REPEATS fetches of `path` (ms), after one that warms the worker's caches."""
    times = []
    for _ in range(REPEATS + 1):
        for step in before:
            step()
        started = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise SystemExit(f"{path} answered {response.status}: {body[:300]!r}")
    return times[1:]


def _time_pages(conn, cookie: str, lines: list[str]) -> tuple[float, list[float]]:
    """(The slowest request, each page's median), each page's figures added to `lines`."""
    worst, medians = 0.0, []
    for name, path, *before in _pages():
        times = _timed(conn, cookie, path, before)
        p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
        worst = max(worst, max(times))
        medians.append(statistics.median(times))
        lines.append(f"  {name:<18} median {medians[-1]:6.1f} ms, p95 {p95:6.1f} ms, max {max(times):6.1f} ms")
    return worst, medians
