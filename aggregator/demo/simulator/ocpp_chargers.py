"""Part of the demo's EV chargers speak OCPP (1.6J and 2.0.1) to the platform's central system instead of the device API.

Each runs the `ocpp` package's charge point on one event loop thread beside the fleet: it
connects to `ws://.../ocpp/<serial>` with its password, boots, reports its connector status
when the car comes or goes, clock-aligned meter values every five minutes (its energy
register and power) and heartbeats; it answers every SetChargingProfile Accepted (or, for a
customer who overrides, Rejected) and follows the station limit its dispatch profile sets:
the reduction it is asked for is its rated kW less the limit, executed by the same device
model as the fleet's other devices. Dropped connections are retried.
"""

import asyncio
import base64
import logging
import threading
from datetime import UTC, datetime, timedelta

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

log = logging.getLogger("vpp.simulator.ocpp")

METER_SECONDS = 300
HEARTBEAT_SECONDS = 300


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def commands_from(profile: dict, rated_kw: float, *, v16: bool) -> dict | None:
    """A dispatch profile (snake case, as received) as the fleet's command shape: kW of reduction per period."""
    schedule = profile["charging_schedule"] if v16 else profile["charging_schedule"][0]
    if profile["charging_profile_purpose"] not in ("ChargePointMaxProfile", "ChargingStationMaxProfile"):
        return None  # the nightly plan's default profile: the car charges as it would
    start = _time(schedule["start_schedule"])
    end = start + timedelta(seconds=schedule["duration"])
    periods = schedule["charging_schedule_period"]
    items = []
    for n, period in enumerate(periods):
        begin = start + timedelta(seconds=period["start_period"])
        stop = start + timedelta(seconds=periods[n + 1]["start_period"]) if n + 1 < len(periods) else end
        items.append(
            {"start": begin.isoformat(), "end": stop.isoformat(), "kw": max(0.0, rated_kw - period["limit"] / 1000)}
        )
    key = profile["charging_profile_id"] if v16 else profile["id"]
    return {
        "id": f"ocpp-{key}",
        "kind": "dispatch",
        "not_before": start.isoformat(),
        "expires_at": profile.get("valid_to") or end.isoformat(),
        "schedule": items,
    }


class _Simulated:
    def attach(self, device, rated_kw: float, refuses: bool):
        self.device, self.rated_kw, self.refuses = device, rated_kw, refuses

    def take(self, profile: dict, v16: bool) -> str:
        command = commands_from(profile, self.rated_kw, v16=v16)
        if command is None:
            return "Accepted"
        if self.refuses:
            return "Rejected"
        self.device.commands = {**self.device.commands, command["id"]: command}
        return "Accepted"

    def clear(self, profile_id) -> None:
        self.device.commands = {k: v for k, v in self.device.commands.items() if k != f"ocpp-{profile_id}"}


class Charger16(_Simulated, ChargePoint16):
    @on("SetChargingProfile")
    def on_profile(self, connector_id, cs_charging_profiles, **kwargs):
        return result16.SetChargingProfile(status=self.take(cs_charging_profiles, True))

    @on("ClearChargingProfile")
    def on_clear(self, id=None, **kwargs):
        self.clear(id)
        return result16.ClearChargingProfile(status="Accepted")


class Charger201(_Simulated, ChargePoint201):
    @on("SetChargingProfile")
    def on_profile(self, evse_id, charging_profile, **kwargs):
        return result201.SetChargingProfile(status=self.take(charging_profile, False))

    @on("ClearChargingProfile")
    def on_clear(self, charging_profile_id=None, **kwargs):
        self.clear(charging_profile_id)
        return result201.ClearChargingProfile(status="Accepted")


