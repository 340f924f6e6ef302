"""Simulated OCPP chargers for bench_ocpp, in client processes of their own (no Django here)."""

import asyncio
import base64
import logging
import time

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import connect


def client(url: str, chargers: list[tuple[str, str, str]], connected, go, out) -> None:
    """One client process: connect its chargers, answer every profile Accepted, report (identity, received at)."""
    logging.getLogger("ocpp").setLevel(logging.CRITICAL)
    received: dict[str, float] = {}

    class Charger16(ChargePoint16):
        @on("SetChargingProfile")
        def on_profile(self, connector_id, cs_charging_profiles, **kwargs):
            received.setdefault(self.id, time.time())
            self.schedule = cs_charging_profiles["charging_schedule"]
            return result16.SetChargingProfile(status="Accepted")

        @on("GetCompositeSchedule")
        def on_composite(self, connector_id, duration, **kwargs):
            return result16.GetCompositeSchedule(
                status="Accepted",
                connector_id=connector_id,
                schedule_start=self.schedule["start_schedule"],
                charging_schedule=self.schedule,
            )

    class Charger201(ChargePoint201):
        @on("SetChargingProfile")
        def on_profile(self, evse_id, charging_profile, **kwargs):
            received.setdefault(self.id, time.time())
            self.schedule = charging_profile["charging_schedule"][0]
            return result201.SetChargingProfile(status="Accepted")

        @on("GetCompositeSchedule")
        def on_composite(self, duration, evse_id, **kwargs):
            return result201.GetCompositeSchedule(
                status="Accepted",
                schedule={
                    "evse_id": evse_id,
                    "duration": self.schedule["duration"],
                    "schedule_start": self.schedule["start_schedule"],
                    "charging_rate_unit": "W",
                    "charging_schedule_period": self.schedule["charging_schedule_period"],
                },
            )

    async def main():
        gate = asyncio.Semaphore(100)
        tasks = []

        async def one(identity: str, password: str, version: str):
            auth = "Basic " + base64.b64encode(f"{identity}:{password}".encode()).decode()
            async with gate:
                for attempt in range(20):
                    try:
                        websocket = await connect(
                            f"{url}/ocpp/{identity}",
                            subprotocols=[version],
                            additional_headers={"Authorization": auth},
                            open_timeout=60,
                            ping_interval=None,
                        )
                        break
                    except (OSError, TimeoutError):
                        await asyncio.sleep(0.5 + attempt)
                else:
                    return False
            cp = (Charger16 if version == "ocpp1.6" else Charger201)(identity, websocket, response_timeout=60)
            tasks.append(asyncio.create_task(cp.start()))
            return True

        results = await asyncio.gather(*(one(*c) for c in chargers))
        connected.put(sum(results))
        while not go.is_set():
            await asyncio.sleep(0.1)
        deadline = time.time() + 120
        while len(received) < len(chargers) and time.time() < deadline:
            await asyncio.sleep(0.1)
        out.put(dict(received))
        await asyncio.sleep(60)  # keep the connections while the answers are recorded; the parent ends us

    asyncio.run(main())
