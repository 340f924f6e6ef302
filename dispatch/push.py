"""Signed push of new commands to a device's or gateway's own HTTPS endpoint.

Polling stays the source of truth; a push lets a device act before its next poll. After
each fan-out chunk commits, one task posts each configured endpoint the chunk's live
commands for its devices (a gateway's endpoint gets all of its devices' in one request),
in the poll answer's shape. A failed post is retried three times with growing delays and
recorded on the endpoint; a device acts on a command id once, so a repeat is harmless.

Signature (as the receiving device checks it):
    X-VPP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." + raw body)>
    X-VPP-Endpoint: device:<id> | gateway:<id>
The key is per device or gateway, derived from DISPATCH_PUSH_SECRET (so it is stored
nowhere) and handed to the device when it registers its endpoint. A receiver should
refuse a t more than five minutes from its clock (replays).

Endpoints must be https and resolve to public addresses, checked at registration and
again at each send (the platform must not be turned against its own network), unless DISPATCH_PUSH_ALLOW_HTTP / _ALLOW_PRIVATE say
otherwise (development and tests). A redirect is never followed (its target was never
checked, and following it would carry the signature there): a 3xx is a failed delivery.
What went wrong is recorded as the status code or a fixed reason, never as text from the
remote end, since the device reads it back (GET push) and the address may not be its own.
"""

import hashlib
import hmac
import http.client
import ipaddress
import logging
import socket
import ssl
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.utils import timezone

from aggregator.core.errors import DomainError, Problem
from dispatch.models import PushEndpoint

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5
RETRY_DELAYS = (5, 30, 120)  # seconds before the 2nd, 3rd and 4th attempt

# The poll answer's shape of a command (dispatch.api.poll builds the same object).
COMMAND_JSON = """json_build_object(
    'id', c.id, 'event', c.event_id, 'device', c.device_id, 'sequence', c.sequence, 'kind', c.kind, 'schedule', c.schedule,
    'ramp_seconds', c.ramp_seconds, 'not_before', c.not_before, 'expires_at', c.expires_at, 'status', c.status,
    'issued_at', c.created_at)"""

_CHUNK_TARGETS = f"""
WITH chunk AS (
    SELECT c.*, d.gateway_id FROM dispatch_devicecommand c JOIN enrollment_device d ON d.id = c.device_id
    WHERE c.event_id = %(event)s AND c.round = %(round)s AND c.device_id BETWEEN %(first)s AND %(last)s
      AND c.status IN ('pending', 'accepted')
), targets AS (
    SELECT p.id AS endpoint, c.* FROM chunk c JOIN dispatch_pushendpoint p ON p.device_id = c.device_id
    UNION ALL
    SELECT p.id, c.* FROM chunk c JOIN dispatch_pushendpoint p ON p.gateway_id = c.gateway_id
)
SELECT c.endpoint, json_agg({COMMAND_JSON} ORDER BY c.device_id)::text FROM targets c GROUP BY c.endpoint
"""


class PushRefused(DomainError):
    status = 400


def owner(endpoint: PushEndpoint) -> str:
    return f"device:{endpoint.device_id}" if endpoint.device_id else f"gateway:{endpoint.gateway_id}"


def signing_key(owner_name: str) -> str:
    return hmac.new(settings.DISPATCH_PUSH_SECRET.encode(), f"push:{owner_name}".encode(), hashlib.sha256).hexdigest()


