"""The beat process, exactly one in the whole deployment: celery beat, started once this process holds the beat lock.

    python deploy/beat.py        (deploy/systemd/vpp-beat.service)

Two beats would each send every periodic task. The lock is a PostgreSQL session advisory lock in the
deployment's own database, held on a connection of its own for the life of the process: run this on two hosts
and the second waits, taking over within BEAT_LOCK_RETRY_SECONDS of the first one's death (PostgreSQL drops a
dead session's locks once it notices the connection gone; TCP keepalives below bound that). A watchdog checks
the lock's connection every few seconds and ends the process at once if it broke: with the session gone the
lock may already be another beat's, and this one must stop sending before the other starts.

BEAT_LOCK_RETRY_SECONDS (default 5): how often a waiting beat tries the lock, and how often the watchdog checks.
"""

import os
import sys
import threading
import time
from pathlib import Path

import psycopg

# Any fixed 64-bit number, the same for every beat of a deployment: "vpp-beat" in ASCII.
BEAT_LOCK_KEY = 0x7670702D62656174
EXIT_LOCK_LOST = 75  # EX_TEMPFAIL: the supervisor starts it again, to wait for the lock


def _connect() -> psycopg.Connection:
    return psycopg.connect(
        os.environ["DATABASE_URL"],
        autocommit=True,
        application_name="vpp-beat-lock",
        connect_timeout=5,
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=3,
        tcp_user_timeout=10_000,
    )


def hold_lock(retry_seconds: float) -> psycopg.Connection:
    """Wait for the beat lock; return the connection that holds it."""
    said = False
    while True:
        try:
            conn = _connect()
            if conn.execute("SELECT pg_try_advisory_lock(%s)", [BEAT_LOCK_KEY]).fetchone()[0]:
                print("beat lock taken: this is the deployment's beat", flush=True)
                return conn
            conn.close()
            if not said:
                print("another beat holds the beat lock; waiting to take over", flush=True)
                said = True
        except psycopg.OperationalError as exc:
            print(f"beat lock: the database is unreachable ({exc}); trying again", flush=True)
        time.sleep(retry_seconds)


def watch(conn: psycopg.Connection, interval: float) -> None:
    """End the process (not just this thread) the moment the lock's connection stops answering."""
    while True:
        time.sleep(interval)
        try:
            conn.execute("SELECT 1")
        except psycopg.Error as exc:
            print(f"beat lock lost with its connection ({exc}); stopping", file=sys.stderr, flush=True)
            os._exit(EXIT_LOCK_LOST)


def main() -> None:
    os.chdir(Path(__file__).resolve().parents[1])
    sys.path.insert(0, os.getcwd())
    retry = float(os.environ.get("BEAT_LOCK_RETRY_SECONDS", "5"))
    conn = hold_lock(retry)
    threading.Thread(target=watch, args=(conn, retry), daemon=True, name="beat-lock-watchdog").start()
    from aggregator.celery import app

    loglevel = os.environ.get("LOG_LEVEL", "INFO")
    app.start(["beat", "--loglevel", loglevel, *sys.argv[1:]])  # the scheduler is CELERY_BEAT_SCHEDULER's


if __name__ == "__main__":
    main()
