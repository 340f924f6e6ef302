"""Each device token's last command-poll answer, held in Redis so a repeated poll skips PostgreSQL.

A device polls every few seconds while an event is on, and almost every poll returns
what the previous one did. The first poll (a miss) runs the full statement in
`dispatch.api.poll` and stores its commands here under the token's digest; the
following polls are answered from Redis in one round trip (which also counts the
request against the token's rate limit) and a lookup of the token in PostgreSQL.

Why a stored answer is never served after the data it came from changed:
- one counter, the clock, orders fills and changes. A fill takes the clock *before*
  reading PostgreSQL and stores the answer with that number; a writer takes the clock
  *after* committing and sets each touched device's (or credential's) mark to it, never
  lowering a mark;
- an answer is served only while no mark of its device or credential is above its number.
  A mark below it was taken after a commit that precedes the fill's read, so the answer
  already shows that change; a mark above it may not be shown, so the poll is a miss.
Writers therefore call `changed()` for every device whose live commands they touch (and
credential saves do, through a signal). It marks at once and again after commit: the
second mark is the one the argument rests on; the first serves a reader on the writer's own
connection, which sees the uncommitted change (tests run inside one transaction).
If a mark is lost (the process dies between commit and mark, Redis restarts from an older
snapshot), an answer lives at most DISPATCH_POLL_CACHE_SECONDS, and never past its first
command's expiry or the credential's. Whether the token is still good is never taken from
here: `dispatch.api.poll` asks PostgreSQL on every hit (a credential's mark only turns a
revocation into a miss sooner).

Gateway tokens are not cached: a gateway's answer covers a changing set of devices, and
gateways are few beside their devices.
"""

import functools
import logging
from datetime import datetime

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from aggregator.core import redis_client

log = logging.getLogger(__name__)

# Hit: the answer if no mark of its device or credential is above its number, counting the
# request against the token's fixed window only then (a miss is counted by the full path).
# KEYS: answer, rate counter. ARGV: rate window seconds, rate limit, mark key prefix.
# The answer reads "<clock>|<device id>|<key id>|<commands JSON>".
_HIT = """
local e = redis.call('GET', KEYS[1])
if not e then return false end
local a = string.find(e, '|', 1, true)
local b = string.find(e, '|', a + 1, true)
local c = string.find(e, '|', b + 1, true)
local v = tonumber(string.sub(e, 1, a - 1))
local marks = redis.call('MGET', ARGV[3] .. 'd:' .. string.sub(e, a + 1, b - 1), ARGV[3] .. 'c:' .. string.sub(e, b + 1, c - 1))
for i = 1, 2 do
    if marks[i] and tonumber(marks[i]) > v then return false end
end
redis.call('SET', KEYS[2], 0, 'EX', ARGV[1], 'NX')
local n = redis.call('INCR', KEYS[2])
if n > tonumber(ARGV[2]) then return {0, redis.call('TTL', KEYS[2])} end
return {1, string.sub(e, c + 1)}
"""

# Raise each mark to ARGV[1] unless it is already higher. KEYS: marks. ARGV: clock, seconds to keep.
_MARK = """
local v = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
    local m = redis.call('GET', k)
    if not m or tonumber(m) < v then redis.call('SET', k, v, 'EX', ARGV[2]) end
end
return #KEYS
"""

MARK_BATCH = 5_000


def enabled() -> bool:
    return settings.DISPATCH_POLL_CACHE_SECONDS > 0


@functools.cache
def _keys() -> tuple[str, str]:
    """(answer prefix, mark prefix), under the cache's key prefix like the rate counters."""
    return cache.make_key("dispatch:poll:a:"), cache.make_key("dispatch:poll:m:")


@functools.cache
def _scripts():
    client = redis_client.client()
    return client.register_script(_HIT), client.register_script(_MARK)


def clock() -> int:
    return redis_client.client().incr(cache.make_key("dispatch:poll:clock"))


def fill_clock() -> int | None:
    """The clock for a fill, taken before it reads PostgreSQL; None with Redis unreachable (nothing is stored)."""
    if not enabled():
        return None
    try:
        return clock()
    except redis.RedisError:
        log.warning("poll cache unavailable; answering from PostgreSQL", exc_info=True)
        return None


def answer(*, digest: str, rate_key: str, limit: int, window: int) -> tuple[bool, str | int] | None:
    """(True, commands JSON) or (False, seconds to wait: throttled) from a stored answer; None: a miss."""
    if not enabled():
        return None
    hit, _ = _scripts()
    try:
        found = hit(keys=[_keys()[0] + digest, rate_key], args=[window, limit, _keys()[1]])
    except redis.RedisError:
        log.warning("poll cache unavailable; answering from PostgreSQL", exc_info=True)
        return None
    if not found:
        return None
    ok, value = found
    return (True, value.decode()) if ok else (False, max(int(value), 1))


def store(*, digest: str, version: int, device_id: int, key_id: str, commands: str, until: datetime) -> None:
    """Keep a full-path answer until `until` (capped at DISPATCH_POLL_CACHE_SECONDS from now)."""
    milliseconds = int(until.timestamp() * 1000)
    try:
        redis_client.client().set(_keys()[0] + digest, f"{version}|{device_id}|{key_id}|{commands}", pxat=milliseconds)
    except redis.RedisError:
        log.warning("poll cache unavailable; answer not kept", exc_info=True)


def _mark(keys: list[str]) -> None:
    _, mark = _scripts()
    keep = settings.DISPATCH_POLL_CACHE_SECONDS * 2 + 60  # outlives any answer it could contradict
    try:
        version = clock()
        for i in range(0, len(keys), MARK_BATCH):
            mark(keys=keys[i : i + MARK_BATCH], args=[version, keep])
    except redis.RedisError:
        log.error(
            "poll cache: %d marks lost; stored answers may lag for up to %s s",
            len(keys),
            settings.DISPATCH_POLL_CACHE_SECONDS,
            exc_info=True,
        )


def changed(*, devices=(), credentials=()) -> None:
    """Devices whose live commands changed, credentials whose validity changed: their stored answers go stale."""
    if not enabled():
        return
    prefix = _keys()[1]
    keys = [f"{prefix}d:{d}" for d in devices] + [f"{prefix}c:{k}" for k in credentials]
    if not keys:
        return
    _mark(keys)
    transaction.on_commit(lambda: _mark(keys))
