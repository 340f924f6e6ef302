"""The OCPP server process: chargers connect over websockets (OCPP 1.6J or 2.0.1, by subprotocol).

`python manage.py run_ocpp` runs one Node. Several can run behind a load balancer: each holds
its own connections and hears of their new commands on its own Redis channel (see
dispatch.ocpp.delivery). Database work runs on a small pool of threads (the ORM is
synchronous), through dispatch.ocpp.services; the liveness of chatty chargers is written in
batches once a second.

The handshake: the URL's last path segment is the charge point's identity; HTTP Basic
carries it again with the charger's password (security profiles 1 and 2; profile 2 is the
same over TLS, ended by the load balancer or with --certificate). Unknown identities,
revoked or wrong passwords and connections without a password are refused with 401 before
the websocket opens; a client offering neither subprotocol, with 400.

Frames are checked against the OCPP JSON schemas before anything is written. What fails
answers a CALLERROR and changes nothing: an unreadable frame (not JSON, not an OCPP array)
FormationViolation (1.6) / RpcFrameworkError (2.0.1); a payload with unknown fields
FormationViolation / FormatViolation; a missing field OccurenceConstraintViolation /
OccurrenceConstraintViolation; a wrong type TypeConstraintViolation; any other constraint
(an unknown enum value, a string too long, a number out of range) PropertyConstraintViolation.
"""

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import logging
import os
import secrets
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from django.conf import settings
from django.db import close_old_connections, connections
from ocpp import messages
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, MessageType
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from dispatch.ocpp import delivery, mapping, services

log = logging.getLogger(__name__)

SUBPROTOCOLS = ["ocpp2.0.1", "ocpp1.6"]  # the server's preference when a charger offers both
RESPONSE_TIMEOUT = 30
FLUSH_SECONDS = 1.0
AUTHORISATION_CHECK_SECONDS = 60
FIRST_MESSAGE_WAIT = 2.0
ACCEPT_FLUSH_SECONDS = 0.05
VERIFY_DELAY_SECONDS = 0.5
VERIFY_CONCURRENCY = 200
# SetChargingProfile: the profiles are built here (and checked against the schemas by the tests, whose charge
# points validate what they receive); validating each one again, and its answer, costs the server about as
# much CPU as the rest of a dispatch. An answer is still read strictly: an unknown status counts as none.
VALIDATE_OWN_CALLS = False
ANSWERS = frozenset({"Accepted", "Rejected", "NotSupported"})  # SetChargingProfile's statuses (1.6 has NotSupported)


class Unanswered(Exception):
    """A charger's answer that is not one of the action's statuses: the command stays as it was."""


def _now() -> datetime:
    return datetime.now(UTC)


# --- frame checks ---------------------------------------------------------------------------

_CODES = {
    "1.6": {
        "frame": "FormationViolation",
        "additionalProperties": "FormationViolation",
        "required": "OccurenceConstraintViolation",
        "type": "TypeConstraintViolation",
        "other": "PropertyConstraintViolation",
    },
    "2.0.1": {
        "frame": "RpcFrameworkError",
        "additionalProperties": "FormatViolation",
        "required": "OccurrenceConstraintViolation",
        "type": "TypeConstraintViolation",
        "other": "PropertyConstraintViolation",
    },
}


