"""The web process: granian serving aggregator.wsgi, configured from the environment.

    python deploy/web.py        (the Procfile's web line)

granian parses HTTP in Rust and hands each request to a pool of Python threads per
worker process. On the 2-core development machine it answered a do-nothing WSGI
application about seven times as often per second as gunicorn's threaded worker
(17,500 against 2,500 requests/s), which is what let the command poll pass 2,000/s.

PORT / HOST (or BIND=host:port), WEB_CONCURRENCY worker processes (default: the CPU
count, at least 2), WEB_THREADS Python threads per worker (default 4; each holds its
own database connection), WEB_MAX_REQUESTS_SECONDS recycles each worker after that
many seconds (default 6 hours; 0 never), LOG_LEVEL.
"""

import os
import sys
from pathlib import Path


def command() -> list[str]:
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    if os.environ.get("BIND"):
        host, _, port = os.environ["BIND"].rpartition(":")
    workers = os.environ.get("WEB_CONCURRENCY") or str(max(2, os.cpu_count() or 1))
    args = [
        str(Path(sys.executable).with_name("granian")),
        "--interface",
        "wsgi",
        "--host",
        host,
        "--port",
        port,
        "--workers",
        workers,
        "--blocking-threads",
        os.environ.get("WEB_THREADS", "4"),
        "--respawn-failed-workers",
        "--workers-kill-timeout",
        "20",
        "--log-level",
        os.environ.get("LOG_LEVEL", "INFO").lower(),
    ]
    lifetime = int(os.environ.get("WEB_MAX_REQUESTS_SECONDS", str(6 * 3600)))
    if lifetime:
        args += ["--workers-lifetime", str(max(lifetime, 60))]
    if os.environ.get("WEB_ACCESS_LOG", "true").lower() != "false":
        args += ["--access-log"]
    return [*args, "aggregator.wsgi:application"]


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    cmd = command()
    os.execv(cmd[0], cmd)
