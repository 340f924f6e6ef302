"""The OCPP delivery channel: new commands and plans reach the server process that holds the charger.

Each OCPP server process has a node name. When a charger connects, its process records
`device id -> node` in the Redis hash NODE_OF (and removes it, if still its own, when the
connection closes) and subscribes to its own channel `vpp:ocpp:to:<node>`. After a fan-out
chunk commits, the chunk's OCPP chargers are looked up in NODE_OF and each node holding some
is published the list of its device ids; the node reads their live commands (one query) and
sends the profiles. No process polls the database for commands. A charger that is not
connected anywhere gets its live commands when it connects; so does one whose message was
lost (Redis unreachable at the moment of the publish).
"""

import json
import logging

import redis
from django.db import transaction

from aggregator.core import queries, redis_client
from dispatch.models import DeviceCommand
from dispatch.ocpp.models import Charger

log = logging.getLogger(__name__)

NODE_OF = "vpp:ocpp:node-of"
CHANNEL = "vpp:ocpp:to:"

# Remove a charger's entry only if the closing connection's node still holds it.
RELEASE = (
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0"
)


def channel(node: str) -> str:
    return f"{CHANNEL}{node}"


def serves(device_ids: list[int]) -> bool:
    """Whether any of these devices is an OCPP charger."""
    return queries.any_with(Charger, "device", device_ids)


def publish(device_ids: list[int], kind: str) -> int:
    """Tell each node holding some of these chargers which ones have something new; returns the nodes told."""
    if not device_ids:
        return 0
    client = redis_client.client()
    try:
        nodes = client.hmget(NODE_OF, [str(d) for d in device_ids])
        by_node: dict[str, list[int]] = {}
        for device_id, node in zip(device_ids, nodes):
            if node is not None:
                by_node.setdefault(node.decode(), []).append(device_id)
        with client.pipeline(transaction=False) as pipe:
            for node, devices in by_node.items():
                pipe.publish(channel(node), json.dumps({"kind": kind, "devices": devices}))
            pipe.execute()
    except redis.RedisError as exc:
        log.warning(
            "OCPP delivery of %s to %d chargers not published (%s): they get it when they reconnect",
            kind,
            len(device_ids),
            exc,
        )
        return 0
    return len(by_node)


def deliver_chunk(event_id: int, round_number: int, first_device: int, last_device: int) -> None:
    """After the chunk commits, its OCPP chargers' nodes hear of their new commands."""

    def send() -> None:
        devices = list(
            DeviceCommand.objects.filter(
                event_id=event_id,
                round=round_number,
                device_id__gte=first_device,
                device_id__lte=last_device,
                device__ocpp_charger__isnull=False,
            ).values_list("device_id", flat=True)
        )
        publish(devices, "commands")

    transaction.on_commit(send)


def plans_changed(device_ids: list[int]) -> None:
    """New nightly plans for these EV chargers: the OCPP ones get their default profiles (after commit)."""

    def send() -> None:
        publish(list(Charger.objects.filter(device_id__in=device_ids).values_list("device_id", flat=True)), "plan")

    transaction.on_commit(send)
