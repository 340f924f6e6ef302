"""Dispatch reaches OCPP chargers (1.6J and 2.0.1) as charging profiles, and their answers are the acknowledgements.

A real Celery worker fans the event out (on a queue of this test's own), the chunk's OCPP
chargers are published to the server process holding them through Redis, and the server
sends SetChargingProfile to the `ocpp` package's charge points over real websockets.
"""

from datetime import UTC, datetime, timedelta

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from dispatch import services
from dispatch.models import Allocation, DeviceCommand, DeviceOptOut, DeviceSchedule
from dispatch.ocpp import delivery, mapping
from dispatch.ocpp.models import Charger
from tests.dispatch.ocpp.conftest import close_charger, open_charger
from tests.dispatch.test_dispatch_worker import celery_worker, dispatch_queue, wait_for  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

VERSIONS = ["ocpp1.6", "ocpp2.0.1"]


def plugged(version: str):
    if version == "ocpp1.6":
        return call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
    return call201.StatusNotification(
        timestamp=datetime.now(UTC).isoformat(), connector_status="Occupied", evse_id=1, connector_id=1
    )


def schedule_of(profile: dict, version: str) -> tuple[int, str, dict]:
    """(profile id, purpose, its schedule) of a profile as the simulated charger received it (snake case)."""
    if version == "ocpp1.6":
        return profile["charging_profile_id"], profile["charging_profile_purpose"], profile["charging_schedule"]
    return profile["id"], profile["charging_profile_purpose"], profile["charging_schedule"][0]


def limit_w(reduction_kw: float) -> float:
    """The charging limit a reduction leaves the charger (its rated 7.2 kW less the reduction), in W."""
    return float(round((7.2 - reduction_kw) * 1000))


def limits(schedule: dict) -> list[tuple[int, float]]:
    return [(p["start_period"], float(p["limit"])) for p in schedule["charging_schedule_period"]]


def start_event(resource, *, target_kw: float, in_seconds: int = 3):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=in_seconds)
    return services.create_event(
        resource=resource,
        source="operator_test",
        start=start,
        end=start + timedelta(hours=1),
        notify_at=datetime.now(UTC),
        target_kw=target_kw,
        by="tester",
        over_commit_pct=0,
    )


def connect_plugged(clients, server, device, password, version, answer="Accepted"):
    charger = clients.run(open_charger(server.url, device.serial, password, version, answer=answer))
    clients.run(charger.call(plugged(version)))
    return charger


def command_of(event, device) -> DeviceCommand | None:
    return DeviceCommand.objects.filter(event=event, device=device).order_by("-sequence").first()


def status_of(event, device) -> str | None:
    command = command_of(event, device)
    return None if command is None else command.status


@pytest.mark.parametrize("version", VERSIONS)
def test_a_dispatch_command_arrives_within_a_second_as_a_station_profile_and_accepted_is_its_ack(
    ocpp_server, clients, ev_charger, make_resource, celery_worker, version
):
    device, password = ev_charger()
    charger = connect_plugged(clients, ocpp_server, device, password, version)
    resource = make_resource(devices=[device])

    event = start_event(resource, target_kw=5)
    wait_for(lambda: charger.profiles, timeout=20, what="the charging profile")
    command = command_of(event, device)
    assert charger.received_at[0] - command.created_at < timedelta(seconds=1)

    [profile] = charger.profiles
    profile_id, purpose, schedule = schedule_of(profile, version)
    assert profile_id == mapping.dispatch_profile_id(event.pk)
    assert purpose == ("ChargePointMaxProfile" if version == "ocpp1.6" else "ChargingStationMaxProfile")
    assert profile.get("connector_id", profile.get("evse_id")) == 0
    assert profile["charging_profile_kind"] == "Absolute" and schedule["charging_rate_unit"] == "W"
    assert mapping.parse_time(schedule["start_schedule"]) == event.start and schedule["duration"] == 3600
    allocated = Allocation.objects.get(event=event, device=device).kw[0]
    assert allocated > 0
    assert limits(schedule) == [(0, limit_w(allocated))]
    assert mapping.parse_time(profile["valid_to"]) == command.expires_at

    wait_for(lambda: status_of(event, device) == "accepted", timeout=5, what="the acknowledgement")
    assert command_of(event, device).acknowledged_at is not None
    # What it applies is checked against its composite schedule.
    wait_for(lambda: Charger.objects.get(device=device).applies_profile, timeout=5, what="the composite schedule")

    # The cancellation clears it.
    services.cancel(event=event, by="tester", reason="not needed")
    wait_for(lambda: charger.cleared, timeout=20, what="ClearChargingProfile")
    assert charger.cleared[0].get("id", charger.cleared[0].get("charging_profile_id")) == profile_id
    cancel = command_of(event, device)
    assert cancel.kind == "cancel"
    wait_for(lambda: status_of(event, device) == "accepted", timeout=5, what="the cancel's acknowledgement")
    clients.run(close_charger(charger))