def signature(key: str, body: bytes, at: int) -> str:
    mac = hmac.new(key.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def check_url(url: str, field: str = "url") -> None:
    """An https URL on the public internet (or as the development settings allow), else PushRefused naming `field`."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise PushRefused(Problem("invalid_url", "An absolute https URL.", field))
    if parts.scheme == "http" and not settings.DISPATCH_PUSH_ALLOW_HTTP:
        raise PushRefused(Problem("insecure_url", "Push endpoints must use https.", field))
    if settings.DISPATCH_PUSH_ALLOW_PRIVATE:
        return
    try:
        addresses = {
            info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
        }
    except (socket.gaierror, UnicodeError):
        raise PushRefused(Problem("unresolvable_url", "The endpoint's host name does not resolve.", field)) from None
    if any(not ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses):
        raise PushRefused(Problem("private_url", "The endpoint must be reachable on the public internet.", field))


def register(*, url: str, device_id: int | None = None, gateway_id: int | None = None) -> tuple[PushEndpoint, str]:
    """Set (or replace) the caller's endpoint; returns it and the signing key."""
    check_url(url)
    endpoint, _ = PushEndpoint.objects.update_or_create(
        device_id=device_id,
        gateway_id=gateway_id,
        defaults={"url": url, "last_error": "", "last_failure_at": None, "last_success_at": None},
    )
    return endpoint, signing_key(owner(endpoint))


def chunk_bodies(*, event_id: int, round_number: int, first_device: int, last_device: int) -> dict[int, bytes]:
    """Endpoint id -> the body to post it for one fan-out chunk."""
    with connection.cursor() as cursor:
        cursor.execute(
            _CHUNK_TARGETS, {"event": event_id, "round": round_number, "first": first_device, "last": last_device}
        )
        rows = cursor.fetchall()
    return {endpoint: f'{{"commands":{commands}}}'.encode() for endpoint, commands in rows}


def post(endpoint: PushEndpoint, body: bytes) -> str | None:
    """Post once; None on a 2xx answer, else what went wrong."""
    at = int(time.time())
    name = owner(endpoint)
    return send(endpoint.url, body, {"X-VPP-Endpoint": name, "X-VPP-Signature": signature(signing_key(name), body, at)})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx code


_OPENER = urllib.request.build_opener(_NoRedirect)


def send(url: str, body: bytes, headers: dict[str, str]) -> str | None:
    """POST a JSON body to a checked URL; None on a 2xx answer, else what went wrong (a fixed text)."""
    try:
        check_url(url)  # again at each send: a host name may resolve elsewhere since it was registered
    except PushRefused as refused:
        return f"refused: {refused.problems[0].message}"
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "vpp-aggregator-push/1", **headers},
    )
    try:
        with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
            response.read(1024)
        return None
    except urllib.error.HTTPError as exc:
        exc.close()
        return f"HTTP {exc.code}: redirects are not followed" if 300 <= exc.code < 400 else f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        log.info("push to %s failed: %r", url, reason)
        if isinstance(reason, TimeoutError):
            return "timed out"
        if isinstance(reason, ssl.SSLError):
            return "TLS handshake failed"
        if isinstance(reason, http.client.HTTPException):
            return "invalid HTTP response"
        if isinstance(reason, socket.gaierror):
            return "host name does not resolve"
        return "connection failed"


def deliver(bodies: dict[int, bytes]) -> dict[int, str]:
    """Post every body concurrently; record each outcome; return the failures (endpoint id -> error)."""
    endpoints = PushEndpoint.objects.in_bulk(list(bodies))
    with ThreadPoolExecutor(max_workers=min(16, len(endpoints) or 1)) as pool:
        outcomes = dict(zip(endpoints, pool.map(lambda e: post(e, bodies[e.pk]), endpoints.values())))
    now = timezone.now()
    ok = [pk for pk, error in outcomes.items() if error is None]
    PushEndpoint.objects.filter(pk__in=ok).update(last_success_at=now)
    failed = {pk: error for pk, error in outcomes.items() if error is not None}
    for pk, error in failed.items():
        log.warning("push to endpoint %s failed: %s", pk, error)
        PushEndpoint.objects.filter(pk=pk).update(last_failure_at=now, last_error=error)
    return failed


def serves(device_ids: list[int]) -> bool:
    """Whether a chunk's devices may have push endpoints (any endpoint at all: the chunk's bodies say whose)."""
    return PushEndpoint.objects.exists()
