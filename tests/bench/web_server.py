"""The real web server the HTTP benchmarks talk to: the production web process (deploy/web.py) on a free port."""

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# deploy/web.py's granian command with another WSGI application in place of the platform's.
_OTHER_APPLICATION = (
    "import os, sys; sys.path.insert(0, os.getcwd()); from deploy.web import command; "
    "c = command()[:-1] + [sys.argv[1]]; os.execv(c[0], c)"
)


def start(port: int, application: str | None = None, **env) -> subprocess.Popen:
    """The web process on `port` (BENCH_WEB_WORKERS workers, BENCH_WEB_THREADS threads each), once /healthz answers.

    `application` ("module:callable"): the same server and shape serving that WSGI application instead.
    """
    env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": os.environ.get("BENCH_WEB_WORKERS", "3"),
        "WEB_THREADS": os.environ.get("BENCH_WEB_THREADS", "2"),
        "LOG_LEVEL": "WARNING",
        "WEB_ACCESS_LOG": "false",
        **env,
    }
    log = tempfile.TemporaryFile()  # noqa: SIM115  (kept open for the server's life) not a pipe: a full pipe would block the server's logging
    command = (
        [sys.executable, "-c", _OTHER_APPLICATION, application] if application else [sys.executable, "deploy/web.py"]
    )
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    process.log = log
    process.shape = f"{env['WEB_CONCURRENCY']} worker processes x {env['WEB_THREADS']} threads"
    for _ in range(200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    log.seek(0)
    raise SystemExit(f"bench server did not start: {log.read()[-2000:]!r}")


def errors(process: subprocess.Popen) -> list[str]:
    """The server's logged errors, once it has stopped."""
    process.log.seek(0)
    return [line for line in process.log.read().decode(errors="replace").splitlines() if "Error" in line]
