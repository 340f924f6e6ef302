"""Chargers connecting to the OCPP server (1.6J and 2.0.1): the handshake, and what they report lands.

Real websockets on loopback, the `ocpp` package's own charge point classes, the real PostgreSQL.
"""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from aggregator.reference.models import Reading
from dispatch.ocpp import services as ocpp
from dispatch.ocpp.models import Charger, ChargerCredential, ChargingSession
from enrollment.models import DeviceStatus
from tests.dispatch.ocpp.conftest import basic, close_charger, open_charger
from tests.dispatch.test_dispatch_worker import wait_for

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

VERSIONS = ["ocpp1.6", "ocpp2.0.1"]


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def boot(version: str):
    if version == "ocpp1.6":
        return call16.BootNotification(
            charge_point_model="Pulsar Plus", charge_point_vendor="Wallbox", firmware_version="5.17.2"
        )
    return call201.BootNotification(
        charging_station={"model": "Pulsar Plus", "vendor_name": "Wallbox", "firmware_version": "5.17.2"},
        reason="PowerUp",
    )


def status(version: str, state: str):
    """A connector status: 'plugged' or 'free'."""
    if version == "ocpp1.6":
        return call16.StatusNotification(
            connector_id=1, error_code="NoError", status="Charging" if state == "plugged" else "Available"
        )
    return call201.StatusNotification(
        timestamp=iso(datetime.now(UTC)),
        connector_status="Occupied" if state == "plugged" else "Available",
        evse_id=1,
        connector_id=1,
    )


def register(version: str, at: datetime, wh: float, power_w: float | None = None):
    if version == "ocpp1.6":
        values = [
            {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh", "context": "Sample.Clock"}
        ]
        if power_w is not None:
            values.append({"value": str(power_w), "measurand": "Power.Active.Import", "unit": "W"})
        return call16.MeterValues(connector_id=1, meter_value=[{"timestamp": iso(at), "sampled_value": values}])
    values = [
        {
            "value": wh / 1000,
            "measurand": "Energy.Active.Import.Register",
            "context": "Sample.Clock",
            "unit_of_measure": {"unit": "kWh"},
        }
    ]
    if power_w is not None:
        values.append({"value": power_w, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "W"}})
    return call201.MeterValues(evse_id=1, meter_value=[{"timestamp": iso(at), "sampled_value": values}])


def last_quarter_hour() -> datetime:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=now.minute % 15) - timedelta(minutes=30)


# --- the handshake ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", ["no password", "wrong password", "revoked", "unknown identity", "other identity"])
def test_the_handshake_is_refused_without_the_chargers_own_password(ocpp_server, clients, ev_charger, version, case):
    device, password = ev_charger()
    _other, other_password = ev_charger()
    identity = device.serial
    if case == "no password":
        password = None
    elif case == "wrong password":
        password = "0" * 32
    elif case == "revoked":
        for credential in ChargerCredential.objects.filter(charger__device=device):
            ocpp.revoke_password(credential=credential)
    elif case == "unknown identity":
        identity = "NO-SUCH-CHARGER"
    else:  # another charger's password presented under this identity
        password = other_password
    with pytest.raises(InvalidStatus) as refused:
        clients.run(open_charger(ocpp_server.url, identity, password, version))
    assert refused.value.response.status_code == 401
    assert not Charger.objects.filter(connected=True).exists()
    assert not DeviceStatus.objects.filter(device=device).exists()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_charger_with_its_password_connects_with_its_protocol_and_goes_online_until_it_closes(
    ocpp_server, clients, ev_charger, version
):
    device, password = ev_charger()
    charger = clients.run(open_charger(ocpp_server.url, device.serial, password, version))
    assert charger._connection.subprotocol == version
    row = wait_for(lambda: Charger.objects.filter(device=device, connected=True).first(), timeout=5, what="connection")
    assert row.protocol == version and row.node == ocpp_server.node.name
    assert DeviceStatus.objects.get(device=device).online is True

    clients.run(close_charger(charger))
    wait_for(lambda: not Charger.objects.get(device=device).connected, timeout=5, what="the disconnection")
    assert Charger.objects.get(device=device).node == ""


