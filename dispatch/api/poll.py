"""The command poll, the device API's hottest path: one Redis round trip, or one SQL statement.

Every device polls every few seconds while an event is on, so the poll skips DRF's
request machinery. A device token's repeated poll is answered from its stored answer
(`dispatch.poll_cache`), which also counts the request against the rate limit; the
WSGI entry point (`aggregator.wsgi`) serves such a hit before Django's middleware.
The stored answer holds the commands only: whether the token is still good is asked of
PostgreSQL on every poll (one lookup by its unique key id), because a revocation's mark
in Redis can be lost (a restart from an older snapshot, a process dying after the commit)
and a cache may make a poll faster, never make a revoked token valid again.
Otherwise one statement checks the token, resolves the devices, reads the live
commands as JSON, stamps first deliveries and touches the token's last use; its answer
is then stored for the next poll. Refusals use the API's error body, and anything
unusual (a bad token, a bad device id) falls back to the general authentication code
for its precise message.
"""

import json
from datetime import timedelta

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse
from django.utils import timezone

from aggregator.core.access import tokens
from aggregator.core.access.authentication import bearer_token
from aggregator.core.access.devices import count_request, rate_limit
from aggregator.core.api.errors import body
from dispatch import poll_cache
from dispatch.push import COMMAND_JSON

_POLL = (
    """
WITH cred AS (
    SELECT id, device_id, gateway_id, last_used_at, expires_at FROM enrollment_devicecredential
    WHERE key_id = %(key)s AND digest = %(digest)s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > %(now)s)
), devices AS (
    SELECT device_id AS id FROM cred WHERE device_id IS NOT NULL
    UNION ALL
    SELECT d.id FROM enrollment_device d JOIN cred ON d.gateway_id = cred.gateway_id
    WHERE %(device)s::bigint IS NULL OR d.id = %(device)s::bigint
), live AS (
    SELECT c.id, c.event_id, c.device_id, c.sequence, c.kind, c.schedule, c.ramp_seconds, c.not_before, c.expires_at,
           c.status, c.created_at, c.delivered_at
    FROM dispatch_devicecommand c
    WHERE c.device_id IN (SELECT id FROM devices) AND c.status IN ('pending', 'accepted') AND c.expires_at > %(now)s
), seen AS (
    UPDATE dispatch_devicecommand c SET delivered_at = %(now)s FROM live WHERE c.id = live.id AND live.delivered_at IS NULL
), touched AS (
    UPDATE enrollment_devicecredential t SET last_used_at = %(now)s FROM cred
    WHERE t.id = cred.id AND (cred.last_used_at IS NULL OR cred.last_used_at < %(stale)s)
)
-- The stamps and the touch are bookkeeping: a crash may lose the last few, and waiting for
-- the WAL flush would make every first poll wait on the disk.
SELECT set_config('synchronous_commit', 'off', true), (SELECT count(*) FROM cred), (SELECT count(*) FROM devices), (SELECT device_id FROM cred),
       (SELECT least(min(expires_at), (SELECT expires_at FROM cred)) FROM live),
       (SELECT coalesce(json_agg("""
    + COMMAND_JSON
    + """ ORDER BY device_id, created_at), '[]')::text FROM live c)
"""
)


_VALID = """
SELECT 1 FROM enrollment_devicecredential
WHERE key_id = %(key)s AND digest = %(digest)s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > %(now)s)
"""


def _still_valid(key_id: str, digest: str) -> bool | None:
    """Whether PostgreSQL holds the token as usable now; None if it cannot be asked."""
    try:
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(_VALID, {"key": key_id, "digest": digest, "now": timezone.now()}, prepare=True)
            return cursor.fetchone() is not None
    except (DatabaseError, psycopg.Error):
        # The full path meets the same failure and answers it; Django's request start then
        # replaces this thread's broken connection.
        connection.errors_occurred = True
        return None


