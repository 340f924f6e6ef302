"""A real OCPP server process (dispatch.ocpp.server.Node) on loopback, and chargers played by the `ocpp` package.

The server runs its own event loop on a thread of the test process, with its own database
threads (so the tests using it are transactional); the simulated chargers run on another
loop, driven from the test through `ClientLoop.run`.
"""

import asyncio
import base64
import contextlib
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import connect

from dispatch.ocpp import services as ocpp
from dispatch.ocpp.server import Node
from tests.factories import active_device

EV = {
    "device_type": "ev_charger",
    "manufacturer": "Wallbox",
    "model": "Pulsar Plus",
    "rated_kw": Decimal("7.2"),
    "charge_kw": None,
    "energy_kwh": None,
    "backup_reserve_pct": None,
}


class ClientLoop:
    """An event loop on its own thread for the simulated chargers."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 20):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self):
        async def cancel_all():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class Recorder:
    """What the central system asked of a simulated charger (with when), and how it answers: `answer` is a status,
    or a callable given the charger that returns one (Accepted unless told otherwise)."""

    answer = "Accepted"

    def recorder_setup(self):
        self.profiles, self.cleared, self.received_at = [], [], []

    def reply(self) -> str:
        return self.answer(self) if callable(self.answer) else self.answer

    def record(self, profile: dict) -> None:
        self.profiles.append(profile)
        self.received_at.append(datetime.now(UTC))


class Charger16(Recorder, ChargePoint16):
    @on("SetChargingProfile")
    def on_set_profile(self, connector_id, cs_charging_profiles, **kwargs):
        self.record({"connector_id": connector_id, **cs_charging_profiles})
        return result16.SetChargingProfile(status=self.reply())

    @on("ClearChargingProfile")
    def on_clear_profile(self, **kwargs):
        self.cleared.append(kwargs)
        return result16.ClearChargingProfile(status="Accepted")

    @on("GetCompositeSchedule")
    def on_composite(self, connector_id, duration, **kwargs):
        """The last profile's schedule, as a charger with no other limit composes it."""
        schedule = self.profiles[-1]["charging_schedule"]
        return result16.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=schedule["start_schedule"],
            charging_schedule=schedule,
        )


class Charger201(Recorder, ChargePoint201):
    @on("SetChargingProfile")
    def on_set_profile(self, evse_id, charging_profile, **kwargs):
        self.record({"evse_id": evse_id, **charging_profile})
        return result201.SetChargingProfile(status=self.reply())

    @on("ClearChargingProfile")
    def on_clear_profile(self, **kwargs):
        self.cleared.append(kwargs)
        return result201.ClearChargingProfile(status="Accepted")

    @on("GetCompositeSchedule")
    def on_composite(self, duration, evse_id, **kwargs):
        schedule = self.profiles[-1]["charging_schedule"][0]
        return result201.GetCompositeSchedule(
            status="Accepted",
            schedule={
                "evse_id": evse_id,
                "duration": schedule["duration"],
                "schedule_start": schedule["start_schedule"],
                "charging_rate_unit": "W",
                "charging_schedule_period": schedule["charging_schedule_period"],
            },
        )


def basic(identity: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{identity}:{password}".encode()).decode()


async def open_charger(url: str, identity: str, password: str | None, version: str, answer: str = "Accepted"):
    """A connected simulated charger (its receive loop running), or the handshake's exception."""
    headers = {"Authorization": basic(identity, password)} if password is not None else {}
    websocket = await connect(f"{url}/ocpp/{identity}", subprotocols=[version], additional_headers=headers)
    charger = (Charger16 if version == "ocpp1.6" else Charger201)(identity, websocket, response_timeout=10)
    charger.recorder_setup()
    charger.answer = answer
    charger.task = asyncio.create_task(charger.start())
    return charger


async def close_charger(charger) -> None:
    await charger._connection.close()
    charger.task.cancel()


@contextlib.contextmanager
def running_node():
    """A running Node on a free port of loopback, on its own thread and event loop: `.url` (ws://...), `.node`;
    stopped (connections closed) on exit."""
    loop = asyncio.new_event_loop()
    node_box: dict = {}
    started = threading.Event()

    async def main():
        node = Node(host="127.0.0.1", port=0, db_threads=4)
        node_box["node"], node_box["stop"] = node, asyncio.Event()
        runner = asyncio.create_task(node.run(stop=node_box["stop"]))
        while node.server is None or not node.ready.is_set():
            if runner.done():
                runner.result()
            await asyncio.sleep(0.01)
        started.set()
        await runner

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    assert started.wait(10), "the OCPP server did not start"
    node = node_box["node"]

    class Server:
        url = f"ws://127.0.0.1:{node.port}"

    Server.node, Server.loop = node, loop
    try:
        yield Server
    finally:
        loop.call_soon_threadsafe(node_box["stop"].set)
        thread.join(timeout=15)


@pytest.fixture
def ocpp_server():
    with running_node() as server:
        yield server


@pytest.fixture
def second_ocpp_server():
    """Another server process's Node (as behind a load balancer): it holds its own chargers."""
    with running_node() as server:
        yield server


@pytest.fixture
def clients():
    client_loop = ClientLoop()
    yield client_loop
    client_loop.close()


@pytest.fixture
def ev_charger(program):
    """ev_charger() -> (an active enrolled EV charger, its OCPP password)."""

    def make(**kwargs):
        device = active_device(program, **{**EV, **kwargs})
        _, password = ocpp.issue_password(device=device, by="test")
        return device, password

    return make