# --- what chargers report --------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_boot_and_connector_status_become_the_devices_firmware_model_and_plug_state(
    ocpp_server, clients, ev_charger, version
):
    device, password = ev_charger()
    charger = clients.run(open_charger(ocpp_server.url, device.serial, password, version))
    answer = clients.run(charger.call(boot(version)))
    assert answer.status == "Accepted" and answer.interval == device.telemetry_interval_seconds
    row = Charger.objects.get(device=device)
    assert (row.vendor, row.model, row.firmware) == ("Wallbox", "Pulsar Plus", "5.17.2")

    clients.run(charger.call(status(version, "plugged")))
    st = DeviceStatus.objects.get(device=device)
    assert (st.ev_plugged_in, st.firmware, st.online) == (True, "5.17.2", True)
    clients.run(charger.call(status(version, "free")))
    assert DeviceStatus.objects.get(device=device).ev_plugged_in is False

    heartbeat = call16.Heartbeat() if version == "ocpp1.6" else call201.Heartbeat()
    clients.run(charger.call(heartbeat))
    wait_for(
        lambda: Charger.objects.get(device=device).last_action == "Heartbeat", timeout=5, what="the batched liveness"
    )
    clients.run(close_charger(charger))


@pytest.mark.parametrize("version", VERSIONS)
def test_clock_aligned_energy_registers_become_the_device_meters_interval_readings(
    ocpp_server, clients, ev_charger, version
):
    device, password = ev_charger()
    charger = clients.run(open_charger(ocpp_server.url, device.serial, password, version))
    start = last_quarter_hour()
    clients.run(charger.call(register(version, start, 10_000)))
    clients.run(charger.call(register(version, start + timedelta(minutes=15), 11_800, power_w=7200)))
    clients.run(charger.call(register(version, start + timedelta(minutes=30), 12_100, power_w=1200)))

    readings = list(Reading.objects.filter(meter_kind=2, meter_id=device.pk).order_by("start"))
    assert [(r.start, r.interval_seconds, float(r.kwh)) for r in readings] == [
        (start, 900, 1.8),
        (start + timedelta(minutes=15), 900, 0.3),
    ]
    assert float(DeviceStatus.objects.get(device=device).power_kw) == 1.2
    # The same sample again (a charger resending after a lost answer) changes nothing.
    clients.run(charger.call(register(version, start + timedelta(minutes=30), 12_100)))
    assert Reading.objects.filter(meter_kind=2, meter_id=device.pk).count() == 2
    clients.run(close_charger(charger))


def test_a_16_transaction_becomes_a_charging_session_with_its_energy(ocpp_server, clients, ev_charger):
    device, password = ev_charger()
    charger = clients.run(open_charger(ocpp_server.url, device.serial, password, "ocpp1.6"))
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    answer = clients.run(
        charger.call(call16.StartTransaction(connector_id=1, id_tag="CAR-1", meter_start=5_000, timestamp=iso(started)))
    )
    assert answer.id_tag_info["status"] == "Accepted"
    session = ChargingSession.objects.get(charger__device=device)
    assert session.transaction_id == str(answer.transaction_id) and session.stopped_at is None
    clients.run(
        charger.call(
            call16.StopTransaction(
                meter_stop=17_250, timestamp=iso(started + timedelta(hours=2)), transaction_id=answer.transaction_id
            )
        )
    )
    session.refresh_from_db()
    assert session.stopped_at == started + timedelta(hours=2)
    assert float(session.energy_kwh) == 12.25 and session.id_tag == "CAR-1"
    clients.run(close_charger(charger))


