"""Dispatch events on the operator API, the inbound market API, and the market token command.

Real PostgreSQL, real timezone-aware datetimes, no mocks. Lifecycle steps are driven by
calling services.advance / services.issue_commands directly (no Celery); on-commit
callbacks never run inside a test transaction, so nothing is queued.
"""

import logging
import os
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection
from django.test import override_settings
from rest_framework.test import APIClient

from aggregator.aggregation import services as aggregation
from aggregator.aggregation.models import ResourceMembership
from aggregator.core.access import tokens
from dispatch import services
from dispatch.models import (
    Allocation,
    AllocationRound,
    DeviceCommand,
    DispatchEvent,
    EventInterval,
    EventTransition,
    MarketCredential,
)
from enrollment.models import DeviceStatus
from tests.dispatch.conftest import next_dst_day
from tests.factories import ProgramFactory, market
from tests.redis_server import free_port, tasks_sent_to

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/dispatch-events/"
INSTRUCTIONS = "/api/inbound/v1/instructions"
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
SPRING_FORWARD = next_dst_day(NEW_YORK, spring=True)
FALL_BACK = next_dst_day(NEW_YORK, spring=False)


# --- helpers ------------------------------------------------------------------------


def top_of_hour(hours_ahead: int = 2) -> datetime:
    """A whole UTC hour safely in the future."""
    now = datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours_ahead)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def event_body(resource, start: datetime, end: datetime, **extra) -> dict:
    body = {"resource": resource.pk, "start": start.isoformat(), "end": end.isoformat()}
    body.update(extra)
    return body


def errors_of(response) -> list[dict]:
    return response.json()["errors"]


def fields_of(response) -> set[str]:
    return {e["field"] for e in errors_of(response)}


def codes_of(response) -> set[str]:
    return {e["code"] for e in errors_of(response)}


def drive(event_id: int, *, now: datetime) -> None:
    """Take the lifecycle steps due at `now` and issue every command chunk they leave."""
    for chunk in services.advance(event_id=event_id, now=now):
        services.issue_commands(
            event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3], now=now
        )


def issue_pending(event_id: int, *, now: datetime | None = None) -> None:
    for chunk in services.pending_chunks(event=DispatchEvent.objects.get(pk=event_id)):
        services.issue_commands(
            event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3], now=now
        )