def test_behind_a_load_balancer_each_command_reaches_the_server_process_holding_its_charger(
    ocpp_server, second_ocpp_server, clients, ev_charger, make_resource, celery_worker
):
    """Two server processes, a charger on each (one 1.6J, one 2.0.1): one event's commands are published to the
    process that holds each charger, and each arrives within a second of being written, over its own connection."""
    first, first_password = ev_charger()
    second, second_password = ev_charger()
    on_first = connect_plugged(clients, ocpp_server, first, first_password, "ocpp1.6")
    on_second = connect_plugged(clients, second_ocpp_server, second, second_password, "ocpp2.0.1")
    held = dict(Charger.objects.filter(device__in=[first, second]).values_list("device_id", "node"))
    assert held == {first.pk: ocpp_server.node.name, second.pk: second_ocpp_server.node.name}

    event = start_event(make_resource(devices=[first, second]), target_kw=8)
    wait_for(lambda: on_first.profiles and on_second.profiles, timeout=20, what="both charging profiles")
    for charger, device in ((on_first, first), (on_second, second)):
        assert len(charger.profiles) == 1
        assert charger.received_at[0] - command_of(event, device).created_at < timedelta(seconds=1)
    wait_for(lambda: status_of(event, first) == status_of(event, second) == "accepted", timeout=5, what="both answers")
    clients.run(close_charger(on_first))
    clients.run(close_charger(on_second))


@pytest.mark.parametrize("version", VERSIONS)
def test_a_rejected_profile_takes_the_charger_out_and_another_charger_replaces_it(
    ocpp_server, clients, ev_charger, make_resource, celery_worker, version
):
    (first, first_password), (second, second_password) = ev_charger(), ev_charger()
    answers = []

    def first_refuses(charger) -> str:
        """Whichever charger hears of the event first refuses; every later profile is accepted."""
        answers.append(charger.id)
        return "Rejected" if len(answers) == 1 else "Accepted"

    chargers = [
        connect_plugged(clients, ocpp_server, d, p, version, answer=first_refuses)
        for d, p in ((first, first_password), (second, second_password))
    ]
    resource = make_resource(devices=[first, second])
    event = start_event(resource, target_kw=0.5)  # one charger's worth at any hour (at least 10% of 7.2 kW)

    wait_for(lambda: answers, timeout=20, what="a profile")
    refuser = first if answers[0] == first.serial else second
    other = second if refuser is first else first
    wait_for(lambda: status_of(event, refuser) == "rejected", timeout=10, what="the rejection")
    assert not DeviceCommand.objects.filter(event=event, device=other, round=1).exists()  # not needed at first
    assert DeviceOptOut.objects.filter(device=refuser, event=event).exists()
    assert command_of(event, refuser).reason.startswith("SetChargingProfile Rejected")

    # The rebalance gives the other charger the kW; its profile says so, and it accepts.
    wait_for(
        lambda: (
            Allocation.objects.get(event=event, device=refuser).kw[0] == 0
            and Allocation.objects.get(event=event, device=other).kw[0] > 0
            and status_of(event, other) == "accepted"
        ),
        timeout=20,
        what="the other charger to take the rejected kW",
    )
    other_charger = chargers[0] if other is first else chargers[1]
    taken = Allocation.objects.get(event=event, device=other).kw[0]
    wait_for(
        lambda: (
            other_charger.profiles
            and limits(schedule_of(other_charger.profiles[-1], version)[2]) == [(0, limit_w(taken))]
        ),
        timeout=5,
        what="the other charger's profile",
    )
    for charger in chargers:
        clients.run(close_charger(charger))


@pytest.mark.parametrize("version", VERSIONS)
def test_a_charger_not_connected_at_dispatch_gets_its_live_command_when_it_reconnects(
    ocpp_server, clients, ev_charger, make_resource, celery_worker, version
):
    device, password = ev_charger()
    charger = connect_plugged(clients, ocpp_server, device, password, version)
    clients.run(close_charger(charger))
    wait_for(lambda: not Charger.objects.get(device=device).connected, timeout=5, what="the disconnection")

    resource = make_resource(devices=[device])
    event = start_event(resource, target_kw=4)
    wait_for(lambda: command_of(event, device), timeout=20, what="the command")
    assert command_of(event, device).status == "pending"

    again = clients.run(open_charger(ocpp_server.url, device.serial, password, version))
    wait_for(lambda: again.profiles, timeout=10, what="the live command at reconnect")
    allocated = Allocation.objects.get(event=event, device=device).kw[0]
    assert limits(schedule_of(again.profiles[0], version)[2]) == [(0, limit_w(allocated))]
    wait_for(lambda: status_of(event, device) == "accepted", timeout=5, what="the acknowledgement")
    clients.run(close_charger(again))


@pytest.mark.parametrize("version", VERSIONS)
def test_the_nightly_charging_plan_becomes_the_chargers_default_profile(ocpp_server, clients, ev_charger, version):
    device, password = ev_charger()
    charger = clients.run(open_charger(ocpp_server.url, device.serial, password, version))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    DeviceSchedule.objects.create(
        device=device,
        day=start.date(),
        start=start,
        step_seconds=900,
        kw=[0.0, -7.2, -7.2, -3.5] + [0.0] * 92,  # negative: charging
        energy_kwh=[0.0] * 96,
        reserve_kwh=0,
        site_cost=0,
        site_cost_without=0,
    )
    delivery.plans_changed([device.pk])  # what dispatch.schedules tells its listeners once plans are stored

    wait_for(lambda: charger.profiles, timeout=10, what="the default profile")
    profile_id, purpose, schedule = schedule_of(charger.profiles[0], version)
    assert (profile_id, purpose) == (mapping.PLAN_PROFILE_ID, "TxDefaultProfile")
    assert mapping.parse_time(schedule["start_schedule"]) == start and schedule["duration"] == 96 * 900
    assert limits(schedule) == [(0, 0), (900, 7200), (2700, 3500), (3600, 0)]
    wait_for(lambda: Charger.objects.get(device=device).plan_answer == "Accepted", timeout=5, what="the answer")
    clients.run(close_charger(charger))