def frame_error(raw: str | bytes, version: str) -> tuple[Call | None, CallError | None]:
    """(the message, None) for a frame to handle (a Call, or a response to one of ours), or (None, the CALLERROR
    to answer)."""
    codes = _CODES[version]
    try:
        message = messages.unpack(raw)
    except OCPPError as error:
        unique_id = "-1"
        with contextlib.suppress(ValueError, TypeError, IndexError, KeyError):
            frame = json.loads(raw)
            if isinstance(frame, list) and isinstance(frame[1], str):
                unique_id = frame[1]
        return None, CallError(unique_id, codes["frame"], "The frame is not an OCPP message.", {"cause": str(error)})
    if message.message_type_id != MessageType.Call:
        return message, None
    if not isinstance(message.payload, dict) or not isinstance(message.action, str):
        return None, CallError(message.unique_id, codes["frame"], "The call's payload is not an object.", {})
    try:
        validator = messages.get_validator(MessageType.Call, message.action, version)
    except (OSError, ValueError):
        return message, None  # no schema: an action this version does not have (the handler answers NotSupported)
    problems = sorted(validator.iter_errors(message.payload), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not problems:
        return message, None
    problem = problems[0]
    code = codes.get(problem.validator, codes["other"])
    where = "/".join(map(str, problem.path)) or "(payload)"
    return None, CallError(message.unique_id, code, f"{where}: {problem.message}"[:500], {})


# --- the charge point as the central system sees it ------------------------------------------


class _CentralSide:
    """What both versions share: routing with the platform's frame checks, commands and plans out."""

    version: str

    def setup(self, node: "Node", ident: services.Identity, protocol: str):
        self.node, self.ident, self.protocol = node, ident, protocol
        self.sent: set[str] = set()  # command ids this connection has sent
        self.first_message = asyncio.Event()
        self.delivering = asyncio.Lock()

    async def route_message(self, raw_msg):
        message, error = frame_error(raw_msg, self.version)
        if error is not None:
            await self._send(error.to_json())
            return
        if message.message_type_id != MessageType.Call:  # a CALLRESULT or CALLERROR to one of our calls
            self._response_queue.put_nowait(message)
            return
        self.node.seen[self.ident.charger_id] = message.action[:40]
        try:
            await self._handle_call(message)
        except OCPPError as error:
            await self._send(message.create_call_error(error).to_json())
        finally:
            self.first_message.set()

    async def db(self, function, **kwargs):
        return await self.node.db(function, **kwargs)

    # Outbound ----------------------------------------------------------------------------

    async def deliver(self, commands: list[services.Command], *, resend: bool = False) -> None:
        async with self.delivering:
            for command in commands:
                if command.id in self.sent and not resend:
                    continue
                self.sent.add(command.id)
                try:
                    accepted, reason = await self.send_command(command)
                except (TimeoutError, OCPPError, ConnectionClosed, TypeError, Unanswered) as exc:
                    log.info("OCPP %s: command %s not answered: %r", self.ident.identity, command.id, exc)
                    self.sent.discard(command.id)
                    continue
                if accepted:
                    self.node.accept(command.id)
                else:
                    await self.db(services.answer, command_id=command.id, accepted=False, reason=reason)
                self.node.answered += 1
                if accepted and command.kind != "cancel" and command.schedule:
                    self.node.to_verify.put_nowait((self, command))

    async def send_command(self, command: services.Command) -> tuple[bool, str]:
        profile_id = mapping.dispatch_profile_id(command.event_id)
        if command.kind == "cancel" or not command.schedule:
            status, _ = await self.clear_profile(profile_id)
            if status not in ("Accepted", "Unknown"):
                raise Unanswered(f"ClearChargingProfile answered {status!r}")
            return True, f"ClearChargingProfile {status}"
        start, duration, periods = mapping.dispatch_periods(command.schedule, self.ident.rated_kw)
        status, info = await self.set_profile(
            profile_id=profile_id,
            purpose=mapping.DISPATCH_PURPOSE[self.protocol],
            stack_level=mapping.DISPATCH_STACK_LEVEL,
            start=start,
            duration=duration,
            periods=periods,
            valid_to=command.expires_at,
        )
        if status not in ANSWERS:
            raise Unanswered(f"SetChargingProfile answered {status!r}")
        return mapping.accepted(status), f"SetChargingProfile {status}{': ' + info if info else ''}"

    async def verify(self, command: services.Command) -> bool | None:
        """Ask the charger's composite schedule and record whether it holds the command's limit."""
        start, duration, periods = mapping.dispatch_periods(command.schedule, self.ident.rated_kw)
        at = max(start, _now())
        try:
            composite = await self.composite_schedule(int((start + timedelta(seconds=duration) - at).total_seconds()))
        except (TimeoutError, OCPPError, ConnectionClosed, TypeError, KeyError, ValueError) as exc:
            log.info("OCPP %s: composite schedule not read: %r", self.ident.identity, exc)
            composite = None
        applies = None
        if composite is not None:
            composite_start, composite_periods = composite
            applies = mapping.applies(
                start=start,
                periods=periods,
                composite_start=composite_start,
                composite_periods=composite_periods,
                at=at,
            )
        self.node.checked[self.ident.charger_id] = applies
        return applies

    async def send_plan(self) -> str | None:
        plans = await self.db(services.plan, device_id=self.ident.device_id)
        spec = mapping.plan_periods(plans, _now())
        if spec is None:
            return None
        start, duration, periods = spec
        try:
            status, _ = await self.set_profile(
                profile_id=mapping.PLAN_PROFILE_ID,
                purpose=mapping.PLAN_PURPOSE,
                stack_level=mapping.PLAN_STACK_LEVEL,
                start=start,
                duration=duration,
                periods=periods,
            )
        except (TimeoutError, OCPPError, ConnectionClosed, TypeError) as exc:
            log.info("OCPP %s: plan not answered: %r", self.ident.identity, exc)
            return None
        await self.db(services.plan_answered, charger_id=self.ident.charger_id, answer=status)
        return status

    async def on_connect(self) -> None:
        """Once the charger has spoken (or kept quiet a moment): its plan, then its live commands."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.first_message.wait(), FIRST_MESSAGE_WAIT)
        await asyncio.sleep(0)  # the first message's answer goes out first
        await self.send_plan()
        commands = await self.db(services.live_commands, device_ids=[self.ident.device_id])
        await self.deliver(commands)

    # Inbound helpers ----------------------------------------------------------------------

    async def meter(self, connector: int, samples: list[mapping.Sample], transaction_id: str | None = None):
        await self.db(
            services.meter_values,
            charger_id=self.ident.charger_id,
            connector=connector,
            samples=samples,
            transaction_id=transaction_id,
        )


class Central16(_CentralSide, ChargePoint16):
    version = "1.6"

    async def set_profile(self, **spec) -> tuple[str, str]:
        answer = await self.call(
            call16.SetChargingProfile(connector_id=0, cs_charging_profiles=mapping.profile_16(**spec)),
            suppress=False,
            skip_schema_validation=not VALIDATE_OWN_CALLS,
        )
        return answer.status, ""

    async def clear_profile(self, profile_id: int) -> tuple[str, str]:
        answer = await self.call(call16.ClearChargingProfile(id=profile_id), suppress=False)
        return answer.status, ""

    async def composite_schedule(self, duration: int):
        answer = await self.call(
            call16.GetCompositeSchedule(connector_id=0, duration=max(duration, 1), charging_rate_unit="W"),
            suppress=False,
            skip_schema_validation=not VALIDATE_OWN_CALLS,
        )
        schedule = answer.charging_schedule
        if answer.status != "Accepted" or not schedule:
            return None
        start = answer.schedule_start or schedule.get("start_schedule")
        return mapping.parse_time(start), schedule["charging_schedule_period"]

    @on("BootNotification", skip_schema_validation=True)
    async def on_boot(self, charge_point_vendor, charge_point_model, **extra):
        await self.db(
            services.boot,
            charger_id=self.ident.charger_id,
            vendor=charge_point_vendor,
            model=charge_point_model,
            serial_number=extra.get("charge_point_serial_number") or extra.get("charge_box_serial_number") or "",
            firmware=extra.get("firmware_version") or "",
        )
        return result16.BootNotification(
            current_time=mapping.iso(_now()), interval=self.ident.heartbeat_seconds, status="Accepted"
        )

    @on("Heartbeat", skip_schema_validation=True)
    async def on_heartbeat(self, **extra):
        return result16.Heartbeat(current_time=mapping.iso(_now()))

    @on("StatusNotification", skip_schema_validation=True)
    async def on_status(self, connector_id, error_code, status, **extra):
        await self.db(
            services.connector_status, charger_id=self.ident.charger_id, connector=connector_id, status=status
        )
        return result16.StatusNotification()

    @on("MeterValues", skip_schema_validation=True)
    async def on_meter_values(self, connector_id, meter_value, transaction_id=None, **extra):
        samples = mapping.samples_16(meter_value)
        await self.meter(connector_id, samples, None if transaction_id is None else str(transaction_id))
        return result16.MeterValues()

    @on("Authorize", skip_schema_validation=True)
    async def on_authorize(self, id_tag, **extra):
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @on("StartTransaction", skip_schema_validation=True)
    async def on_start(self, connector_id, id_tag, meter_start, timestamp, **extra):
        transaction_id = await self.db(
            services.start_transaction,
            charger_id=self.ident.charger_id,
            connector=connector_id,
            id_tag=id_tag,
            meter_start_wh=float(meter_start),
            at=mapping.parse_time(timestamp),
        )
        return result16.StartTransaction(transaction_id=transaction_id, id_tag_info={"status": "Accepted"})

    @on("StopTransaction", skip_schema_validation=True)
    async def on_stop(self, meter_stop, timestamp, transaction_id, reason=None, **extra):
        await self.db(
            services.stop_transaction,
            charger_id=self.ident.charger_id,
            transaction_id=str(transaction_id),
            meter_stop_wh=float(meter_stop),
            at=mapping.parse_time(timestamp),
            reason=reason or "",
        )
        if extra.get("transaction_data"):
            await self.meter(0, mapping.samples_16(extra["transaction_data"]))
        return result16.StopTransaction(id_tag_info={"status": "Accepted"} if extra.get("id_tag") else None)


class Central201(_CentralSide, ChargePoint201):
    version = "2.0.1"

    async def set_profile(self, **spec) -> tuple[str, str]:
        answer = await self.call(
            call201.SetChargingProfile(evse_id=0, charging_profile=mapping.profile_201(**spec)),
            suppress=False,
            skip_schema_validation=not VALIDATE_OWN_CALLS,
        )
        info = (answer.status_info or {}).get("reason_code", "") if isinstance(answer.status_info, dict) else ""
        return answer.status, info

    async def clear_profile(self, profile_id: int) -> tuple[str, str]:
        answer = await self.call(call201.ClearChargingProfile(charging_profile_id=profile_id), suppress=False)
        return answer.status, ""

    async def composite_schedule(self, duration: int):
        answer = await self.call(
            call201.GetCompositeSchedule(duration=max(duration, 1), evse_id=0, charging_rate_unit="W"),
            suppress=False,
            skip_schema_validation=not VALIDATE_OWN_CALLS,
        )
        schedule = answer.schedule
        if answer.status != "Accepted" or not schedule:
            return None
        return mapping.parse_time(schedule["schedule_start"]), schedule["charging_schedule_period"]

    @on("BootNotification", skip_schema_validation=True)
    async def on_boot(self, charging_station, reason, **extra):
        await self.db(
            services.boot,
            charger_id=self.ident.charger_id,
            vendor=charging_station.get("vendor_name", ""),
            model=charging_station.get("model", ""),
            serial_number=charging_station.get("serial_number") or "",
            firmware=charging_station.get("firmware_version") or "",
        )
        return result201.BootNotification(
            current_time=mapping.iso(_now()), interval=self.ident.heartbeat_seconds, status="Accepted"
        )

    @on("Heartbeat", skip_schema_validation=True)
    async def on_heartbeat(self, **extra):
        return result201.Heartbeat(current_time=mapping.iso(_now()))

    @on("StatusNotification", skip_schema_validation=True)
    async def on_status(self, timestamp, connector_status, evse_id, connector_id, **extra):
        await self.db(
            services.connector_status, charger_id=self.ident.charger_id, connector=evse_id, status=connector_status
        )
        return result201.StatusNotification()

    @on("MeterValues", skip_schema_validation=True)
    async def on_meter_values(self, evse_id, meter_value, **extra):
        await self.meter(evse_id, mapping.samples_201(meter_value))
        return result201.MeterValues()

    @on("Authorize", skip_schema_validation=True)
    async def on_authorize(self, id_token, **extra):
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent", skip_schema_validation=True)
    async def on_transaction_event(self, event_type, timestamp, trigger_reason, seq_no, transaction_info, **extra):
        samples = mapping.samples_201(extra.get("meter_value") or [])
        evse = (extra.get("evse") or {}).get("id", 1)
        await self.db(
            services.transaction_event,
            charger_id=self.ident.charger_id,
            event_type=event_type,
            transaction_id=transaction_info["transaction_id"],
            at=mapping.parse_time(timestamp),
            evse=evse,
            id_tag=(extra.get("id_token") or {}).get("id_token", ""),
            stopped_reason=transaction_info.get("stopped_reason") or "",
            registers=mapping.registers(samples),
        )
        if samples:
            await self.meter(evse, samples)
        return result201.TransactionEvent()


# --- the process ----------------------------------------------------------------------------


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _run(function, kwargs):
    close_old_connections()  # a thread's connection that broke or aged is replaced, as per request in Django
    return function(**kwargs)


class Node:
    """One OCPP server process: its connections, its Redis channel, its database threads."""

    def __init__(self, *, host: str = "0.0.0.0", port: int = 9000, db_threads: int = 8, name: str | None = None):
        self.host, self.port = host, port
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.executor = ThreadPoolExecutor(db_threads, thread_name_prefix="ocpp-db")
        self.stations: dict[int, _CentralSide] = {}  # device id -> its connection's charge point
        self.seen: dict[int, str] = {}  # charger id -> last action, written at the next flush
        self.wanted: set[int] = set()  # devices with new commands, fetched together
        self.wanted_event = asyncio.Event()
        self.answered = 0
        self.accepts: list[str] = []  # command ids answered Accepted, recorded at the next flush
        self.to_verify: asyncio.Queue = asyncio.Queue()  # (station, command) whose composite schedule to ask
        self.checked: dict[int, bool | None] = {}  # charger id -> whether it applies its profile, at the next flush
        self.accepts_event = asyncio.Event()
        # A bounded pool that waits for a free connection: thousands of chargers connecting at once share it.
        self.redis = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(settings.REDIS_URL, max_connections=32, timeout=30)
        )
        self.server = None
        self.ready = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()

    def accept(self, command_id: str) -> None:
        self.accepts.append(command_id)
        self.accepts_event.set()

    async def record_accepts(self) -> None:
        """Accepted answers, recorded together (one statement for however many came in since the last)."""
        while True:
            await self.accepts_event.wait()
            await asyncio.sleep(ACCEPT_FLUSH_SECONDS)
            self.accepts_event.clear()
            batch, self.accepts = self.accepts, []
            if batch:
                try:
                    await self.db(services.accepted, command_ids=batch)
                except Exception:
                    log.exception("OCPP node %s: %d answers not recorded", self.name, len(batch))

    def spawn(self, coroutine) -> asyncio.Task:
        """A task held until it ends (the loop keeps only weak references to tasks)."""
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def db(self, function, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(_run, function, kwargs)
        )

    # Handshake ---------------------------------------------------------------------------

    async def authenticate(self, connection: ServerConnection, request):
        identity = unquote(urlsplit(request.path).path.rstrip("/").rsplit("/", 1)[-1])
        credentials = _basic(request.headers.get("Authorization"))
        ident = None
        if identity and credentials is not None and credentials[0] == identity:
            ident = await self.db(services.authenticate, identity=identity, password=credentials[1])
        if ident is None:
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Unknown charger or wrong password.\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
            return response
        connection.ocpp_identity = ident  # read by the handler
        return None

    async def handle(self, connection: ServerConnection) -> None:
        ident: services.Identity = connection.ocpp_identity
        protocol = connection.subprotocol
        cls = Central16 if protocol == "ocpp1.6" else Central201
        station = cls(ident.identity, connection, response_timeout=RESPONSE_TIMEOUT)
        station.setup(self, ident, protocol)
        previous = self.stations.get(ident.device_id)
        self.stations[ident.device_id] = station
        if previous is not None:  # the same charger again: the older connection is stale
            await previous._connection.close(code=1000, reason="replaced by a new connection")
        try:
            await self.redis.hset(delivery.NODE_OF, str(ident.device_id), self.name)
        except aioredis.RedisError as exc:
            log.warning("OCPP %s: not registered in Redis (%s); it gets its commands at reconnect", ident.identity, exc)
        await self.db(services.connected, charger_id=ident.charger_id, protocol=protocol, node=self.name)
        greeting = asyncio.create_task(station.on_connect())
        try:
            await station.start()
        except ConnectionClosed:
            pass
        finally:
            greeting.cancel()
            if self.stations.get(ident.device_id) is station:
                del self.stations[ident.device_id]
                with contextlib.suppress(aioredis.RedisError):
                    await self.redis.eval(delivery.RELEASE, 1, delivery.NODE_OF, str(ident.device_id), self.name)
                await self.db(services.disconnected, charger_id=ident.charger_id, node=self.name)

    # Background work ---------------------------------------------------------------------

    async def listen(self) -> None:
        """This node's Redis channel: device ids with new commands or plans. Reconnects when Redis comes back,
        re-registering every connection held and re-sending their live commands (a publish may have been lost)."""
        first = True
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(delivery.channel(self.name))
                if not first:
                    await self.reregister()
                first = False
                self.ready.set()
                async for message in pubsub.listen():
                    if message["type"] != "message":
                        continue
                    body = json.loads(message["data"])
                    devices = [d for d in body["devices"] if d in self.stations]
                    if body["kind"] == "plan":
                        for device_id in devices:
                            self.spawn(self.stations[device_id].send_plan())
                    else:
                        self.wanted.update(devices)
                        self.wanted_event.set()
            except (aioredis.RedisError, OSError) as exc:
                log.warning("OCPP node %s: Redis channel lost (%s); retrying", self.name, exc)
                self.ready.set()
                await asyncio.sleep(1)

    async def reregister(self) -> None:
        if self.stations:
            await self.redis.hset(delivery.NODE_OF, mapping={str(d): self.name for d in self.stations})
            self.wanted.update(self.stations)
            self.wanted_event.set()

    async def fetch_commands(self) -> None:
        """Devices that have new commands, fetched in one query per wake-up and sent concurrently."""
        while True:
            await self.wanted_event.wait()
            self.wanted_event.clear()
            await asyncio.sleep(0.01)  # let a burst of messages (one per fan-out chunk) gather
            devices, self.wanted = sorted(self.wanted), set()
            if not devices:
                continue
            try:
                commands = await self.db(services.live_commands, device_ids=devices)
            except Exception:
                log.exception("OCPP node %s: live commands not read", self.name)
                continue
            by_device: dict[int, list[services.Command]] = {}
            for command in commands:
                by_device.setdefault(command.device_id, []).append(command)
            for device_id, mine in by_device.items():
                station = self.stations.get(device_id)
                if station is not None:
                    self.spawn(station.deliver(mine))

    async def flush(self) -> None:
        """Once a second: the chargers that sent anything are online, with their last message; what the
        composite schedules said."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            actions, self.seen = self.seen, {}
            checked, self.checked = self.checked, {}
            try:
                if actions:
                    await self.db(services.seen, actions=actions)
                if checked:
                    await self.db(services.composites_checked, applies=checked)
            except Exception:
                log.exception("OCPP node %s: liveness not written", self.name)

    async def verify(self) -> None:
        """Composite schedules are asked after a dispatch's profiles are out, a few chargers at a time."""
        while True:
            await asyncio.sleep(VERIFY_DELAY_SECONDS)
            batch = []
            while not self.to_verify.empty() and len(batch) < VERIFY_CONCURRENCY:
                batch.append(self.to_verify.get_nowait())
            if batch:
                await asyncio.gather(*(station.verify(command) for station, command in batch), return_exceptions=True)

    async def check_authorisation(self) -> None:
        """A revoked password ends its charger's connection (checked each minute)."""
        while True:
            await asyncio.sleep(AUTHORISATION_CHECK_SECONDS)
            held = {s.ident.charger_id: s for s in self.stations.values()}
            if not held:
                continue
            try:
                allowed = await self.db(services.still_authorised, charger_ids=list(held))
            except Exception:
                log.exception("OCPP node %s: passwords not checked", self.name)
                continue
            for charger_id in set(held) - allowed:
                await held[charger_id]._connection.close(code=1008, reason="password revoked")

    async def run(self, *, ssl_context: ssl.SSLContext | None = None, stop: asyncio.Event | None = None) -> None:
        tasks = [
            asyncio.create_task(self.listen()),
            asyncio.create_task(self.fetch_commands()),
            asyncio.create_task(self.flush()),
            asyncio.create_task(self.check_authorisation()),
            asyncio.create_task(self.record_accepts()),
            asyncio.create_task(self.verify()),
        ]
        try:
            async with serve(
                self.handle,
                self.host,
                self.port,
                subprotocols=SUBPROTOCOLS,
                process_request=self.authenticate,
                ssl=ssl_context,
                ping_interval=60,
                ping_timeout=60,
                max_size=2**20,
                max_queue=16,
            ) as server:
                self.server = server
                self.port = server.sockets[0].getsockname()[1]
                await self.ready.wait()
                log.info("OCPP node %s listening on %s:%s", self.name, self.host, self.port)
                await (stop.wait() if stop is not None else asyncio.Future())
        finally:
            for task in tasks:
                task.cancel()
            actions, self.seen = self.seen, {}
            if actions:
                await self.db(services.seen, actions=actions)
            batch, self.accepts = self.accepts, []
            if batch:
                await self.db(services.accepted, command_ids=batch)
            checked, self.checked = self.checked, {}
            if checked:
                await self.db(services.composites_checked, applies=checked)
            held = list(self.stations.values())
            for station in held:
                await self.db(services.disconnected, charger_id=station.ident.charger_id, node=self.name)
            with contextlib.suppress(aioredis.RedisError):
                if held:
                    await self.redis.hdel(delivery.NODE_OF, *[str(s.ident.device_id) for s in held])
                await self.redis.aclose()
            await asyncio.get_running_loop().run_in_executor(None, self.close_db)

    def close_db(self) -> None:
        """Close each database thread's connection (one task per thread: a barrier holds each until all have one)."""
        workers = self.executor._max_workers
        barrier = threading.Barrier(workers)

        def close() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)
            connections.close_all()

        for _ in range(workers):
            self.executor.submit(close)
        self.executor.shutdown(wait=True)
