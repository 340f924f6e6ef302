"""Many chargers' Accepted answers recorded at once (dispatch.services.accept_many), as the OCPP server batches them."""

from datetime import timedelta

import time_machine

from dispatch import services
from dispatch.models import DeviceCommand
from tests.dispatch.test_device_commands import live_event  # noqa: F401  (fixture)


def test_accepting_many_accepts_the_pending_ones_and_keeps_every_other_answer(live_event):
    event = live_event(generators=3, target_kw=150)
    first, second, third = DeviceCommand.objects.filter(event=event).order_by("device_id")
    services.acknowledge(command=second, status="rejected", reason="busy")

    assert services.accept_many(command_ids=[str(first.pk), str(second.pk), str(third.pk)]) == 2
    statuses = dict(DeviceCommand.objects.filter(event=event).values_list("pk", "status"))
    assert (statuses[first.pk], statuses[second.pk], statuses[third.pk]) == ("accepted", "rejected", "accepted")
    first.refresh_from_db()
    assert first.acknowledged_at is not None and first.delivered_at is not None
    assert services.accept_many(command_ids=[str(first.pk)]) == 0  # again: nothing changes


def test_accepting_many_after_expiry_records_the_commands_as_expired(live_event):
    event = live_event(generators=1)
    command = DeviceCommand.objects.get(event=event)
    with time_machine.travel(command.expires_at + timedelta(seconds=1)):
        assert services.accept_many(command_ids=[str(command.pk)]) == 0
    command.refresh_from_db()
    assert command.status == "expired"
