"""Real-time telemetry to the market: each resource's aggregate kW at every instant of its market's scan grid,
from its members' heartbeats; kept as a time series, served on the outbound API and pushed where the market's
connection says.

A scan (`scan`) is one SQL statement over all of a market's registered and active resources:

* **Members** are a resource's current memberships (left_at empty); they are the devices expected to report.
* **Reporting**: a member reports when its latest heartbeat (enrollment's DeviceStatus, one row per device,
  written by every heartbeat) says it is online, carries a power reading, and is *fresh*: seen at or after
  ``at - max(2 x the device's telemetry interval, 2 x the market's scan rate)``. Two of the device's own
  intervals, so one late or lost heartbeat does not drop it (the platform calls it offline after three);
  never less than two scans, so a device that reports faster than the market scans is judged on the market's
  cadence, not dropped by a hiccup shorter than a scan. A heartbeat that arrived after `at` (the scan runs a
  moment after its instant) is the best value there is and counts.
* **kW** is the sum of reporting members' power (positive: consumption, negative: export), as DeviceStatus
  has it. A member that reports itself islanded or in a grid outage counts as reporting with 0 kW: it is
  serving its own site, cut off from the grid, so the market's meter sees nothing of it, and the value is
  known rather than missing.
* **Quality**: none when no member reports; poor when the reporting share is below the market's
  telemetry_min_reporting_pct; good otherwise. A registered resource with no members is reported as none.

The scan's instant is aligned to the grid (aggregator.market.scan_grid) and claimed by a TelemetryScan row
inserted in the same statement, so scanning an instant again, or two scanners at once, writes nothing more.
Instants nobody scanned stay missing: a sample is a reading at its instant, never one made up afterwards.

Scheduling is the `stream_telemetry` process (`stream`): it sleeps until each market's next grid instant, scans
it and hands the push to a small thread pool, so a slow market endpoint never delays the next scan. It is its
own process rather than a beat task because a 10-second cadence must not queue behind the shared workers'
long tasks (a settlement run takes minutes), and beat would add a broker round trip and a database write per
tick. Running two of them is safe (the claim), but one is enough.
"""

import http.client
import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from aggregator.aggregation.models import ResourceState, VirtualResource
from aggregator.market.models import MarketConnection, TelemetrySample, TelemetryScan
from aggregator.market.scan_grid import grid_instant
from aggregator.reference.models import Market

log = logging.getLogger(__name__)

STREAMED_STATES = (ResourceState.REGISTERED, ResourceState.ACTIVE)
PUSH = TelemetryScan.Push

