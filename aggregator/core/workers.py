"""Celery workers' heartbeats in Redis: the health page lists the live workers with one read.

Each worker records its heartbeat (every 2 s by default), so nothing has to wait out a broadcast
ping's timeout to learn which workers are up.
"""

import time

from aggregator.core.redis_client import client

WORKER_KEY_PREFIX = "vpp:worker:"
WORKER_KEY_TTL = 10  # seconds: five missed heartbeats and the worker counts as gone


def record_heartbeat(sender, **kwargs) -> None:
    """Celery's heartbeat_sent receiver (connected in aggregator/celery.py)."""
    key = WORKER_KEY_PREFIX + sender.eventer.hostname
    # The heart's first beat (worker-online) and its last (worker-offline) both run with no timer set;
    # the last is the one after an earlier beat.
    going_offline = sender.tref is None and getattr(sender, "vpp_seen", False)
    sender.vpp_seen = True
    if going_offline:
        client().delete(key)
    else:
        client().set(key, f"{time.time():.3f}", ex=WORKER_KEY_TTL)


def live_workers() -> dict[str, float]:
    """The workers whose heartbeat is recent, with the time of their last beat (epoch seconds)."""
    redis = client()
    keys = sorted(redis.scan_iter(match=WORKER_KEY_PREFIX + "*", count=1000))
    if not keys:
        return {}
    return {
        key.decode()[len(WORKER_KEY_PREFIX) :]: float(value)
        for key, value in zip(keys, redis.mget(keys))
        if value is not None
    }
