"""Health probes for supervisors: is this host's web process answering, is the platform ready, is a worker alive.

    python deploy/healthcheck.py web [--wait SECONDS]   any HTTP answer from /healthz (liveness: a 503 is alive)
    python deploy/healthcheck.py ready                   /healthz answers 200 (PostgreSQL and Redis answer)
    python deploy/healthcheck.py worker                  /healthz?require=worker answers 200 (a worker replied)

The web address is PORT / HOST (or BIND), as deploy/web.py reads them. Exit status 0 when healthy, 1 otherwise,
with the reason on stderr. Only the standard library: it runs before anything else is known to work.
"""

import argparse
import os
import sys
import time
import urllib.error
import urllib.request

PATHS = {"web": "/healthz", "ready": "/healthz", "worker": "/healthz?require=worker"}


def base_url() -> str:
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    if os.environ.get("BIND"):
        host, _, port = os.environ["BIND"].rpartition(":")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def probe(check: str, *, timeout: float = 5.0) -> str | None:
    """None when healthy, else why not."""
    request = urllib.request.Request(base_url() + PATHS[check], headers={"Host": "localhost"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return f"no answer from {base_url()}: {exc}"
    if check == "web":
        return None  # it answered: the process is alive, whatever its dependencies say
    return None if status == 200 else f"{PATHS[check]} answered {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=sorted(PATHS))
    parser.add_argument("--wait", type=float, default=0.0, help="keep trying this many seconds before failing")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.wait
    while (problem := probe(args.check)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