# One statement: aggregate every streamed resource of the market (members -> their latest heartbeat), claim
# the instant, and insert the samples only if the claim was ours. The aggregate is computed before the claim,
# so a second scan of a claimed instant costs one aggregation and writes nothing; the loop never asks twice.
_SCAN_SQL = """
WITH agg AS MATERIALIZED (
    SELECT r.id AS resource_id,
           round(coalesce(sum(x.grid_kw) FILTER (WHERE x.reporting), 0), 3)::float8 AS kw,
           count(*) FILTER (WHERE x.reporting) AS reporting,
           count(x.resource_id) AS expected
    FROM aggregator_virtualresource r
    LEFT JOIN (
        SELECT m.resource_id,
               coalesce(st.online AND st.power_kw IS NOT NULL
                        AND st.last_seen_at >= %(at)s - make_interval(
                            secs => greatest(2 * d.telemetry_interval_seconds, 2 * %(scan)s)), false) AS reporting,
               CASE WHEN st.grid_status IN ('islanded', 'outage') THEN 0 ELSE st.power_kw END AS grid_kw
        FROM aggregator_resourcemembership m
        JOIN aggregator_virtualresource mr ON mr.id = m.resource_id
        JOIN enrollment_device d ON d.id = m.device_id
        LEFT JOIN enrollment_devicestatus st ON st.device_id = m.device_id
        WHERE m.left_at IS NULL AND mr.market_id = %(market)s AND mr.state = ANY(%(states)s)
    ) x ON x.resource_id = r.id
    WHERE r.market_id = %(market)s AND r.state = ANY(%(states)s)
    GROUP BY r.id
), claim AS (
    INSERT INTO market_telemetryscan (market_id, at, scanned_at, samples, push_state, push_attempts, push_error)
    SELECT %(market)s, %(at)s, statement_timestamp(), (SELECT count(*) FROM agg),
           CASE WHEN EXISTS (SELECT FROM market_marketconnection c
                             WHERE c.market_id = %(market)s AND c.enabled AND c.telemetry_push_url <> '')
                THEN 'pending' ELSE 'none' END,
           0, ''
    ON CONFLICT (market_id, at) DO NOTHING
    RETURNING id, push_state
), inserted AS (
    INSERT INTO market_telemetrysample (resource_id, at, kw, devices_reporting, devices_expected, quality)
    SELECT resource_id, %(at)s, kw, reporting, expected,
           CASE WHEN reporting = 0 THEN 'none'
                WHEN reporting * 100 < %(min_pct)s * expected THEN 'poor'
                ELSE 'good' END
    FROM agg
    WHERE EXISTS (SELECT FROM claim)
    ON CONFLICT (resource_id, at) DO NOTHING
    RETURNING 1
)
SELECT (SELECT push_state FROM claim), (SELECT count(*) FROM inserted)
"""


@dataclass(frozen=True)
class ScanResult:
    market_id: int
    at: datetime
    claimed: bool  # False: the instant had been scanned already; nothing was written
    samples: int
    push_pending: bool


def scan(*, market: Market, at: datetime) -> ScanResult:
    """Aggregate and store the telemetry of every registered/active resource of `market` at the grid instant at
    or before `at` (see the module's docstring for what counts). Idempotent per instant."""
    instant = grid_instant(at, market.telemetry_scan_seconds)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _SCAN_SQL,
            {
                "market": market.pk,
                "at": instant,
                "scan": market.telemetry_scan_seconds,
                "min_pct": market.telemetry_min_reporting_pct,
                "states": list(STREAMED_STATES),
            },
        )
        push_state, samples = cursor.fetchone()
    return ScanResult(
        market_id=market.pk,
        at=instant,
        claimed=push_state is not None,
        samples=samples,
        push_pending=push_state == PUSH.PENDING,
    )


# --- push ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushOutcome:
    scans: int  # how many scans' samples the request carried (0: nothing to send, no request made)
    samples: int
    error: str | None  # None: the market took them (or there was nothing to send)


WIRE_FIELDS = ("at", "resource__market_resource_id", "kw", "devices_reporting", "devices_expected", "quality")