def market_client(
    market_code: str = "PJM", *, source: str = "market_instruction"
) -> tuple[APIClient, MarketCredential]:
    issued = tokens.issue("mkt")
    credential = MarketCredential.objects.create(
        market=market(market_code), source=source, key_id=issued.key_id, digest=issued.digest
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client, credential


def instruction(
    resource, start: datetime, end: datetime, *, instruction_id: str = "PJM-DISP-1", target_kw="80", **extra
):
    body = {
        "instruction_id": instruction_id,
        "resource": resource.market_resource_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "target_kw": target_kw,
    }
    body.update(extra)
    return body


# --- 1. creating events on the operator API ------------------------------------------


def test_operator_creates_event_with_hourly_intervals_and_a_created_transition(api_as, make_resource):
    resource = make_resource(generators=4)
    start = top_of_hour()
    response = api_as("operator").post(
        EVENTS, event_body(resource, start, start + 3 * HOUR, target_kw="120"), format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["resource"] == resource.pk
    assert body["source"] == "operator_test"
    assert body["state"] == "scheduled"
    assert body["warnings"] == []
    assert [(ts(i["start"]), ts(i["end"]), Decimal(i["target_kw"])) for i in body["intervals"]] == [
        (start + n * HOUR, start + (n + 1) * HOUR, Decimal("120")) for n in range(3)
    ]
    event = DispatchEvent.objects.get(pk=body["id"])
    assert event.intervals.count() == 3
    transitions = list(EventTransition.objects.filter(event=event).values_list("action", "from_state", "to_state"))
    assert transitions == [("create", "", "scheduled")]
    assert event.created_by_label.startswith("operator-")


def test_analyst_cannot_create_an_event(api_as, make_resource):
    resource = make_resource(generators=1)
    start = top_of_hour()
    response = api_as("analyst").post(EVENTS, event_body(resource, start, start + HOUR, target_kw="10"), format="json")

    assert response.status_code == 403
    assert not DispatchEvent.objects.exists()


def test_creating_an_event_without_a_token_is_401(make_resource):
    resource = make_resource(generators=1)
    start = top_of_hour()
    response = APIClient().post(EVENTS, event_body(resource, start, start + HOUR, target_kw="10"), format="json")

    assert response.status_code == 401
    assert not DispatchEvent.objects.exists()


def test_start_in_the_past_is_refused_naming_start(api_as, make_resource):
    resource = make_resource(generators=1)
    start = datetime.now(UTC) - HOUR
    response = api_as("operator").post(
        EVENTS, event_body(resource, start, start + 2 * HOUR, target_kw="10"), format="json"
    )

    assert response.status_code == 400
    assert {"field": "start", "code": "in_the_past"} in [
        {k: e[k] for k in ("field", "code")} for e in errors_of(response)
    ]
    assert not DispatchEvent.objects.exists()


def test_end_before_start_is_refused_naming_end(api_as, make_resource):
    resource = make_resource(generators=1)
    start = top_of_hour()
    response = api_as("operator").post(EVENTS, event_body(resource, start, start - HOUR, target_kw="10"), format="json")

    assert response.status_code == 400
    assert fields_of(response) == {"end"}
    assert codes_of(response) == {"out_of_range"}
    assert not DispatchEvent.objects.exists()


def test_naive_timestamp_is_refused(api_as, make_resource):
    resource = make_resource(generators=1)
    start = top_of_hour()
    naive = start.replace(tzinfo=None)
    response = api_as("operator").post(
        EVENTS,
        {"resource": resource.pk, "start": naive.isoformat(), "end": (naive + HOUR).isoformat(), "target_kw": "10"},
        format="json",
    )

    assert response.status_code == 400
    assert "start" in fields_of(response)
    assert not DispatchEvent.objects.exists()


def test_overlapping_event_is_409_and_writes_nothing(api_as, make_resource):
    resource = make_resource(generators=2)
    client = api_as("operator")
    start = top_of_hour()
    first = client.post(EVENTS, event_body(resource, start, start + 2 * HOUR, target_kw="50"), format="json")
    assert first.status_code == 201

    response = client.post(EVENTS, event_body(resource, start + HOUR, start + 3 * HOUR, target_kw="60"), format="json")

    assert response.status_code == 409
    assert errors_of(response)[0]["code"] == "overlapping_event"
    assert list(DispatchEvent.objects.values_list("pk", flat=True)) == [first.json()["id"]]
    assert EventInterval.objects.count() == 2
    assert EventTransition.objects.count() == 1


def test_replacing_an_open_event_cancels_it_and_schedules_the_new_one(api_as, make_resource):
    resource = make_resource(generators=2)
    client = api_as("operator")
    start = top_of_hour()
    old_id = client.post(EVENTS, event_body(resource, start, start + 2 * HOUR, target_kw="50"), format="json").json()[
        "id"
    ]

    response = client.post(
        EVENTS, event_body(resource, start + HOUR, start + 3 * HOUR, target_kw="60", replaces=old_id), format="json"
    )

    assert response.status_code == 201, response.content
    new = DispatchEvent.objects.get(pk=response.json()["id"])
    old = DispatchEvent.objects.get(pk=old_id)
    assert old.state == "cancelled"
    assert new.state == "scheduled"
    assert new.replaces_id == old_id
    assert response.json()["replaces"] == old_id
    assert EventTransition.objects.filter(event=old, action="cancel", to_state="cancelled").exists()


def test_intervals_with_a_gap_are_refused_naming_the_interval(api_as, make_resource):
    resource = make_resource(generators=2)
    start = top_of_hour()
    intervals = [
        {"start": start.isoformat(), "end": (start + HOUR).isoformat(), "target_kw": "40"},
        {
            "start": (start + 90 * timedelta(minutes=1)).isoformat(),
            "end": (start + 2 * HOUR).isoformat(),
            "target_kw": "40",
        },
    ]
    response = api_as("operator").post(
        EVENTS, event_body(resource, start, start + 2 * HOUR, intervals=intervals), format="json"
    )

    assert response.status_code == 400
    assert fields_of(response) == {"intervals[1].start"}
    assert codes_of(response) == {"not_contiguous"}
    assert not DispatchEvent.objects.exists()


def test_unknown_resource_is_refused_naming_resource(api_as, make_resource):
    resource = make_resource(generators=1)
    start = top_of_hour()
    body = event_body(resource, start, start + HOUR, target_kw="10")
    body["resource"] = resource.pk + 10_000
    response = api_as("operator").post(EVENTS, body, format="json")

    assert response.status_code == 400
    assert fields_of(response) == {"resource"}
    assert not DispatchEvent.objects.exists()


def test_draft_resource_is_not_dispatchable(api_as, make_resource):
    resource = make_resource(generators=1, state="draft")
    start = top_of_hour()
    response = api_as("operator").post(EVENTS, event_body(resource, start, start + HOUR, target_kw="10"), format="json")

    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in errors_of(response)] == [("resource", "not_dispatchable")]
    assert not DispatchEvent.objects.exists()


# --- 2. the capability rule ----------------------------------------------------------


def test_target_above_capability_is_accepted_with_a_warning_by_default(api_as, make_resource, program):
    assert program.above_capability == "warn"
    resource = make_resource(generators=2)  # 100 kW
    start = top_of_hour()
    response = api_as("operator").post(
        EVENTS, event_body(resource, start, start + 2 * HOUR, target_kw="150"), format="json"
    )

    assert response.status_code == 201, response.content
    warnings = response.json()["warnings"]
    assert [(w["field"], w["code"]) for w in warnings] == [
        ("intervals[0].target_kw", "above_capability"),
        ("intervals[1].target_kw", "above_capability"),
    ]
    assert DispatchEvent.objects.get().warnings == warnings


def test_target_above_capability_is_refused_when_the_program_says_refuse(api_as, make_resource, program):
    program.above_capability = "refuse"
    program.save()
    resource = make_resource(generators=2)  # 100 kW
    start = top_of_hour()
    response = api_as("operator").post(
        EVENTS, event_body(resource, start, start + HOUR, target_kw="150"), format="json"
    )

    assert response.status_code == 422
    assert [(e["field"], e["code"]) for e in errors_of(response)] == [("intervals[0].target_kw", "above_capability")]
    assert not DispatchEvent.objects.exists()
    assert not EventInterval.objects.exists()


def test_target_within_capability_is_accepted_when_the_program_says_refuse(api_as, make_resource, program):
    program.above_capability = "refuse"
    program.save()
    resource = make_resource(generators=2)
    start = top_of_hour()
    response = api_as("operator").post(
        EVENTS, event_body(resource, start, start + HOUR, target_kw="100"), format="json"
    )

    assert response.status_code == 201
    assert response.json()["warnings"] == []


# --- 3. DST days ---------------------------------------------------------------------


def _interval_lengths(body) -> list[timedelta]:
    return [ts(i["end"]) - ts(i["start"]) for i in body["intervals"]]


def test_spring_forward_event_gets_four_one_hour_intervals(api_as, make_resource):
    resource = make_resource(generators=2)
    start = datetime.combine(SPRING_FORWARD, time(0), NEW_YORK)  # EST, -05:00
    end = datetime.combine(SPRING_FORWARD, time(5), NEW_YORK)  # EDT, -04:00: 4 real hours later
    assert end - start.astimezone(UTC) == 4 * HOUR
    response = api_as("operator").post(EVENTS, event_body(resource, start, end, target_kw="50"), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert _interval_lengths(body) == [HOUR] * 4
    assert ts(body["intervals"][0]["start"]) == start and ts(body["intervals"][-1]["end"]) == end
    assert EventInterval.objects.filter(event_id=body["id"]).count() == 4


def test_fall_back_event_gets_four_one_hour_intervals(api_as, make_resource):
    resource = make_resource(generators=2)
    start = datetime.combine(FALL_BACK, time(0), NEW_YORK)  # EDT, -04:00
    end = datetime.combine(FALL_BACK, time(3), NEW_YORK)  # EST, -05:00: 4 real hours later
    assert end - start.astimezone(UTC) == 4 * HOUR
    response = api_as("operator").post(EVENTS, event_body(resource, start, end, target_kw="50"), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert _interval_lengths(body) == [HOUR] * 4
    assert ts(body["intervals"][0]["start"]) == start and ts(body["intervals"][-1]["end"]) == end


def test_spring_forward_event_with_local_zone_datetimes_gets_four_one_hour_intervals(
    make_resource, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=2)
    start = datetime.combine(SPRING_FORWARD, time(0), NEW_YORK)
    end = datetime.combine(SPRING_FORWARD, time(5), NEW_YORK)
    with django_capture_on_commit_callbacks(execute=False):
        event = services.create_event(
            resource=resource, source="operator_test", start=start, end=end, target_kw=50, by="tester"
        )
    lengths = [i.end - i.start for i in event.intervals.order_by("start")]
    assert lengths == [HOUR] * 4


def test_fall_back_event_with_local_zone_datetimes_gets_four_one_hour_intervals(
    make_resource, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=2)
    start = datetime.combine(FALL_BACK, time(0), NEW_YORK)
    end = datetime.combine(FALL_BACK, time(3), NEW_YORK)
    with django_capture_on_commit_callbacks(execute=False):
        event = services.create_event(
            resource=resource, source="operator_test", start=start, end=end, target_kw=50, by="tester"
        )
    lengths = [i.end - i.start for i in event.intervals.order_by("start")]
    assert lengths == [HOUR] * 4


@override_settings(TIME_ZONE="America/New_York")
def test_spring_forward_event_on_a_server_in_a_dst_time_zone_gets_four_one_hour_intervals(api_as, make_resource):
    resource = make_resource(generators=2)
    start = datetime.combine(SPRING_FORWARD, time(0), NEW_YORK)
    end = datetime.combine(SPRING_FORWARD, time(5), NEW_YORK)
    client = api_as("operator")
    client.raise_request_exception = False
    response = client.post(EVENTS, event_body(resource, start, end, target_kw="50"), format="json")

    assert response.status_code == 201
    assert _interval_lengths(response.json()) == [HOUR] * 4


# --- 4. reading an event: detail and allocations ------------------------------------


def test_detail_shows_intervals_transitions_rounds_and_performance(api_as, make_resource):
    resource = make_resource(generators=4)
    client = api_as("operator")
    start = top_of_hour()
    created = client.post(
        EVENTS, event_body(resource, start, start + 2 * HOUR, target_kw="120", over_commit_pct="0"), format="json"
    )
    assert created.status_code == 201, created.content
    event_id = created.json()["id"]
    during = start + timedelta(minutes=20)
    drive(event_id, now=during)
    # Two of the three commanded devices report for the first interval.
    commands = list(DeviceCommand.objects.filter(event_id=event_id).order_by("device_id"))
    assert len(commands) == 3
    services.report_delivery(command=commands[0], reports=[(start, 50.0)], now=during)
    services.report_delivery(command=commands[1], reports=[(start, 45.0)], now=during)

    response = api_as("analyst").get(f"{EVENTS}{event_id}/")

    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "active"
    assert [Decimal(i["target_kw"]) for i in body["intervals"]] == [Decimal("120")] * 2
    assert [(t["action"], t["from_state"], t["to_state"]) for t in body["transitions"]] == [
        ("create", "", "scheduled"),
        ("notify", "scheduled", "notified"),
        ("start", "notified", "active"),
    ]
    assert [(r["number"], r["reason"], r["target_kw"], r["allocated_kw"], r["devices"]) for r in body["rounds"]] == [
        (1, "first allocation", [120.0, 120.0], [120.0, 120.0], 3)
    ]
    assert [
        (ts(p["start"]), p["target_kw"], p["allocated_kw"], p["delivered_kw"], p["reporting_devices"])
        for p in body["performance"]
    ] == [(start, 120.0, 120.0, 95.0, 2), (start + HOUR, 120.0, 120.0, None, 0)]
    assert body["commands"] == {"pending": 3}


def test_allocations_list_each_member_with_reason_and_explanation(api_as, make_resource):
    resource = make_resource(generators=4)
    members = sorted(ResourceMembership.objects.filter(resource=resource).values_list("device_id", flat=True))
    offline_id = members[0]
    DeviceStatus.objects.create(device_id=offline_id, online=False, last_seen_at=datetime.now(UTC))
    client = api_as("operator")
    start = top_of_hour()
    created = client.post(
        EVENTS, event_body(resource, start, start + HOUR, target_kw="100", over_commit_pct="0"), format="json"
    )
    assert created.status_code == 201, created.content
    event_id = created.json()["id"]
    drive(event_id, now=datetime.now(UTC))  # notified: first allocation

    response = client.get(f"{EVENTS}{event_id}/allocations/")

    assert response.status_code == 200
    rows = response.json()["results"]
    assert sorted(r["device"] for r in rows) == members
    by_device = {r["device"]: r for r in rows}
    assert by_device[offline_id]["reason"] == "offline"
    assert by_device[offline_id]["kw"] == [0.0]
    assert by_device[offline_id]["explanation"].startswith("Offline")
    reasons = sorted(r["reason"] for r in rows)
    assert reasons == ["allocated", "allocated", "not_needed", "offline"]
    for row in rows:
        assert row["explanation"]
        if row["reason"] == "allocated":
            assert row["kw"] == [50.0] and "allocated up to 50.00 kW" in row["explanation"]
        if row["reason"] == "not_needed":
            assert row["kw"] == [0.0] and "not needed" in row["explanation"]
    assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)
    assert by_device[offline_id]["rank"] == 4

    filtered = client.get(f"{EVENTS}{event_id}/allocations/", {"reason": "not_needed"}).json()["results"]
    assert [r["reason"] for r in filtered] == ["not_needed"]


# --- 5. cancelling -------------------------------------------------------------------


def _notified_event(client, resource, *, target_kw="120") -> int:
    start = top_of_hour()
    created = client.post(
        EVENTS, event_body(resource, start, start + 2 * HOUR, target_kw=target_kw, over_commit_pct="0"), format="json"
    )
    assert created.status_code == 201, created.content
    event_id = created.json()["id"]
    drive(event_id, now=datetime.now(UTC))
    return event_id


def test_cancel_with_a_reason_cancels_the_event(api_as, make_resource):
    resource = make_resource(generators=2)
    client = api_as("operator")
    start = top_of_hour()
    event_id = client.post(EVENTS, event_body(resource, start, start + HOUR, target_kw="50"), format="json").json()[
        "id"
    ]

    response = client.post(f"{EVENTS}{event_id}/cancel/", {"reason": "market withdrew the call"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled"
    assert DispatchEvent.objects.get(pk=event_id).state == "cancelled"
    transition = EventTransition.objects.filter(event_id=event_id).last()
    assert (transition.action, transition.from_state, transition.to_state, transition.reason) == (
        "cancel",
        "scheduled",
        "cancelled",
        "market withdrew the call",
    )


def test_cancel_requires_a_reason(api_as, make_resource):
    resource = make_resource(generators=2)
    client = api_as("operator")
    start = top_of_hour()
    event_id = client.post(EVENTS, event_body(resource, start, start + HOUR, target_kw="50"), format="json").json()[
        "id"
    ]

    response = client.post(f"{EVENTS}{event_id}/cancel/", {}, format="json")

    assert response.status_code == 400
    assert fields_of(response) == {"reason"}
    assert DispatchEvent.objects.get(pk=event_id).state == "scheduled"


def test_cancel_sends_cancel_commands_to_devices_holding_a_live_command(api_as, make_resource):
    resource = make_resource(generators=4)
    client = api_as("operator")
    event_id = _notified_event(client, resource, target_kw="120")
    commanded = set(
        DeviceCommand.objects.filter(event_id=event_id, kind="dispatch", status="pending").values_list(
            "device_id", flat=True
        )
    )
    assert len(commanded) == 3

    response = client.post(f"{EVENTS}{event_id}/cancel/", {"reason": "grid emergency over"}, format="json")
    assert response.status_code == 200, response.content
    issue_pending(event_id)

    cancels = DeviceCommand.objects.filter(event_id=event_id, kind="cancel")
    assert set(cancels.values_list("device_id", flat=True)) == commanded
    assert all(c.status == "pending" and c.schedule == [] and c.sequence == 2 for c in cancels)
    assert set(DeviceCommand.objects.filter(event_id=event_id, kind="dispatch").values_list("status", flat=True)) == {
        "superseded"
    }
    event = DispatchEvent.objects.get(pk=event_id)
    assert event.state == "cancelled" and event.commands_issued_round == event.allocation_round == 2


# --- 6. modifying --------------------------------------------------------------------


def test_modify_replaces_intervals_records_a_transition_and_reallocates(api_as, make_resource):
    resource = make_resource(generators=4)
    client = api_as("operator")
    event_id = _notified_event(client, resource, target_kw="120")
    assert AllocationRound.objects.filter(event_id=event_id).count() == 1

    response = client.post(
        f"{EVENTS}{event_id}/modify/", {"target_kw": "60", "reason": "utility lowered the ask"}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert [Decimal(i["target_kw"]) for i in body["intervals"]] == [Decimal("60")] * 2
    assert (
        list(EventInterval.objects.filter(event_id=event_id).values_list("target_kw", flat=True)) == [Decimal("60")] * 2
    )
    transition = EventTransition.objects.filter(event_id=event_id).last()
    assert (transition.action, transition.from_state, transition.to_state, transition.reason) == (
        "modify",
        "notified",
        "notified",
        "utility lowered the ask",
    )
    rounds = list(AllocationRound.objects.filter(event_id=event_id).order_by("number"))
    assert [r.number for r in rounds] == [1, 2]
    assert rounds[1].reason == "modified: utility lowered the ask"
    assert rounds[1].allocated_kw == [60.0, 60.0]
    assert body["allocation_round"] == 2
    assert sum(sum(a.kw) for a in Allocation.objects.filter(event_id=event_id)) == pytest.approx(120.0)


def test_modify_requires_a_reason(api_as, make_resource):
    resource = make_resource(generators=2)
    client = api_as("operator")
    start = top_of_hour()
    event_id = client.post(EVENTS, event_body(resource, start, start + HOUR, target_kw="50"), format="json").json()[
        "id"
    ]

    response = client.post(f"{EVENTS}{event_id}/modify/", {"target_kw": "60"}, format="json")

    assert response.status_code == 400
    assert fields_of(response) == {"reason"}
    assert list(EventInterval.objects.filter(event_id=event_id).values_list("target_kw", flat=True)) == [Decimal("50")]


# --- 7. inbound market instructions ---------------------------------------------------


def test_instruction_creates_a_market_event(make_resource):
    resource = make_resource(generators=2)
    client, _ = market_client()
    start = top_of_hour()
    response = client.post(
        INSTRUCTIONS, instruction(resource, start, start + 2 * HOUR, instruction_id="PJM-DISP-42"), format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    event = DispatchEvent.objects.get(pk=body["id"])
    assert (event.resource_id, event.source, event.external_ref) == (resource.pk, "market_instruction", "PJM-DISP-42")
    assert body["source"] == "market_instruction" and body["external_ref"] == "PJM-DISP-42"
    assert event.intervals.count() == 2
    assert event.created_by_label.startswith("PJM market_instruction")


def test_resending_the_same_instruction_returns_the_same_event(make_resource):
    resource = make_resource(generators=2)
    client, _ = market_client()
    start = top_of_hour()
    body = instruction(resource, start, start + 2 * HOUR)
    first = client.post(INSTRUCTIONS, body, format="json")
    assert first.status_code == 201

    again = client.post(INSTRUCTIONS, body, format="json")

    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]
    assert DispatchEvent.objects.count() == 1


def test_reusing_an_instruction_id_for_a_different_target_is_refused(make_resource):
    resource = make_resource(generators=2)
    client, _ = market_client()
    start = top_of_hour()
    assert (
        client.post(INSTRUCTIONS, instruction(resource, start, start + HOUR, target_kw="80"), format="json").status_code
        == 201
    )

    response = client.post(INSTRUCTIONS, instruction(resource, start, start + HOUR, target_kw="90"), format="json")

    assert response.status_code == 409
    assert [(e["field"], e["code"]) for e in errors_of(response)] == [("instruction_id", "instruction_id_reused")]
    assert DispatchEvent.objects.count() == 1
    assert list(EventInterval.objects.values_list("target_kw", flat=True)) == [Decimal("80")]


def test_instruction_for_a_resource_of_another_market_is_refused(make_resource):
    resource = make_resource(generators=2)  # registered in PJM
    client, _ = market_client("CAISO")
    start = top_of_hour()
    response = client.post(INSTRUCTIONS, instruction(resource, start, start + HOUR), format="json")

    assert response.status_code == 400
    assert fields_of(response) == {"resource"}
    assert not DispatchEvent.objects.exists()


def _registered_resource_in(market_code: str):
    """A registered resource (no members needed) in another market, with its market id."""
    other = market(market_code)
    resource = aggregation.create_resource(
        market=other,
        program=ProgramFactory(market=other),
        name=f"vr-{market_code}",
        scope_kind="pricing_node",
        scope="NODE_1",
        by="test",
    )
    type(resource).objects.filter(pk=resource.pk).update(
        state="registered", market_resource_id=f"{market_code}-{resource.pk}"
    )
    resource.refresh_from_db()
    return resource


def test_instruction_for_another_markets_resource_id_is_refused_naming_resource(make_resource):
    make_resource(generators=2)
    caiso_resource = _registered_resource_in("CAISO")
    client, _ = market_client("PJM")
    start = top_of_hour()
    response = client.post(INSTRUCTIONS, instruction(caiso_resource, start, start + HOUR), format="json")

    assert response.status_code == 400
    assert fields_of(response) == {"resource"}
    assert not DispatchEvent.objects.exists()


def test_two_markets_may_use_the_same_instruction_id(make_resource):
    pjm_resource = make_resource(generators=2)
    caiso_resource = _registered_resource_in("CAISO")
    pjm, _ = market_client("PJM")
    caiso, _ = market_client("CAISO")
    start = top_of_hour()
    assert (
        pjm.post(
            INSTRUCTIONS, instruction(pjm_resource, start, start + HOUR, instruction_id="42"), format="json"
        ).status_code
        == 201
    )

    response = caiso.post(
        INSTRUCTIONS, instruction(caiso_resource, start, start + HOUR, instruction_id="42"), format="json"
    )

    assert response.status_code == 201, response.content
    assert DispatchEvent.objects.filter(external_ref="42").count() == 2


def test_instruction_with_an_operator_token_is_401(make_resource, api_as):
    resource = make_resource(generators=2)
    start = top_of_hour()
    response = api_as("admin").post(INSTRUCTIONS, instruction(resource, start, start + HOUR), format="json")

    assert response.status_code == 401
    assert not DispatchEvent.objects.exists()


def test_instruction_with_a_device_token_is_401(make_resource, device_client):
    resource = make_resource(generators=2)
    client, _ = device_client(device=ResourceMembership.objects.filter(resource=resource).first().device)
    start = top_of_hour()
    response = client.post(INSTRUCTIONS, instruction(resource, start, start + HOUR), format="json")

    assert response.status_code == 401
    assert not DispatchEvent.objects.exists()


def test_instruction_without_a_token_is_401(make_resource):
    resource = make_resource(generators=2)
    start = top_of_hour()
    response = APIClient().post(INSTRUCTIONS, instruction(resource, start, start + HOUR), format="json")

    assert response.status_code == 401
    assert not DispatchEvent.objects.exists()


def test_instruction_with_a_revoked_market_token_is_401(make_resource):
    resource = make_resource(generators=2)
    client, credential = market_client()
    MarketCredential.objects.filter(pk=credential.pk).update(revoked_at=datetime.now(UTC))
    start = top_of_hour()
    response = client.post(INSTRUCTIONS, instruction(resource, start, start + HOUR), format="json")

    assert response.status_code == 401
    assert not DispatchEvent.objects.exists()


# --- 8. the issue_market_token command --------------------------------------------------


def test_issue_market_token_prints_a_token_that_authenticates_on_the_inbound_api(make_resource):
    resource = make_resource(generators=2)
    out = StringIO()
    call_command("issue_market_token", "PJM", stdout=out)
    token = out.getvalue().strip()
    assert token.startswith("mkt_")
    credential = MarketCredential.objects.get()
    assert (credential.market.code, credential.source) == ("PJM", "market_instruction")
    assert token not in credential.digest

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    start = top_of_hour()
    response = client.post(INSTRUCTIONS, instruction(resource, start, start + HOUR), format="json")

    assert response.status_code == 201, response.content


def test_issue_market_token_for_an_unknown_market_fails():
    with pytest.raises(CommandError, match="No market"):
        call_command("issue_market_token", "NOPE", stdout=StringIO())
    assert not MarketCredential.objects.exists()


# --- 9. a broker that is down ------------------------------------------------------------


@pytest.fixture
def broker_down():
    """Tasks sent to a port where no Redis listens: the broker is down (the database is not)."""
    with tasks_sent_to(f"redis://127.0.0.1:{free_port()}/0"):
        yield


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_event_created_while_the_broker_is_down_is_created_and_left_to_the_sweep(
    api_as, make_resource, broker_down, caplog
):
    resource = make_resource(generators=4)
    start = top_of_hour()
    client = api_as("operator")
    client.raise_request_exception = False  # a server error is answered, as it would be to a real client

    with caplog.at_level(logging.WARNING, logger="dispatch.jobs"):
        response = client.post(EVENTS, event_body(resource, start, start + 2 * HOUR, target_kw="120"), format="json")

    assert response.status_code == 201, response.content
    event = DispatchEvent.objects.get(pk=response.json()["id"])
    assert (event.state, event.intervals.count()) == ("scheduled", 2)
    assert [t.action for t in EventTransition.objects.filter(event=event)] == ["create"]
    # Its steps were not queued: the beat's sweep takes each when its moment comes.
    assert [r.getMessage() for r in caplog.records if "dispatch.tasks.advance_event" in r.getMessage()]
    assert event.pk not in services.open_events_due(now=event.notify_at - timedelta(seconds=1))
    assert event.pk in services.open_events_due(now=event.notify_at)
    assert event.pk in services.open_events_due(now=event.start)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_instruction_received_while_the_broker_is_down_is_accepted_and_left_to_the_sweep(make_resource, broker_down):
    resource = make_resource(generators=2)
    client, _ = market_client()
    client.raise_request_exception = False
    start = top_of_hour()

    response = client.post(INSTRUCTIONS, instruction(resource, start, start + HOUR), format="json")

    assert response.status_code == 201, response.content
    event = DispatchEvent.objects.get(pk=response.json()["id"])
    assert event.pk in services.open_events_due(now=event.start)


# --- 10. PostgreSQL going away -----------------------------------------------------------


@pytest.fixture
def database_restarting():
    """database_restarting() ends this process's PostgreSQL session, as a PostgreSQL restart ends every
    session: the next statement on it fails."""

    def terminate():
        connection.ensure_connection()
        pid = connection.connection.info.backend_pid
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    yield terminate
    connection.close()


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.content
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["type"] == "service_unavailable" and response.json()["status"] == 503


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_creating_an_event_while_postgresql_restarts_is_503_with_retry_after(
    api_as, make_resource, database_restarting
):
    resource = make_resource(generators=2)
    client = api_as("operator")
    client.raise_request_exception = False
    start = top_of_hour()
    database_restarting()

    assert_unavailable(client.post(EVENTS, event_body(resource, start, start + HOUR, target_kw="50"), format="json"))
    close_old_connections()  # as the end of every request does (the test client skips it)
    assert not DispatchEvent.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_instruction_while_postgresql_restarts_is_503_with_retry_after(make_resource, database_restarting):
    resource = make_resource(generators=2)
    client, _ = market_client()
    client.raise_request_exception = False
    start = top_of_hour()
    database_restarting()

    assert_unavailable(client.post(INSTRUCTIONS, instruction(resource, start, start + HOUR), format="json"))
    close_old_connections()
    assert not DispatchEvent.objects.exists()
