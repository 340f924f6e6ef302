"""`/healthz`: database, Redis and worker status for probes and the run smoke test.

200 when the database and Redis answer; 503 otherwise. Worker status is reported;
`?require=worker` also makes a missing worker a 503, and `?task=1` sends a task
through the broker and waits for a worker to run it. It reveals no data, so it is
open to unauthenticated probes.
"""

import time

import redis
from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from aggregator.web.tasks import ping


def _timed(check):
    started = time.perf_counter()
    try:
        detail = check()
        result = {"ok": True}
        if detail:
            result.update(detail)
    except Exception as exc:  # a probe reports every failure, whatever it is
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis():
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _workers():
    # limit=1: answer as soon as one worker replies instead of waiting out the timeout.
    replies = current_app.control.ping(timeout=1.0, limit=1)
    if not replies:
        raise RuntimeError("no Celery worker answered within 1 s")
    return {"answered": [name for reply in replies for name in reply]}


def _task_round_trip():
    result = ping.apply_async(expires=30)
    if result.get(timeout=15) != "pong":
        raise RuntimeError("unexpected task result")


@never_cache
@require_GET
def healthz(request):
    checks = {"database": _timed(_database), "redis": _timed(_redis)}
    checks["workers"] = _timed(_workers) if checks["redis"]["ok"] else {"ok": False, "error": "Redis is down"}
    required = ["database", "redis"]
    if request.GET.get("require") == "worker":
        required.append("workers")
    if request.GET.get("task"):
        checks["task"] = _timed(_task_round_trip) if checks["workers"]["ok"] else {"ok": False, "error": "no worker"}
        required.append("task")
    healthy = all(checks[name]["ok"] for name in required)
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )
