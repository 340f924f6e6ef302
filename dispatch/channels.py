"""Delivery channels: how a chunk's new commands reach devices beyond their own poll.

Every device polls `GET /api/device/v1/commands`; a channel also delivers the chunk another way
(signed push to the device's endpoint, an OpenADR 3 event for its VEN). Each channel registers
itself in its app's ready(), so the dispatch services know channels only through this registry.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Channel:
    name: str
    # Whether any of these devices (the ids a chunk just commanded) takes this channel.
    serves: Callable[[list[int]], bool]
    # Queue the delivery of the chunk (event id, round, first device, last device), after commit.
    deliver: Callable[[int, int, int, int], None]


_CHANNELS: dict[str, Channel] = {}


def register(channel: Channel) -> None:
    _CHANNELS[channel.name] = channel


def registered() -> list[Channel]:
    return list(_CHANNELS.values())


def deliver_chunk(*, event_id: int, round_number: int, first_device: int, last_device: int, devices: list[int]) -> None:
    """Queue every channel that serves one of the chunk's newly commanded devices."""
    if not devices:
        return
    for channel in _CHANNELS.values():
        if channel.serves(devices):
            channel.deliver(event_id, round_number, first_device, last_device)