def cached(plaintext: str) -> tuple[int, str, dict] | None:
    """(status, JSON body, headers) of a device token's poll from its stored answer; None: take the full path."""
    parsed = tokens.parse(plaintext)
    if parsed is None or parsed[0] != "dev":
        return None
    key, limit, window = rate_limit(kind="device", key_id=parsed[1])
    digest = tokens.digest(plaintext)
    found = poll_cache.answer(digest=digest, rate_key=key, limit=limit, window=window)
    if found is None or not _still_valid(parsed[1], digest):
        return None  # the full path refuses a token that is no longer good, with its precise message
    ok, value = found
    if not ok:
        message = f"Request was throttled. Expected available in {value} seconds."
        return 429, _error(429, "throttled", message), {"Retry-After": str(value)}
    return 200, _answer(value, timezone.now()), {}


def _answer(commands: str, now) -> str:
    after = settings.DISPATCH_POLL_SECONDS["live" if commands != "[]" else "idle"]
    return f'{{"commands":{commands},"poll_after_seconds":{after},"server_time":"{now.isoformat()}"}}'


def _error(status: int, code: str, message: str, field: str | None = None) -> str:
    return json.dumps(body(code, message, status, [{"field": field, "code": code, "message": message}]))


def _refuse(
    status: int, code: str, message: str, field: str | None = None, headers: dict | None = None
) -> HttpResponse:
    response = HttpResponse(_error(status, code, message, field), status=status, content_type="application/json")
    if status == 401:
        response["WWW-Authenticate"] = "Bearer"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def poll(request) -> HttpResponse:
    plaintext = bearer_token(request)
    if plaintext is None:
        return _refuse(401, "not_authenticated", "Authentication credentials were not provided.")
    parsed = tokens.parse(plaintext)
    if parsed is None:
        return _refuse(401, "invalid_token", "Malformed token.")
    kind, key_id = parsed
    if kind not in ("dev", "gw"):
        return _refuse(401, "wrong_token_kind", "The device API takes device or gateway tokens.")
    raw = request.GET.get("device")
    if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) < 19):
        return _refuse(400, "unknown_device", "Name one of your devices.", "device")
    cacheable = kind == "dev" and raw is None and poll_cache.enabled()
    if cacheable:
        hit = cached(plaintext)
        if hit is not None:
            status, content, headers = hit
            response = HttpResponse(content, status=status, content_type="application/json")
            for name, value in headers.items():
                response[name] = value
            return response
        version = poll_cache.fill_clock()  # before the read: see dispatch.poll_cache
    now = timezone.now()
    digest = tokens.digest(plaintext)
    connection.ensure_connection()
    # A server-side-binding cursor, prepared: PostgreSQL parses and plans the statement once
    # per connection (Django turns psycopg's automatic preparation off).
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            _POLL,
            {
                "key": key_id,
                "digest": digest,
                "now": now,
                "stale": now - tokens.LAST_USED_RESOLUTION,
                "device": int(raw) if raw else None,
            },
            prepare=True,
        )
        _, found, devices, device_id, first_expiry, commands = cursor.fetchone()
    if not found:
        exists = connection.cursor()
        with exists:
            exists.execute("SELECT digest FROM enrollment_devicecredential WHERE key_id = %s", [key_id])
            row = exists.fetchone()
        if row is None or row[0] != digest:
            return _refuse(401, "invalid_token", "Invalid token.")
        return _refuse(401, "token_revoked", "Token revoked or expired.")
    # Counted once the token is known good, as the general throttle does.
    allowed, wait = count_request(kind="device" if kind == "dev" else "gateway", key_id=key_id)
    if not allowed:
        return _refuse(
            429,
            "throttled",
            f"Request was throttled. Expected available in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )
    if raw and not devices:
        return _refuse(400, "unknown_device", "Name one of your devices.", "device")
    if cacheable and version is not None:
        until = now + timedelta(seconds=settings.DISPATCH_POLL_CACHE_SECONDS)
        poll_cache.store(
            digest=digest,
            version=version,
            device_id=device_id,
            key_id=key_id,
            commands=commands,
            until=min(until, first_expiry) if first_expiry else until,
        )
    return HttpResponse(_answer(commands, now), content_type="application/json")
