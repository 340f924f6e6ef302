"""The simulated fleet over real HTTP against the live server: heartbeats, polls, acks, overrides, delivery, meter."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from aggregator.demo.simulator import runner
from aggregator.reference.models import MeterKind, Reading
from dispatch import services as dispatch
from dispatch.models import DeliveryReport, DeviceCommand
from enrollment import services as enrollment
from enrollment.models import DeviceStatus
from tests.dispatch.conftest import make_resource, online  # noqa: F401  (the fixture)


@pytest.fixture
def active_event(make_resource):
    """An event under way on two 50 kW generators, both commanded (the tasks it queued are purged: no worker here)."""
    from aggregator.celery import app

    resource = make_resource(generators=2)
    devices = [m.device for m in resource.memberships.order_by("device_id")]
    online(*devices)
    now = datetime.now(UTC)
    with transaction.atomic():
        event = dispatch.create_event(
            resource=resource,
            source="operator_test",
            start=now,
            end=now + timedelta(hours=2),
            target_kw=80,
            over_commit_pct=0,
            by="tester",
        )
        for chunk in dispatch.advance(event_id=event.pk, now=now):
            dispatch.issue_commands(
                event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3], now=now
            )
    app.control.purge()
    return event, devices


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_simulated_fleet_works_through_the_device_api_only(active_event, live_server):
    event, devices = active_event
    tokens = [enrollment.issue_credential(device=d, by="test")[1] for d in devices]
    fleet = runner.Fleet(api=runner.DeviceAPI(live_server.url), tokens=tokens, threads=2)
    try:
        assert fleet.discover() == 2
        first, second = sorted(fleet.devices, key=lambda d: d.device_id)
        for device in (first, second):
            device.model.always_offline = False
        first.model.opts_out = lambda key: False
        second.model.opts_out = lambda key: True  # this customer overrides

        now = datetime.now(UTC)
        fleet.tick(now)  # heartbeat, poll, and the answers to the commands
        fleet.tick(now + timedelta(seconds=5))  # executes the command and reports the interval so far
    finally:
        fleet.close()

    statuses = {s.device_id: s for s in DeviceStatus.objects.filter(device__in=devices)}
    assert all(s.online and s.last_seen_at >= now - timedelta(seconds=30) for s in statuses.values())
    commands = {c.device_id: c.status for c in DeviceCommand.objects.filter(event=event)}
    assert commands == {first.device_id: "accepted", second.device_id: "opted_out"}
    (report,) = DeliveryReport.objects.filter(event=event)
    assert report.device_id == first.device_id
    asked = next(c for c in DeviceCommand.objects.filter(event=event, device_id=first.device_id)).schedule[0]["kw"]
    assert 0 < report.delivered_kw <= asked  # what the model could deliver of what it was asked, never more
    assert fleet.stats.errors == 0 and fleet.stats.acks == 1 and fleet.stats.opt_outs == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_site_posts_its_meter_reading_for_every_whole_hour(active_event, live_server):
    _event, devices = active_event
    fleet = runner.Fleet(
        api=runner.DeviceAPI(live_server.url),
        tokens=[enrollment.issue_credential(device=d, by="test")[1] for d in devices],
        threads=2,
    )
    try:
        fleet.discover()
        for device in fleet.devices:
            device.model.always_offline = False
            device.model.online = lambda now: True
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
        fleet.tick(hour + timedelta(minutes=30))  # starts mid-hour: that hour is never sent
        for minutes in range(60, 180, 5):
            fleet.tick(hour + timedelta(minutes=30 + minutes))
    finally:
        fleet.close()
    stored = Reading.objects.filter(meter_kind=MeterKind.SITE, meter_id__in=[d.site_id for d in devices]).order_by(
        "start"
    )
    starts = sorted({r.start for r in stored})
    assert starts == [hour + timedelta(hours=1), hour + timedelta(hours=2)]
    assert all(r.interval_seconds == 3600 and r.kwh > 0 for r in stored) and stored.count() == 4
