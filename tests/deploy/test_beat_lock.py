"""deploy/beat.py: two beats started, one runs; kill it and the other takes over."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from deploy.beat import BEAT_LOCK_KEY
from tests.redis_server import RedisServer

RUNNING = b"beat: Starting..."


class Beat:
    def __init__(self, log: Path, redis_url: str):
        parts = urlsplit(os.environ["DATABASE_URL"])
        database = urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))
        # Its periodic tasks go to a Redis of the test's own, where no worker takes them.
        env = {**os.environ, "DATABASE_URL": database, "REDIS_URL": redis_url, "BEAT_LOCK_RETRY_SECONDS": "0.5"}
        env.pop("CELERY_BROKER_URL", None)
        self.log = log
        script = Path(settings.BASE_DIR) / "deploy" / "beat.py"
        self.process = subprocess.Popen(
            [sys.executable, str(script)], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )

    def says(self, text: bytes) -> bool:
        return text in self.log.read_bytes()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _lock_holders() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((classid::bigint << 32) | objid::bigint) = %s",
            [BEAT_LOCK_KEY],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_only_one_beat_runs_and_a_waiting_one_takes_over_when_it_dies(tmp_path):
    redis = RedisServer(tmp_path)
    redis.start()
    first = Beat(tmp_path / "first.log", redis.url)
    second = None
    try:
        _wait(lambda: first.says(RUNNING) or first.process.poll() is not None, 60, "the first beat to start")
        assert first.process.poll() is None, first.log.read_text()
        second = Beat(tmp_path / "second.log", redis.url)
        _wait(lambda: second.says(b"waiting to take over"), 60, "the second beat to wait for the lock")
        time.sleep(2)  # several of its tries
        assert not second.says(RUNNING) and second.process.poll() is None
        assert _lock_holders() == 1

        first.stop()
        _wait(lambda: second.says(RUNNING), 30, "the second beat to take over")
        assert second.process.poll() is None, second.log.read_text()
        assert _lock_holders() == 1
    finally:
        first.stop()
        if second:
            second.stop()
        redis.stop()
