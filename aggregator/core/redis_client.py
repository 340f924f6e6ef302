"""The one Redis client a process shares for its hot paths (rate counters, the poll cache).

Redis only makes the device API faster, so each of its uses there catches `redis.RedisError`
and carries on without it: the rate limit is not applied, the poll reads PostgreSQL.
"""

import functools

from django.core.cache import cache


@functools.cache
def client():
    """The cache's Redis client, made once per process (making one per request costs more than the round trip)."""
    return cache._cache.get_client(None, write=True)
