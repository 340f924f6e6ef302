"""The command poll's bare limit: a WSGI callable answering every request with one Redis GET's value.

Served by the same web server as the platform (deploy/web.py's granian command and shape, this application in
place of aggregator.wsgi): what a poll answered from Redis would cost with no token check, no routing, no
headers to speak of. The body is a real poll answer the benchmark stored under BENCH_BARE_POLL_KEY.
"""

import os

import redis

_client = redis.Redis.from_url(os.environ["REDIS_URL"])
_key = os.environ.get("BENCH_BARE_POLL_KEY", "bench:bare-poll")


def application(environ, start_response):
    body = _client.get(_key) or b""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
