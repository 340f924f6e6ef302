"""Console: every operator page under 300 ms with the demo fleet, through the production web server.

Setup (not timed): `seed_demo` (300 customers, 396 devices, 45 days of hourly history,
a settled past event, an upcoming event), every device with a heartbeat, and an operator
logged in (a session cookie). Timed: each console page fetched REPEATS times over HTTP
from the real web process (deploy/web.py), one request at a time: the whole server-side
path (middleware, session, role check, queries, template) plus the loopback round trip.
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
    from settlement.models import SettlementRun

    resource = VirtualResource.objects.order_by("pk").first()
    past = DispatchEvent.objects.get(external_ref="DEMO-PAST")
    run = SettlementRun.objects.filter(event=past).first()
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
    ]


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
    port = web_server.free_port()
    server = web_server.start(port, WEB_CONCURRENCY="1", DJANGO_SETTINGS_MODULE="tests.bench.bare_settings")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        worst = 0.0
        medians = []
        for name, path in [("bare Django view", "/bench/bare/"), *_pages()]:
            times = []
            for _ in range(REPEATS + 1):
                started = time.perf_counter()
                conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
                response = conn.getresponse()
                body = response.read()
                times.append((time.perf_counter() - started) * 1000)
                if response.status != 200:
                    raise SystemExit(f"{path} answered {response.status}: {body[:300]!r}")
            times = times[1:]  # the first request of a page warms the worker's caches
            p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
            medians.append(statistics.median(times))
            if path != "/bench/bare/":
                worst = max(worst, max(times))
            lines.append(
                f"  {name:<18} median {statistics.median(times):6.1f} ms, p95 {p95:6.1f} ms, max {max(times):6.1f} ms "
                f"({len(body) // 1024} KiB)"
            )
        bare, pages = medians[0], medians[1:]
        lines.append(
            f"  bare limit: Django's bare view {bare:.1f} ms median; the pages' median of medians "
            f"{statistics.median(pages):.1f} ms (slowest page {max(pages):.1f} ms)"
        )
        RATIOS.append(Ratio("console pages (median page) vs bare view", statistics.median(pages), bare, "ms", False))
        RATIOS.append(Ratio("  the slowest page vs the same", max(pages), bare, "ms", False))
        ok = worst < TARGET_MS
        TARGET_FAILED = not ok
        lines.append(
            f"  target: every page under {TARGET_MS:.0f} ms (slowest request {worst:.1f} ms) -> {'MET' if ok else 'MISSED'}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return lines
