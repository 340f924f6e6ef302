"""Changes while an event runs: shortened windows, odd reports, late cancels, retried opt-outs, unfinished fan-outs."""

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.core.errors import DomainError
from dispatch import services
from dispatch.models import DeliveryReport, DeviceCommand, DeviceSeasonBurden


def _run_chunks(event):
    event.refresh_from_db()
    for chunk in services.pending_chunks(event=event):
        services.issue_commands(event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3])
    event.refresh_from_db()


@pytest.fixture
def live_event(make_resource, django_capture_on_commit_callbacks):
    """live_event(generators=3, target_kw=90, hours=2) -> an active event whose commands are out."""

    def make(*, generators=3, target_kw=90, hours=2, issue=True):
        resource = make_resource(generators=generators)
        now = datetime.now(UTC)
        with django_capture_on_commit_callbacks(execute=False):
            event = services.create_event(
                resource=resource,
                source="operator_test",
                start=now,
                end=now + timedelta(hours=hours),
                target_kw=target_kw,
                over_commit_pct=0,
                by="tester",
            )
            services.advance(event_id=event.pk)
            if issue:
                _run_chunks(event)
        event.refresh_from_db()
        return event

    return make


def test_shortening_an_event_sends_every_live_device_its_new_end(live_event, django_capture_on_commit_callbacks):
    event = live_event(hours=3)
    live = set(DeviceCommand.objects.filter(event=event, status="pending").values_list("device_id", flat=True))
    with django_capture_on_commit_callbacks(execute=False):
        services.modify(event=event, by="op", reason="grid needs less", end=event.start + timedelta(hours=1))
        _run_chunks(event)
    updated = DeviceCommand.objects.filter(event=event, round=event.allocation_round, status="pending")
    assert set(updated.values_list("device_id", flat=True)) == live
    assert all(len(c.schedule) == 1 and c.expires_at == event.start + timedelta(hours=1) for c in updated)


def test_a_new_end_alone_keeps_the_current_target(live_event, django_capture_on_commit_callbacks):
    event = live_event(hours=1)
    with django_capture_on_commit_callbacks(execute=False):
        services.modify(event=event, by="op", reason="extend", end=event.start + timedelta(hours=2))
    assert [float(i.target_kw) for i in event.intervals.order_by("start")] == [90.0, 90.0]


def test_completion_expires_accepted_commands_too(live_event, django_capture_on_commit_callbacks):
    event = live_event(hours=1)
    command = DeviceCommand.objects.filter(event=event).first()
    services.acknowledge(command=command, status="accepted")
    with django_capture_on_commit_callbacks(execute=False):
        services.advance(event_id=event.pk, now=event.end + timedelta(minutes=1))
    command.refresh_from_db()
    assert command.status == "expired"


def test_an_ended_event_completes_and_cannot_be_cancelled(live_event, django_capture_on_commit_callbacks):
    event = live_event(hours=1)
    with pytest.raises(DomainError) as refused, django_capture_on_commit_callbacks(execute=False):
        services.cancel(event=event, by="op", reason="late", now=event.end + timedelta(seconds=5))
    assert refused.value.code == "ended"


def test_one_devices_wild_report_cannot_send_the_whole_fleet_in(live_event, django_capture_on_commit_callbacks):
    event = live_event(generators=4, target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    DeliveryReport.objects.create(
        event=event, device_id=command.device_id, interval_start=event.start, delivered_kw=-1e6
    )
    with django_capture_on_commit_callbacks(execute=False):
        rnd = services.rebalance(event_id=event.pk)
    # The device counts as delivering nothing: its share (at most 50 kW) is covered, not a million.
    assert rnd is not None and rnd.allocated_kw[0] <= 90 + 50 + 1e-6


def test_a_retried_opt_out_is_counted_once(live_event, django_capture_on_commit_callbacks):
    event = live_event()
    command = DeviceCommand.objects.filter(event=event).first()
    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(2):
            services.opt_out(device_id=command.device_id, start=datetime.now(UTC), end=event.end, event=event)
    assert DeviceSeasonBurden.objects.get(device_id=command.device_id).opt_outs == 1


def test_the_closed_loop_waits_for_an_unfinished_fan_out(live_event, django_capture_on_commit_callbacks):
    event = live_event(issue=False)  # commands not out yet: devices without one are not failing
    with django_capture_on_commit_callbacks(execute=False):
        assert services.rebalance(event_id=event.pk) is None