def wire_samples(rows, *, zone: ZoneInfo) -> list[dict]:
    """Samples as the market reads them (outbound API and push), from rows of WIRE_FIELDS; times in the market's
    own zone, with their offset."""
    return [
        {
            "resource": ref,
            "at": sampled_at.astimezone(zone).isoformat(),
            "kw": kw,
            "devices_reporting": reporting,
            "devices_expected": expected,
            "quality": quality,
        }
        for sampled_at, ref, kw, reporting, expected, quality in rows
    ]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect is an error: the bearer token goes to the configured URL only


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post(url: str, body: bytes, token: str | None) -> str | None:
    """POST once with a short timeout; None on a 2xx answer, else what went wrong (fits push_error)."""
    headers = {"Content-Type": "application/json", "User-Agent": "vpp-aggregator-telemetry/1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _OPENER.open(request, timeout=settings.MARKET_TELEMETRY_PUSH_TIMEOUT_SECONDS) as response:
            response.read(1024)
        return None
    except urllib.error.HTTPError as exc:
        exc.close()
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            return "timed out"
        return f"{type(reason).__name__}: {reason}"[:200]


def push(*, market: Market, at: datetime) -> PushOutcome:
    """POST the samples of the market's scans not yet taken, from the last MARKET_TELEMETRY_PUSH_WINDOW_SECONDS
    up to `at`, in one request to the connection's telemetry_push_url (body: {"market": code, "samples":
    [{resource, at, kw, devices_reporting, devices_expected, quality}]}, bearer token from the environment
    variable telemetry_token_env names).

    The outcome is recorded on each scan (push_state, push_attempts, pushed_at, push_error): a failed scan's
    samples go again with the next push while inside the window, then the scan is marked expired; the market
    has moved on, and a value that old is not worth sending. Not one transaction on purpose: the claim (state
    sending) commits before the request goes, so a second pusher of the market takes none of them meanwhile."""
    window_start = at - timedelta(seconds=settings.MARKET_TELEMETRY_PUSH_WINDOW_SECONDS)
    open_states = [PUSH.PENDING, PUSH.FAILED]
    TelemetryScan.objects.filter(
        market=market, push_state__in=[*open_states, PUSH.SENDING], at__lt=window_start
    ).update(push_state=PUSH.EXPIRED)
    conn = MarketConnection.objects.filter(market=market, enabled=True).exclude(telemetry_push_url="").first()
    if conn is None:
        TelemetryScan.objects.filter(market=market, push_state__in=open_states).update(push_state=PUSH.NOT_CONFIGURED)
        return PushOutcome(scans=0, samples=0, error=None)
    with connection.cursor() as cursor:  # claim them: a second pusher of the same market takes none
        cursor.execute(
            """
            UPDATE market_telemetryscan SET push_state = %s, push_attempts = push_attempts + 1
            WHERE market_id = %s AND push_state = ANY(%s) AND at >= %s AND at <= %s
            RETURNING id, at
            """,
            [PUSH.SENDING, market.pk, open_states, window_start, at],
        )
        claimed = dict(cursor.fetchall())
    if not claimed:
        return PushOutcome(scans=0, samples=0, error=None)
    rows = (
        TelemetrySample.objects.filter(resource__market=market, at__in=list(claimed.values()))
        .exclude(resource__market_resource_id="")  # the market could not tell whose it was
        .order_by("at", "resource_id")
        .values_list(*WIRE_FIELDS)
    )
    samples = wire_samples(rows, zone=ZoneInfo(market.time_zone))
    error = None
    if conn.telemetry_token_env and not os.environ.get(conn.telemetry_token_env):
        error = f"environment variable {conn.telemetry_token_env} is not set"[:200]
    else:
        body = json.dumps({"market": market.code, "samples": samples}).encode()
        token = os.environ.get(conn.telemetry_token_env) if conn.telemetry_token_env else None
        error = _post(conn.telemetry_push_url, body, token)
    ids = list(claimed)
    if error is None:
        TelemetryScan.objects.filter(pk__in=ids).update(push_state=PUSH.SENT, pushed_at=timezone.now(), push_error="")
    else:
        log.warning("telemetry push of %s to %s failed: %s", market.code, conn.telemetry_push_url, error)
        TelemetryScan.objects.filter(pk__in=ids).update(push_state=PUSH.FAILED, push_error=error)
    return PushOutcome(scans=len(ids), samples=len(samples), error=error)


# --- the scanning process ------------------------------------------------------------------------------------


def streaming_markets() -> list[Market]:
    """Markets with at least one registered or active resource: the ones whose telemetry is scanned."""
    has_resource = VirtualResource.objects.filter(market=OuterRef("pk"), state__in=STREAMED_STATES)
    return list(Market.objects.filter(Exists(has_resource)).order_by("pk"))


def _push_in_thread(market: Market, at: datetime) -> PushOutcome | None:
    """A push on a pool thread, on a connection of its own, closed afterwards: one connection per push (every
    few seconds at most), and none left open by threads the pool retires."""
    try:
        return push(market=market, at=at)
    except DatabaseError:
        log.exception("telemetry push of %s at %s could not be recorded", market.code, at.isoformat())
        return None
    finally:
        connection.close()


def stream(
    *,
    stop: threading.Event,
    clock: Callable[[], datetime] = timezone.now,
    max_sleep_seconds: float = 5.0,
    pushers: int = 4,
    on_scan: Callable[[ScanResult], None] | None = None,
    wait: Callable[[float], object] | None = None,
) -> None:
    """Scan every streamed market at each instant of its grid until `stop` is set (the stream_telemetry
    command). Markets and their scan rates are read again on every wake-up (at most `max_sleep_seconds`
    apart), so a new resource or a changed rate is picked up without a restart.

    When the process falls behind (a pause, PostgreSQL away) it scans the latest instant only: the ones it
    slept through stay missing. A push runs on the pool, one at a time per market; while a market's previous
    push is still out, the new scan waits (pending) and rides along with the next push inside the window.
    `clock` and `wait` (default: the stop event's) let a test drive the process's time."""
    wait = wait or stop.wait
    scanned_up_to: dict[int, datetime] = {}  # market -> the next instant it is due
    in_flight: dict[int, Future] = {}
    with ThreadPoolExecutor(max_workers=pushers, thread_name_prefix="telemetry-push") as pool:
        while not stop.is_set():
            try:
                markets = streaming_markets()
            except DatabaseError:
                log.exception("telemetry: cannot read the markets; trying again shortly")
                connection.close()
                wait(max_sleep_seconds)
                continue
            now = clock()
            for market in markets:
                if scanned_up_to.get(market.pk, now) > now:
                    continue
                try:
                    result = scan(market=market, at=now)
                except DatabaseError:
                    log.exception("telemetry scan of %s at %s failed", market.code, now.isoformat())
                    connection.close()
                    continue
                scanned_up_to[market.pk] = result.at + timedelta(seconds=market.telemetry_scan_seconds)
                if on_scan is not None:
                    on_scan(result)
                previous = in_flight.get(market.pk)
                if result.push_pending and (previous is None or previous.done()):
                    in_flight[market.pk] = pool.submit(_push_in_thread, market, result.at)
            due = [scanned_up_to[m.pk] for m in markets if m.pk in scanned_up_to]
            wake = min(due, default=now + timedelta(seconds=max_sleep_seconds))
            wait(min(max(0.0, (wake - clock()).total_seconds()), max_sleep_seconds))


# --- retention -----------------------------------------------------------------------------------------------


def prune(*, now: datetime | None = None, keep_days: int | None = None, batch: int = 10_000) -> int:
    """Delete samples (and scan records) older than `keep_days` (MARKET_TELEMETRY_KEEP_DAYS), `batch` rows per
    transaction so neither locks nor WAL pile up; returns how many samples went."""
    now = now or timezone.now()
    keep = settings.MARKET_TELEMETRY_KEEP_DAYS if keep_days is None else keep_days
    cutoff = now - timedelta(days=keep)
    removed = 0
    for table in ("market_telemetrysample", "market_telemetryscan"):
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE at < %s LIMIT %s)",
                    [cutoff, batch],
                )
                deleted = cursor.rowcount
            if table == "market_telemetrysample":
                removed += deleted
            if deleted < batch:
                break
    return removed


# --- selectors -----------------------------------------------------------------------------------------------


def samples_between(*, resources: QuerySet[VirtualResource], since: datetime, until: datetime) -> QuerySet:
    """Samples of these resources with since <= at < until, oldest first (one resource's in a row)."""
    return (
        TelemetrySample.objects.filter(resource__in=resources, at__gte=since, at__lt=until)
        .select_related("resource")
        .order_by("at", "resource_id")
    )
