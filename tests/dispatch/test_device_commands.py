"""Dispatch on the device API: poll, acknowledge, opt out, report; against real PostgreSQL.

Events are driven without Celery: create_event inside a capture of on-commit callbacks
(nothing is queued), services.advance at chosen instants, and services.issue_commands
for each fan-out chunk it returns.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from rest_framework.test import APIClient

from dispatch import services
from dispatch.models import (
    Allocation,
    DeliveryReport,
    DeviceCommand,
    DeviceOptOut,
    DeviceSeasonBurden,
    DispatchEvent,
)
from tests.conftest import operator_token
from tests.dispatch.conftest import queued, task_of
from tests.factories import GENERATOR, GatewayFactory, SiteFactory, active_device

COMMANDS = "/api/device/v1/commands"
OPT_OUTS = "/api/device/v1/opt-outs"


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def this_minute() -> datetime:
    """A real-time start: the current minute (within the platform's grace for "now")."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def issue(chunks) -> None:
    for event_id, round_number, first, last in chunks:
        services.issue_commands(event_id=event_id, round_number=round_number, first_device=first, last_device=last)


def issue_pending(event_id: int) -> None:
    issue(services.pending_chunks(event=DispatchEvent.objects.get(pk=event_id)))


@pytest.fixture
def live_event(make_resource, django_capture_on_commit_callbacks):
    """live_event(resource=..., target_kw=...) -> an active event starting this minute, its commands issued."""

    def run(*, resource=None, generators: int = 3, target_kw=90, hours: int = 1, start: datetime | None = None):
        resource = resource or make_resource(generators=generators)
        start = start or this_minute()
        with django_capture_on_commit_callbacks(execute=False):
            event = services.create_event(
                resource=resource,
                source="operator_test",
                start=start,
                end=start + timedelta(hours=hours),
                target_kw=target_kw,
                by="tester",
                over_commit_pct=0,
            )
        issue(services.advance(event_id=event.pk))
        event.refresh_from_db()
        assert event.state == "active" and event.commands_issued_round == event.allocation_round == 1
        return event

    return run


def allocation_by_reason(event) -> dict[str, list[Allocation]]:
    out: dict[str, list[Allocation]] = {}
    for a in Allocation.objects.filter(event=event).order_by("device_id"):
        out.setdefault(a.reason, []).append(a)
    return out


def members(resource) -> list:
    return [m.device for m in resource.memberships.select_related("device").order_by("device_id")]


def command_of(event, device) -> DeviceCommand:
    return DeviceCommand.objects.get(event=event, device=device, status__in=["pending", "accepted"])


# --- polling ---------------------------------------------------------------------------


def test_poll_returns_the_live_command_with_absolute_utc_times_and_marks_it_delivered(live_event, device_client):
    event = live_event(generators=2, target_kw=70, hours=2)
    intervals = list(event.intervals.order_by("start"))
    command = DeviceCommand.objects.filter(event=event).order_by("device_id").first()
    assert command.delivered_at is None
    client, _ = device_client(device=command.device)

    response = client.get(COMMANDS)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["poll_after_seconds"] == settings.DISPATCH_POLL_SECONDS["live"]
    assert len(body["commands"]) == 1
    polled = body["commands"][0]
    assert polled["id"] == str(command.pk)
    assert polled["event"] == event.pk and polled["device"] == command.device_id
    assert polled["kind"] == "dispatch" and polled["status"] == "pending" and polled["sequence"] == 1
    assert ts(polled["not_before"]) == event.start and ts(polled["expires_at"]) == event.end
    for entry in polled["schedule"]:
        assert ts(entry["start"]).utcoffset() == timedelta(0) and ts(entry["end"]).utcoffset() == timedelta(0)
    assert [(ts(e["start"]), ts(e["end"]), e["kw"]) for e in polled["schedule"]] == [
        (i.start, i.end, 50.0) for i in intervals
    ]
    command.refresh_from_db()
    assert command.delivered_at == ts(body["server_time"])


def test_idle_poll_lists_nothing_and_asks_for_a_slower_poll(make_resource, device_client):
    resource = make_resource(generators=1)
    client, _ = device_client(device=members(resource)[0])

    body = client.get(COMMANDS).json()

    assert body["commands"] == [] and body["poll_after_seconds"] == settings.DISPATCH_POLL_SECONDS["idle"]


def test_a_device_does_not_see_another_devices_commands_in_its_poll(live_event, device_client):
    event = live_event(target_kw=90)
    served = allocation_by_reason(event)
    mine, other = served["allocated"][0].device, served["allocated"][1].device
    client, _ = device_client(device=mine)

    body = client.get(COMMANDS).json()

    assert [c["device"] for c in body["commands"]] == [mine.pk]
    assert str(command_of(event, other).pk) not in {c["id"] for c in body["commands"]}


@pytest.mark.parametrize(
    "action, payload",
    [
        ("ack", {"status": "accepted"}),
        ("opt-out", {}),
        ("reports", None),
    ],
)
def test_a_device_gets_404_acting_on_another_devices_command(live_event, device_client, action, payload):
    event = live_event(target_kw=90)
    served = allocation_by_reason(event)
    mine, other = served["allocated"][0].device, served["allocated"][1].device
    theirs = command_of(event, other)
    if payload is None:
        payload = {"reports": [{"interval_start": event.start.isoformat(), "delivered_kw": 10}]}
    client, _ = device_client(device=mine)

    response = client.post(f"{COMMANDS}/{theirs.pk}/{action}", payload, format="json")

    assert response.status_code == 404, response.content
    theirs.refresh_from_db()
    assert theirs.status == "pending" and theirs.acknowledged_at is None
    assert not DeviceOptOut.objects.exists()
    assert not DeliveryReport.objects.exists()


# --- gateways ---------------------------------------------------------------------------


@pytest.fixture
def gateway_fleet(program, make_resource, live_event):
    """Two generators behind one gateway and one elsewhere, all three commanded."""
    site = SiteFactory(market=program.market, time_zone=program.market.time_zone)
    gateway = GatewayFactory(site=site)
    behind = [active_device(program, site=site, gateway=gateway, **GENERATOR) for _ in range(2)]
    elsewhere = active_device(program, **GENERATOR)
    event = live_event(resource=make_resource(devices=[*behind, elsewhere]), target_kw=150)
    assert DeviceCommand.objects.filter(event=event).count() == 3
    return gateway, behind, elsewhere, event


def test_a_gateway_sees_the_commands_of_every_device_behind_it(gateway_fleet, device_client):
    gateway, behind, elsewhere, _event = gateway_fleet
    client, _ = device_client(gateway=gateway)

    body = client.get(COMMANDS).json()

    assert sorted(c["device"] for c in body["commands"]) == sorted(d.pk for d in behind)
    assert elsewhere.pk not in {c["device"] for c in body["commands"]}


def test_a_gateway_filters_its_poll_by_device(gateway_fleet, device_client):
    gateway, behind, _, event = gateway_fleet
    client, _ = device_client(gateway=gateway)

    body = client.get(COMMANDS, {"device": behind[1].pk}).json()

    assert [c["device"] for c in body["commands"]] == [behind[1].pk]
    assert body["commands"][0]["id"] == str(command_of(event, behind[1]).pk)


def test_a_gateway_naming_a_device_not_behind_it_is_400(gateway_fleet, device_client):
    gateway, _, elsewhere, event = gateway_fleet
    client, _ = device_client(gateway=gateway)

    response = client.get(COMMANDS, {"device": elsewhere.pk})

    assert response.status_code == 400, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["device"]
    assert command_of(event, elsewhere).delivered_at is None


# --- acknowledging ----------------------------------------------------------------------


def test_accepting_a_command_is_200_and_records_it(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)

    response = client.post(f"{COMMANDS}/{command.pk}/ack", {"status": "accepted"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"id": str(command.pk), "status": "accepted"}
    command.refresh_from_db()
    assert command.status == "accepted" and command.acknowledged_at is not None and command.delivered_at is not None


def test_repeating_accepted_is_200_and_changes_nothing(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)
    assert client.post(f"{COMMANDS}/{command.pk}/ack", {"status": "accepted"}, format="json").status_code == 200
    command.refresh_from_db()
    first_ack = command.acknowledged_at

    response = client.post(f"{COMMANDS}/{command.pk}/ack", {"status": "accepted"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "accepted"
    command.refresh_from_db()
    assert command.status == "accepted" and command.acknowledged_at == first_ack


def test_rejecting_an_accepted_command_is_409_not_pending(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)
    assert client.post(f"{COMMANDS}/{command.pk}/ack", {"status": "accepted"}, format="json").status_code == 200

    response = client.post(
        f"{COMMANDS}/{command.pk}/ack", {"status": "rejected", "reason": "changed my mind"}, format="json"
    )

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["status"] == 409 and [e["code"] for e in body["errors"]] == ["not_pending"]
    command.refresh_from_db()
    assert command.status == "accepted" and command.reason == ""


def test_an_invalid_ack_status_is_400_naming_status(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)

    response = client.post(f"{COMMANDS}/{command.pk}/ack", {"status": "maybe"}, format="json")

    assert response.status_code == 400, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["status"]
    command.refresh_from_db()
    assert command.status == "pending"


def test_rejecting_a_command_queues_a_rebalance_that_moves_its_kw_to_another_device(
    live_event, device_client, django_capture_on_commit_callbacks
):
    event = live_event(target_kw=90)  # 3 x 50 kW: 50 + 40 allocated, one not needed
    served = allocation_by_reason(event)
    rejecting = served["allocated"][0].device
    spare = served["not_needed"][0].device
    command = command_of(event, rejecting)
    client, _ = device_client(device=rejecting)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            f"{COMMANDS}/{command.pk}/ack", {"status": "rejected", "reason": "site maintenance"}, format="json"
        )

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "rejected"
    assert len(queued(callbacks)) == 1 and task_of(queued(callbacks)[0]) == "dispatch.tasks.rebalance"

    # What the queued task runs:
    assert services.rebalance(event_id=event.pk, reason=f"device {rejecting.pk} rejected its command") is not None
    issue_pending(event.pk)
    assert Allocation.objects.get(event=event, device=rejecting).kw == [0.0]
    assert sum(Allocation.objects.get(event=event, device=spare).kw) > 0
    assert sum(sum(a.kw) for a in Allocation.objects.filter(event=event)) == pytest.approx(90)
    assert DeviceCommand.objects.filter(event=event, device=spare, status="pending", kind="dispatch").exists()


def test_accepting_queues_no_rebalance(live_event, device_client, django_capture_on_commit_callbacks):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert client.post(f"{COMMANDS}/{command.pk}/ack", {"status": "accepted"}, format="json").status_code == 200

    assert queued(callbacks) == []


# --- expiry -----------------------------------------------------------------------------


def test_an_expired_command_is_not_polled(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)

    with time_machine.travel(event.end + timedelta(minutes=1), tick=True):
        body = client.get(COMMANDS).json()

    assert body["commands"] == [] and body["poll_after_seconds"] == settings.DISPATCH_POLL_SECONDS["idle"]
    command.refresh_from_db()
    assert command.delivered_at is None


def test_acknowledging_an_expired_command_is_409_expired(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)

    with time_machine.travel(event.end + timedelta(minutes=1), tick=True):
        response = client.post(f"{COMMANDS}/{command.pk}/ack", {"status": "accepted"}, format="json")

    assert response.status_code == 409, response.content
    assert [e["code"] for e in response.json()["errors"]] == ["expired"]
    command.refresh_from_db()
    assert command.status != "accepted" and command.acknowledged_at is None


def test_acknowledging_an_expired_command_records_it_as_expired(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)

    with time_machine.travel(event.end + timedelta(minutes=1), tick=True):
        assert client.post(f"{COMMANDS}/{command.pk}/ack", {"status": "accepted"}, format="json").status_code == 409

    command.refresh_from_db()
    assert command.status == "expired"


# --- opting out -------------------------------------------------------------------------


def test_opting_out_of_a_command_marks_it_and_records_the_override(live_event, device_client):
    event = live_event(target_kw=90)
    device = allocation_by_reason(event)["allocated"][0].device
    command = command_of(event, device)
    client, _ = device_client(device=device)

    response = client.post(f"{COMMANDS}/{command.pk}/opt-out", {"reason": "hosting a party"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["device"] == device.pk and ts(body["end"]) == event.end
    command.refresh_from_db()
    assert command.status == "opted_out" and command.reason == "hosting a party"
    record = DeviceOptOut.objects.get(device=device)
    assert record.event_id == event.pk and record.end == event.end and record.start <= datetime.now(UTC)
    assert client.get(COMMANDS).json()["commands"] == []


def test_after_an_opt_out_the_rebalance_commands_a_device_that_was_not_needed(live_event, device_client):
    event = live_event(target_kw=90)  # 3 x 50 kW, no margin: two allocated, one not needed
    served = allocation_by_reason(event)
    assert len(served["allocated"]) == 2 and len(served["not_needed"]) == 1
    leaving = served["allocated"][0].device
    spare = served["not_needed"][0].device
    assert not DeviceCommand.objects.filter(event=event, device=spare).exists()
    client, _ = device_client(device=leaving)
    assert client.post(f"{COMMANDS}/{command_of(event, leaving).pk}/opt-out", {}, format="json").status_code == 200

    rnd = services.rebalance(event_id=event.pk, reason=f"device {leaving.pk} opted out", now=datetime.now(UTC))
    issue_pending(event.pk)

    assert rnd is not None and rnd.number == 2
    left = Allocation.objects.get(event=event, device=leaving)
    assert left.kw == [0.0] and left.reason == "opted_out"
    assert Allocation.objects.get(event=event, device=spare).reason == "allocated"
    spare_client, _ = device_client(device=spare)
    polled = spare_client.get(COMMANDS).json()["commands"]
    assert len(polled) == 1 and polled[0]["kind"] == "dispatch" and polled[0]["schedule"][0]["kw"] > 0
    assert sum(sum(a.kw) for a in Allocation.objects.filter(event=event)) == pytest.approx(90)
    assert not DeviceCommand.objects.filter(event=event, device=leaving, status__in=["pending", "accepted"]).exists()


def test_a_standing_opt_out_keeps_the_device_out_of_a_later_event(
    make_resource, device_client, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=3)
    out = members(resource)[0]
    client, _ = device_client(device=out)
    now = datetime.now(UTC)

    response = client.post(OPT_OUTS, {"until": (now + timedelta(hours=4)).isoformat(), "reason": "away"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["device"] == out.pk
    start = this_minute() + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=False):
        event = services.create_event(
            resource=resource,
            source="operator_test",
            start=start,
            end=start + timedelta(hours=1),
            target_kw=90,
            by="tester",
            over_commit_pct=0,
        )
    issue(services.advance(event_id=event.pk, now=start))
    allocation = Allocation.objects.get(event=event, device=out)
    assert allocation.reason == "opted_out" and allocation.kw == [0.0]
    assert not DeviceCommand.objects.filter(event=event, device=out).exists()
    assert sum(sum(a.kw) for a in Allocation.objects.filter(event=event)) == pytest.approx(90)


def test_a_standing_opt_out_counts_in_the_markets_local_season(make_resource, device_client):
    device = members(make_resource(generators=1))[0]
    client, _ = device_client(device=device)
    start = datetime(datetime.now(UTC).year + 1, 1, 1, 2, 0, tzinfo=UTC)  # 21:00 on 31 December in New York

    response = client.post(
        OPT_OUTS, {"start": start.isoformat(), "until": (start + timedelta(hours=3)).isoformat()}, format="json"
    )

    assert response.status_code == 201, response.content
    assert list(DeviceSeasonBurden.objects.filter(device=device).values_list("season", "opt_outs")) == [
        (start.year - 1, 1)
    ]


# --- cancellation -----------------------------------------------------------------------


def test_a_cancellation_reaches_the_device_as_a_cancel_command_superseding_its_dispatch(live_event, device_client):
    event = live_event(target_kw=90)
    device = allocation_by_reason(event)["allocated"][0].device
    earlier = command_of(event, device)
    client, _ = device_client(device=device)

    services.cancel(event=event, by="op", reason="grid ok")
    issue_pending(event.pk)

    polled = client.get(COMMANDS).json()["commands"]
    assert [c["kind"] for c in polled] == ["cancel"]
    assert polled[0]["id"] != str(earlier.pk) and polled[0]["schedule"] == [] and polled[0]["sequence"] == 2
    earlier.refresh_from_db()
    assert earlier.status == "superseded"


# --- delivery reports -------------------------------------------------------------------


def test_a_delivery_report_is_stored(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)

    response = client.post(
        f"{COMMANDS}/{command.pk}/reports",
        {"reports": [{"interval_start": event.start.isoformat(), "delivered_kw": 42.5}]},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"stored": 1}
    report = DeliveryReport.objects.get()
    assert (report.event_id, report.device_id, report.interval_start, report.delivered_kw) == (
        event.pk,
        command.device_id,
        event.start,
        42.5,
    )


def test_resending_a_report_replaces_it(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)
    url = f"{COMMANDS}/{command.pk}/reports"
    assert (
        client.post(
            url, {"reports": [{"interval_start": event.start.isoformat(), "delivered_kw": 42.5}]}, format="json"
        ).status_code
        == 200
    )

    response = client.post(
        url, {"reports": [{"interval_start": event.start.isoformat(), "delivered_kw": 47}]}, format="json"
    )

    assert response.status_code == 200, response.content
    assert list(DeliveryReport.objects.values_list("interval_start", "delivered_kw")) == [(event.start, 47.0)]


def test_a_report_for_an_instant_that_starts_no_interval_is_400_naming_it(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)
    off_grid = event.start + timedelta(minutes=15)

    response = client.post(
        f"{COMMANDS}/{command.pk}/reports",
        {"reports": [{"interval_start": off_grid.isoformat(), "delivered_kw": 10}]},
        format="json",
    )

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["reports[0].interval_start"]
    assert errors[0]["code"] == "unknown_interval"
    assert not DeliveryReport.objects.exists()


def test_a_report_naming_an_interval_twice_is_not_a_server_error(live_event, device_client):
    event = live_event(target_kw=90)
    command = DeviceCommand.objects.filter(event=event).first()
    client, _ = device_client(device=command.device)
    at = event.start.isoformat()

    response = client.post(
        f"{COMMANDS}/{command.pk}/reports",
        {"reports": [{"interval_start": at, "delivered_kw": 30}, {"interval_start": at, "delivered_kw": 35}]},
        format="json",
    )

    assert response.status_code in (200, 400), response.content
    if response.status_code == 200:  # the later value replaces the earlier, as a resend does
        assert list(DeliveryReport.objects.values_list("delivered_kw", flat=True)) == [35.0]
    else:
        assert [e["field"] for e in response.json()["errors"]] == ["reports[1].interval_start"]


# --- fan-out ----------------------------------------------------------------------------


def test_issuing_the_same_chunk_twice_creates_no_second_command(make_resource, django_capture_on_commit_callbacks):
    resource = make_resource(generators=3)
    start = this_minute()
    with django_capture_on_commit_callbacks(execute=False):
        event = services.create_event(
            resource=resource,
            source="operator_test",
            start=start,
            end=start + timedelta(hours=1),
            target_kw=90,
            by="tester",
            over_commit_pct=0,
        )
    chunks = services.advance(event_id=event.pk)
    assert len(chunks) == 1
    chunk = chunks[0]
    first = services.issue_commands(
        event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3]
    )
    ids = set(DeviceCommand.objects.filter(event=event).values_list("pk", flat=True))

    again = services.issue_commands(
        event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3]
    )

    assert first == 2 and again == 0
    assert set(DeviceCommand.objects.filter(event=event).values_list("pk", flat=True)) == ids
    assert set(DeviceCommand.objects.filter(event=event).values_list("status", flat=True)) == {"pending"}


# --- authentication ---------------------------------------------------------------------


def test_polling_without_a_token_is_401(db):
    response = APIClient().get(COMMANDS)

    assert response.status_code == 401
    assert response.json()["status"] == 401


def test_an_operator_token_on_the_device_api_is_401(make_operator):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_token(make_operator('operator'))}")

    response = client.get(COMMANDS)

    assert response.status_code == 401
    assert response.json()["status"] == 401