class OcppChargers:
    """The fleet's OCPP chargers, on their own event loop thread. `update` is called from the fleet's tick."""

    def __init__(self, url: str, entries: list[dict], devices: dict):
        self.url = url.rstrip("/")
        self.loop = asyncio.new_event_loop()
        self.entries = [e for e in entries if e["device"] in devices]
        self.devices = devices
        self.stations: dict[int, _Simulated] = {}
        self.state: dict[int, dict] = {}  # device id -> what it last reported
        self.thread = threading.Thread(target=self.loop.run_forever, name="ocpp-chargers", daemon=True)

    def start(self) -> None:
        self.thread.start()
        for entry in self.entries:
            asyncio.run_coroutine_threadsafe(self._keep_connected(entry), self.loop)

    async def _keep_connected(self, entry: dict) -> None:
        device = self.devices[entry["device"]]
        v16 = entry["version"] == "ocpp1.6"
        auth = base64.b64encode(f"{entry['identity']}:{entry['password']}".encode()).decode()
        while True:
            try:
                async with connect(
                    f"{self.url}/ocpp/{entry['identity']}",
                    subprotocols=[entry["version"]],
                    additional_headers={"Authorization": f"Basic {auth}"},
                ) as websocket:
                    station = (Charger16 if v16 else Charger201)(entry["identity"], websocket)
                    station.attach(device, float(device.model.rated_kw), device.model.opts_out("ocpp"))
                    runner = asyncio.create_task(station.start())
                    await station.call(
                        call16.BootNotification(charge_point_model="Demo AC", charge_point_vendor="VPP demo")
                        if v16
                        else call201.BootNotification(
                            charging_station={"model": "Demo AC", "vendor_name": "VPP demo"}, reason="PowerUp"
                        )
                    )
                    self.stations[entry["device"]] = station
                    self.state[entry["device"]] = {"plugged": None, "meter_at": None, "beat_at": None}
                    await runner
            except (OSError, WebSocketException, TimeoutError) as exc:
                log.info("OCPP charger %s: %s; connecting again in 10 s", entry["identity"], exc)
            finally:
                self.stations.pop(entry["device"], None)
            await asyncio.sleep(10)

    def update(self, device_id: int, now: datetime, *, plugged: bool | None, power_kw: float, register_wh: float):
        """From the fleet's tick: what the charger would report now (sent on the charger's loop)."""
        if device_id in self.stations:
            asyncio.run_coroutine_threadsafe(self._report(device_id, now, plugged, power_kw, register_wh), self.loop)

    async def _report(self, device_id: int, now: datetime, plugged, power_kw: float, register_wh: float) -> None:
        station, state = self.stations.get(device_id), self.state.get(device_id)
        if station is None or state is None:
            return
        v16 = isinstance(station, ChargePoint16)
        try:
            if plugged is not None and plugged != state["plugged"]:
                state["plugged"] = plugged
                await station.call(
                    call16.StatusNotification(
                        connector_id=1, error_code="NoError", status="Charging" if plugged else "Available"
                    )
                    if v16
                    else call201.StatusNotification(
                        timestamp=_iso(now),
                        connector_status="Occupied" if plugged else "Available",
                        evse_id=1,
                        connector_id=1,
                    )
                )
            boundary = datetime.fromtimestamp(now.timestamp() // METER_SECONDS * METER_SECONDS, UTC)
            if state["meter_at"] != boundary and now - boundary < timedelta(seconds=10):
                state["meter_at"] = boundary
                await station.call(self._meter_values(v16, boundary, power_kw, register_wh))
            elif state["beat_at"] is None or (now - state["beat_at"]).total_seconds() >= HEARTBEAT_SECONDS:
                state["beat_at"] = now
                await station.call(call16.Heartbeat() if v16 else call201.Heartbeat())
        except (OSError, WebSocketException, TimeoutError) as exc:
            log.info("OCPP charger %s: report failed: %s", station.id, exc)

    @staticmethod
    def _meter_values(v16: bool, at: datetime, power_kw: float, register_wh: float):
        if v16:
            values = [
                {
                    "value": f"{register_wh:.0f}",
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                    "context": "Sample.Clock",
                },
                {
                    "value": f"{max(power_kw, 0) * 1000:.0f}",
                    "measurand": "Power.Active.Import",
                    "unit": "W",
                    "context": "Sample.Clock",
                },
            ]
            return call16.MeterValues(connector_id=1, meter_value=[{"timestamp": _iso(at), "sampled_value": values}])
        values = [
            {
                "value": round(register_wh),
                "measurand": "Energy.Active.Import.Register",
                "context": "Sample.Clock",
                "unit_of_measure": {"unit": "Wh"},
            },
            {
                "value": round(max(power_kw, 0) * 1000),
                "measurand": "Power.Active.Import",
                "context": "Sample.Clock",
                "unit_of_measure": {"unit": "W"},
            },
        ]
        return call201.MeterValues(evse_id=1, meter_value=[{"timestamp": _iso(at), "sampled_value": values}])

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
