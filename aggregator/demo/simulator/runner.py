"""The simulated fleet at work: each device a client of the public device API with its own token.

Every tick (TICK_SECONDS) each online device does what is due: a heartbeat with its state,
a poll for commands at the interval the platform recommends, an acknowledgement (or, for
about one customer in twenty, an override) of each new command, execution of the kW its
schedule asks for at that moment as its model can deliver it, and delivery reports for the
intervals it worked in. One device per site also posts the site meter's hourly reading. EV
chargers the seed gave an OCPP password speak OCPP instead (ocpp_chargers): status, meter
values and the profiles they follow go over their websocket.
Requests go out from a small thread pool over kept-alive connections. The simulator never
reads the database: what it knows of a device, the device API told it.
"""

import http.client
import json
import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aggregator.demo.simulator import behaviour, device_models, ocpp_chargers

log = logging.getLogger("vpp.simulator")

TICK_SECONDS = 5.0
HEARTBEAT_SECONDS = 60
REPORT_SECONDS = 30
METER_SECONDS = 3600


class DeviceAPI:
    """Minimal JSON over HTTP/1.1 with one kept-alive connection per thread."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        parts = urlsplit(base_url)
        self.https, self.host, self.port = parts.scheme == "https", parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = self._local.conn = kind(self.host, self.port, timeout=self.timeout)
        return conn

    def request(self, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict | None]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):  # a kept-alive connection the server closed is retried once on a fresh one
            conn = self._connection()
            try:
                conn.request(method, self.prefix + path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
                return response.status, (json.loads(data) if data else None)
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


@dataclass
class SimulatedDevice:
    token: str
    device_id: int
    site_id: int
    model: behaviour.DeviceModel
    meter_reporter: bool = False
    commercial: bool = False
    next_heartbeat: float = 0.0
    next_poll: float = 0.0
    next_report: float = 0.0
    commands: dict = field(default_factory=dict)  # id -> command as polled
    answered: set = field(default_factory=set)
    delivered_now: float = 0.0
    work: dict = field(default_factory=lambda: defaultdict(lambda: [0.0, 0.0]))  # (command, interval) -> [kW*s, s]
    unreported: set = field(default_factory=set)
    ocpp: bool = False  # an EV charger that speaks OCPP (ocpp_chargers) rather than the device API
    register_wh: float = 0.0


@dataclass
class Stats:
    requests: int = 0
    errors: int = 0
    heartbeats: int = 0
    polls: int = 0
    acks: int = 0
    opt_outs: int = 0
    reports: int = 0
    readings: int = 0

    def line(self) -> str:
        return (
            f"{self.requests} requests ({self.errors} failed): {self.heartbeats} heartbeats, {self.polls} polls, "
            f"{self.acks} acks, {self.opt_outs} opt-outs, {self.reports} delivery reports, {self.readings} meter readings"
        )


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Fleet:
    def __init__(
        self, *, api: DeviceAPI, tokens: list[str], threads: int = 8, ocpp: list[dict] | None = None, ocpp_url: str = ""
    ):
        self.api, self.tokens = api, tokens
        self.ocpp_entries, self.ocpp_url, self.ocpp = ocpp or [], ocpp_url, None
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sim")
        self.devices: list[SimulatedDevice] = []
        self.sites: dict[int, list[SimulatedDevice]] = defaultdict(list)
        self.meter: dict[int, list] = {}  # site -> [hour start, kWh so far, seconds covered, whole hour]
        self.zones: dict[int, ZoneInfo] = {}
        self.stats = Stats()
        self.last_tick: datetime | None = None

    # --- start-up: each device asks the API who it is ---------------------------------

    def discover(self) -> int:
        def who(token):
            status, body = self.api.request("GET", "/api/device/v1/devices/", token)
            return token, status, body

        for token, status, body in self.pool.map(who, self.tokens):
            self.stats.requests += 1
            if status != 200:
                self.stats.errors += 1
                log.warning("a token was refused (%s); skipping it", status)
                continue
            for info in body.get("results", body) if isinstance(body, dict) else body:
                model = device_models.model_for(
                    device_id=info["id"],
                    device_type=info["device_type"],
                    rated_kw=info["rated_kw"],
                    energy_kwh=info.get("energy_kwh"),
                    backup_reserve_pct=info.get("backup_reserve_pct"),
                    time_zone=info["site"]["time_zone"],
                    market=info["site"]["market"],
                )
                device = SimulatedDevice(
                    token=token,
                    device_id=info["id"],
                    site_id=info["site"]["id"],
                    model=model,
                    commercial=info["device_type"] in device_models.COMMERCIAL_TYPES,
                )
                spread = (device.device_id % 60) / 60  # stagger the fleet's requests over the minute
                device.next_heartbeat = spread * HEARTBEAT_SECONDS
                device.next_poll = spread * 10
                self.devices.append(device)
                self.sites[device.site_id].append(device)
                self.zones[device.site_id] = ZoneInfo(info["site"]["time_zone"])
        for devices in self.sites.values():
            devices[0].meter_reporter = True
            commercial = any(d.commercial for d in devices)
            for d in devices:
                d.commercial = commercial
        if self.ocpp_entries and self.ocpp_url:
            by_id = {d.device_id: d for d in self.devices}
            self.ocpp = ocpp_chargers.OcppChargers(self.ocpp_url, self.ocpp_entries, by_id)
            for entry in self.ocpp.entries:
                by_id[entry["device"]].ocpp = True
            self.ocpp.start()
        return len(self.devices)

    # --- each tick -----------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        seconds = (now - self.last_tick).total_seconds() if self.last_tick else TICK_SECONDS
        self.last_tick = now
        clock = now.timestamp()
        for device in self.devices:
            device.delivered_now = self._execute(device, now, seconds)
        jobs = []
        for device in self.devices:
            if not device.model.online(now):
                continue
            if device.ocpp:
                load = max(0.0, device.model.load_kw(now, device.delivered_now))
                device.register_wh += load * seconds / 3.6
                device.unreported = set()  # delivery shows in its meter values; OCPP has no delivery report
                self.ocpp.update(
                    device.device_id,
                    now,
                    plugged=device.model.plugged_in(now),
                    power_kw=load,
                    register_wh=device.register_wh,
                )
                continue
            if clock >= device.next_heartbeat:
                device.next_heartbeat = clock + HEARTBEAT_SECONDS
                jobs.append(self._heartbeat(device, now))
            if clock >= device.next_poll:
                device.next_poll = clock + 30
                jobs.append(self._poll(device, clock))
            if device.unreported and clock >= device.next_report:
                device.next_report = clock + REPORT_SECONDS
                jobs.extend(self._reports(device))
        for site_id, devices in self.sites.items():
            reading = self._meter(site_id, devices, now, seconds)
            if reading is not None and devices[0].model.online(now):
                jobs.append(reading)
        for outcome in self.pool.map(self._run, jobs):
            self.stats.requests += 1
            if outcome is False:
                self.stats.errors += 1

    @staticmethod
    def _run(job) -> bool:
        try:
            return job()
        except Exception:  # one device's bad answer must not stop the fleet
            log.exception("a simulated device's request failed")
            return False

    def _call(self, method, path, token, body=None, ok=(200, 201)):
        try:
            status, answer = self.api.request(method, path, token, body)
        except (OSError, http.client.HTTPException) as exc:
            log.warning("%s %s failed: %s", method, path, exc)
            return None
        if status not in ok:
            log.warning("%s %s answered %s: %s", method, path, status, answer)
            return None
        return answer

    def _heartbeat(self, device: SimulatedDevice, now: datetime):
        status = device.model.status(now)
        status["power_kw"] = round(device.model.load_kw(now, device.delivered_now), 3)

        def job():
            answer = self._call("POST", "/api/device/v1/status", device.token, status)
            self.stats.heartbeats += answer is not None
            return answer is not None

        return job

    def _poll(self, device: SimulatedDevice, clock: float):
        def job():
            answer = self._call("GET", "/api/device/v1/commands", device.token)
            if answer is None:
                return False
            self.stats.polls += 1
            device.next_poll = clock + answer.get("poll_after_seconds", 30)
            live = {c["id"]: c for c in answer["commands"]}
            for command_id, command in list(live.items()):
                if command_id in device.answered:
                    continue
                device.answered.add(command_id)
                overrides = command["kind"] != "cancel" and device.model.opts_out(f"event-{command['event']}")
                if overrides and (
                    self._call(
                        "POST",
                        f"/api/device/v1/commands/{command_id}/opt-out",
                        device.token,
                        {"reason": "Customer override from the app (simulated)"},
                    )
                    is not None
                ):
                    self.stats.opt_outs += 1
                    live.pop(command_id, None)
                    continue
                if (
                    self._call(
                        "POST", f"/api/device/v1/commands/{command_id}/ack", device.token, {"status": "accepted"}
                    )
                    is not None
                ):
                    self.stats.acks += 1
            device.commands = {k: v for k, v in live.items() if v["kind"] != "cancel"}
            return True

        return job

    def _execute(self, device: SimulatedDevice, now: datetime, seconds: float) -> float:
        """The kW the device delivers this tick under its live command's schedule (0 without one)."""
        asked, worked = 0.0, None
        for command in device.commands.values():
            if _parse_time(command["expires_at"]) <= now or _parse_time(command["not_before"]) > now:
                continue
            for item in command["schedule"]:
                start = _parse_time(item["start"])
                if start <= now < _parse_time(item["end"]):
                    asked, worked = float(item["kw"]), (command["id"], item["start"])
        delivered = device.model.step(now, seconds, asked) if device.model.online(now) else 0.0
        if worked is not None:
            total = device.work[worked]
            total[0] += delivered * seconds
            total[1] += seconds
            device.unreported.add(worked)
        return delivered

    def _reports(self, device: SimulatedDevice):
        by_command = defaultdict(list)
        for command_id, interval in sorted(device.unreported):
            kws, secs = device.work[(command_id, interval)]
            by_command[command_id].append(
                {"interval_start": interval, "delivered_kw": round(kws / secs, 3) if secs else 0}
            )
        device.unreported = set()
        jobs = []
        for command_id, reports in by_command.items():

            def job(command_id=command_id, reports=reports):
                answer = self._call(
                    "POST", f"/api/device/v1/commands/{command_id}/reports", device.token, {"reports": reports}
                )
                self.stats.reports += answer is not None
                return answer is not None

            jobs.append(job)
        return jobs

    def _meter(self, site_id: int, devices: list[SimulatedDevice], now: datetime, seconds: float):
        """Integrate the site's load; at each hour's end, its reading (the first, partial hour is not sent)."""
        load = behaviour.site_load_kw(
            site_seed=site_id, commercial=devices[0].commercial, local=now.astimezone(self.zones[site_id])
        )
        load += sum(d.model.load_kw(now, d.delivered_now) for d in devices)
        hour = now.replace(minute=0, second=0, microsecond=0)
        state = self.meter.get(site_id)
        if state is None:
            self.meter[site_id] = [hour, 0.0, 0.0, False]  # the first hour is partial: not sent
            return None
        job = None
        if hour > state[0]:
            start, kwh, covered, complete = state
            if complete and covered > 0:
                value = round(kwh * METER_SECONDS / covered, 3)  # scaled over any tick jitter to the whole hour
                reading = {
                    "meter": "site",
                    "device": devices[0].device_id,
                    "start": start.isoformat(),
                    "interval_seconds": METER_SECONDS,
                    "kwh": value,
                    "quality": "actual",
                }

                def job(token=devices[0].token, reading=reading):
                    answer = self._call("POST", "/api/device/v1/readings", token, {"readings": [reading]})
                    self.stats.readings += answer is not None
                    return answer is not None

            self.meter[site_id] = state = [hour, 0.0, 0.0, True]
        state[1] += load * seconds / 3600
        state[2] += seconds
        return job

    def run(self, *, seconds: float | None = None, status_every: float = 60.0) -> None:
        started = last_status = time.monotonic()
        while seconds is None or time.monotonic() - started < seconds:
            began = time.monotonic()
            self.tick()
            if time.monotonic() - last_status >= status_every:
                last_status = time.monotonic()
                log.info("simulated fleet: %s", self.stats.line())
            time.sleep(max(0.0, TICK_SECONDS - (time.monotonic() - began)))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self.ocpp is not None:
            self.ocpp.close()


def wait_until_up(api: DeviceAPI, *, seconds: float) -> bool:
    """Whether the platform answers /healthz within `seconds` (0: one try)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            status, _ = api.request("GET", "/healthz", token="")
            if status == 200:
                return True
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(1)


def load_tokens(path) -> list[str]:
    return json.loads(open(path).read())["tokens"]


def load_ocpp(path) -> list[dict]:
    """The chargers that speak OCPP: [{"device", "identity", "password", "version"}] (none in older files)."""
    return json.loads(open(path).read()).get("ocpp", [])
