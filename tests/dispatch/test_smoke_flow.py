from datetime import UTC, datetime, timedelta

from dispatch import services
from dispatch.models import Allocation, DeviceCommand


def test_a_real_time_event_allocates_and_issues_one_command_per_needed_device(
    program, make_resource, device_client, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=4)
    now = datetime.now(UTC)
    with django_capture_on_commit_callbacks(execute=False):
        event = services.create_event(
            resource=resource,
            source="operator_test",
            start=now,
            end=now + timedelta(hours=1),
            target_kw=120,
            by="tester",
            over_commit_pct=0,
        )
    chunks = services.advance(event_id=event.pk)
    assert chunks
    for chunk in chunks:
        services.issue_commands(event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3])
    event.refresh_from_db()
    assert event.state == "active" and event.commands_issued_round == 1
    kws = sorted(sum(a.kw) for a in Allocation.objects.filter(event=event))
    assert kws == [0, 20, 50, 50]
    assert DeviceCommand.objects.filter(event=event).count() == 3
    device = DeviceCommand.objects.filter(event=event).first().device
    client, _ = device_client(device=device)
    body = client.get("/api/device/v1/commands").json()
    assert len(body["commands"]) == 1 and body["commands"][0]["kind"] == "dispatch"
