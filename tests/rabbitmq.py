"""The worker tests on RabbitMQ: what a test reads of a queue there, and a virtual host of a test's own.

The worker tests run on whichever broker CELERY_BROKER_URL names (Redis by default); .ci/run runs them on
RabbitMQ too, in a virtual host of the run's own. A queue's waiting messages cannot be listed over AMQP without
taking them: a peek takes each with a basic.get and closes its channel unacknowledged, which puts them back.
"""

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

from celery import current_app
from django.conf import settings
from kombu.transport.native_delayed_delivery import MAX_LEVEL, level_name


def on_rabbitmq() -> bool:
    return settings.BROKER_IS_RABBITMQ


def _messages(channel, queue: str, *, routed_to: str | None = None, take: bool = False) -> Iterator[dict]:
    """The messages on `queue` (those for `routed_to` only: a delay queue holds every queue's), as task payloads
    with their headers. Taken ones (take=True) are acknowledged, that is deleted; the rest go back on close."""
    while (message := channel.basic_get(queue, no_ack=False)) is not None:
        key = message.delivery_info["routing_key"]
        if routed_to is None or key == routed_to or key.endswith("." + routed_to):
            if take:
                channel.basic_ack(message.delivery_tag)
            yield {"headers": message.headers or {}, "body": json.loads(message.body)}


def peek(queue: str, *, take: bool = False) -> list[dict]:
    """Every message the broker holds for `queue`: waiting on it, or in a delay queue until its ETA."""
    with current_app.connection_for_write() as conn:
        channel = conn.channel()
        try:
            found = list(_messages(channel, queue, take=take)) if _exists(conn, queue) else []
            for level in range(MAX_LEVEL + 1):
                if _exists(conn, level_name(level)):
                    found += _messages(channel, level_name(level), routed_to=queue, take=take)
        finally:
            channel.close()
    return found


def _exists(conn, queue: str) -> bool:
    channel = conn.channel()
    try:
        channel.queue_declare(queue, passive=True)
        return True
    except conn.channel_errors:
        return False
    finally:
        try:
            channel.close()
        except conn.channel_errors + conn.connection_errors:
            pass


def forget(queue: str) -> None:
    """Delete one queue of ours, its exchange (and so its bindings), and its messages waiting for their ETA."""
    peek(queue, take=True)
    with current_app.connection_for_write() as conn:
        channel = conn.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(queue)
        channel.close()


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def can_manage_vhosts() -> bool:
    if not shutil.which("rabbitmqctl"):
        return False
    return subprocess.run(["rabbitmqctl", "list_vhosts"], capture_output=True, timeout=60).returncode == 0


class PrivateVhost:
    """A virtual host of a test's own on the machine's RabbitMQ: the test may close every connection to it."""

    def __init__(self):
        self.name = f"test-{uuid.uuid4().hex[:12]}"
        parts = urlsplit(settings.CELERY_BROKER_URL)
        self.url = urlunsplit(parts._replace(path="/" + quote(self.name, safe="")))
        user = parts.username or "guest"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, user, ".*", ".*", ".*")

    def connections(self) -> int:
        out = rabbitmqctl("list_connections", "-q", "--no-table-headers", "vhost")
        return sum(1 for line in out.splitlines() if line.strip() == self.name)

    def close_connections(self) -> None:
        """What the broker does to its clients when it stops: connection.close, 320 CONNECTION_FORCED."""
        rabbitmqctl("close_all_connections", "--vhost", self.name, "broker restart (test)")

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)


def wake_often(worker) -> None:
    """Let an in-process test worker (celery.contrib.testing) stop within its shutdown timeout on RabbitMQ.

    Its event loop reads the stop flag only when it wakes: on Redis the transport wakes it every second, on
    RabbitMQ only a message or a timer does, up to 10 s apart, as long as the shutdown waits. A no-op timer
    every half second wakes it. (A real worker stops on its signal, which wakes the loop itself.)"""
    if on_rabbitmq():
        worker.consumer.timer.call_repeatedly(0.5, _nothing)


def _nothing() -> None:
    pass
