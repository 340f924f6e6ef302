"""A Redis server of a test's own, on a free port, for tests that stop or restart Redis.

The shared Redis serves every other test run; a test that takes Redis away does it to this one.
"""

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from celery import Celery

from aggregator.celery import app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """`redis-server` as a child process, without persistence: a restart comes back empty, as after a crash."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.log = directory / f"redis-{self.port}.log"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        assert executable, "redis-server is not on PATH"
        where = ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            [executable, *where, "--save", "", "--appendonly", "no", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert self.process.poll() is None, self.log.read_text(errors="replace")
                assert time.monotonic() < deadline, f"redis-server did not answer on port {self.port}"
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@contextmanager
def tasks_sent_to(url: str, *, result_backend: str | None = None) -> Iterator[Celery]:
    """The project's Celery configuration on another broker (and result backend: the same Redis unless given), as
    current_app meanwhile: dispatch.jobs send through current_app."""
    sender = Celery("aggregator", set_as_current=False)
    sender.config_from_object("django.conf:settings", namespace="CELERY")
    sender.conf.update(broker_url=url, result_backend=result_backend or url)
    # Celery reads the broker from the CELERY_BROKER_URL variable, when set, before its configuration.
    saved = os.environ.get("CELERY_BROKER_URL")
    if saved is not None:
        os.environ["CELERY_BROKER_URL"] = url
    sender.set_current()
    try:
        yield sender
    finally:
        if saved is not None:
            os.environ["CELERY_BROKER_URL"] = saved
        app.set_current()
        sender.close()