def test_a_201_transaction_becomes_a_charging_session_with_its_energy(ocpp_server, clients, ev_charger):
    device, password = ev_charger()
    charger = clients.run(open_charger(ocpp_server.url, device.serial, password, "ocpp2.0.1"))
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    def event(kind: str, at: datetime, wh: float, seq: int):
        return call201.TransactionEvent(
            event_type=kind,
            timestamp=iso(at),
            trigger_reason="CablePluggedIn" if kind == "Started" else "EVCommunicationLost",
            seq_no=seq,
            transaction_info={
                "transaction_id": "tx-42",
                **({"stopped_reason": "EVDisconnected"} if kind == "Ended" else {}),
            },
            evse={"id": 1, "connector_id": 1},
            id_token={"id_token": "CAR-2", "type": "ISO14443"},
            meter_value=[
                {
                    "timestamp": iso(at),
                    "sampled_value": [
                        {"value": wh, "measurand": "Energy.Active.Import.Register", "context": "Transaction.Begin"}
                    ],
                }
            ],
        )

    clients.run(charger.call(event("Started", started, 2_000, 0)))
    clients.run(charger.call(event("Updated", started + timedelta(hours=1), 8_000, 1)))
    clients.run(charger.call(event("Ended", started + timedelta(hours=2), 9_500, 2)))
    session = ChargingSession.objects.get(charger__device=device)
    assert (session.transaction_id, session.started_at, session.stopped_at) == (
        "tx-42",
        started,
        started + timedelta(hours=2),
    )
    assert float(session.energy_kwh) == 7.5 and session.stop_reason == "EVDisconnected"
    clients.run(close_charger(charger))


# --- malformed frames --------------------------------------------------------------------------


async def exchange(url: str, identity: str, password: str, version: str, frame: str) -> list:
    async with connect(
        f"{url}/ocpp/{identity}",
        subprotocols=[version],
        additional_headers={"Authorization": basic(identity, password)},
    ) as websocket:
        await websocket.send(frame)
        return json.loads(await asyncio.wait_for(websocket.recv(), 5))


BAD_FRAMES = {
    "ocpp1.6": [
        ("not json", "[2, 'x'", "-1", "FormationViolation"),
        (
            "unknown field",
            '[2,"a1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Charging","colour":"red"}]',
            "a1",
            "FormationViolation",
        ),
        (
            "bad enum",
            '[2,"a2","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Plugged"}]',
            "a2",
            "PropertyConstraintViolation",
        ),
        (
            "wrong type",
            '[2,"a3","StatusNotification",{"connectorId":"one","errorCode":"NoError","status":"Charging"}]',
            "a3",
            "TypeConstraintViolation",
        ),
        (
            "missing field",
            '[2,"a4","StatusNotification",{"connectorId":1,"status":"Charging"}]',
            "a4",
            "OccurenceConstraintViolation",
        ),
    ],
    "ocpp2.0.1": [
        ("not json", "{{{", "-1", "RpcFrameworkError"),
        (
            "unknown field",
            '[2,"b1","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z","connectorStatus":"Occupied","evseId":1,"connectorId":1,"colour":"red"}]',
            "b1",
            "FormatViolation",
        ),
        (
            "bad enum",
            '[2,"b2","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z","connectorStatus":"Plugged","evseId":1,"connectorId":1}]',
            "b2",
            "PropertyConstraintViolation",
        ),
        (
            "wrong type",
            '[2,"b3","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z","connectorStatus":"Occupied","evseId":"one","connectorId":1}]',
            "b3",
            "TypeConstraintViolation",
        ),
    ],
}


@pytest.mark.parametrize(
    "version,case,frame,unique_id,code",
    [(v, *case) for v, cases in BAD_FRAMES.items() for case in cases],
    ids=[f"{v}-{case[0]}" for v, cases in BAD_FRAMES.items() for case in cases],
)
def test_a_malformed_frame_gets_the_ocpp_error_and_changes_nothing(
    ocpp_server, clients, ev_charger, version, case, frame, unique_id, code
):
    device, password = ev_charger()
    answer = clients.run(exchange(ocpp_server.url, device.serial, password, version, frame))
    assert answer[:3] == [4, unique_id, code]
    charger = Charger.objects.get(device=device)
    assert charger.connectors == {} and charger.last_action == ""
    assert DeviceStatus.objects.get(device=device).ev_plugged_in is None
