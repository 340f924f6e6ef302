"""What the OCPP central system writes and reads: passwords, connections, status, readings, sessions, answers.

Synchronous ORM functions, keyword-only, each in one transaction where it writes more than one row;
the server (dispatch.ocpp.server) calls them from its database threads. The mapping rules are in
dispatch.ocpp.mapping; readings go through the device API's store (aggregator.reference.readings),
status through enrollment's heartbeat, acknowledgements through dispatch's replies.
"""

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from aggregator.core.errors import DomainError, Problem
from aggregator.core.state_machine import Actor
from aggregator.reference import readings as meter
from dispatch import services as dispatch
from dispatch.models import DeviceCommand, DeviceSchedule
from dispatch.ocpp import mapping
from dispatch.ocpp.models import Charger, ChargerCredential, ChargingSession
from enrollment import services as enrollment
from enrollment.device_types import DeviceType
from enrollment.models import Device, DeviceStatus

log = logging.getLogger(__name__)

IDENTITY_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:*+|@")


class ChargerRefused(DomainError):
    status = 400


# --- passwords ----------------------------------------------------------------------------


def _digest(password: str) -> str:
    # A fast hash is right: the password is 128 random bits the platform chose, not a person's.
    return hashlib.sha256(password.encode()).hexdigest()


def issue_password(*, device: Device, by: Actor = None, label: str = "") -> tuple[ChargerCredential, str]:
    """A new HTTP Basic password for an enrolled EV charger: (stored credential, the password shown once).

    The charger's identity is its serial; its earlier passwords keep working until revoked.
    """
    if device.device_type != DeviceType.EV_CHARGER:
        raise ChargerRefused(Problem("not_a_charger", "Only EV chargers connect over OCPP.", "device"))
    if len(device.serial) > 48 or not set(device.serial) <= IDENTITY_CHARACTERS:
        raise ChargerRefused(
            Problem(
                "invalid_identity",
                "An OCPP identity (the serial) is at most 48 letters, digits and - _ . : * + | @.",
                "serial",
            )
        )
    with transaction.atomic():
        charger, _ = Charger.objects.get_or_create(device=device, defaults={"identity": device.serial})
        if Charger.objects.filter(identity=charger.identity).exclude(pk=charger.pk).exists():
            raise ChargerRefused(Problem("identity_taken", "Another charger has this identity.", "serial"))
        # 32 hex characters: inside both versions' password rules (16 to 40 characters; 1.6's AuthorizationKey is hex).
        password = secrets.token_hex(16)
        credential = ChargerCredential.objects.create(
            charger=charger,
            key_id=secrets.token_hex(8),
            digest=_digest(password),
            label=label,
            issued_by=None if isinstance(by, str) else by,
        )
    return credential, password


def revoke_password(*, credential: ChargerCredential, at: datetime | None = None) -> ChargerCredential:
    """The password stops working at the next connection (a connected charger is disconnected by its server)."""
    ChargerCredential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(revoked_at=at or timezone.now())
    credential.refresh_from_db()
    return credential


@dataclass(frozen=True)
class Identity:
    """What a server process keeps of a connected charger."""

    charger_id: int
    device_id: int
    identity: str
    rated_kw: float
    heartbeat_seconds: int


def authenticate(*, identity: str, password: str | None) -> Identity | None:
    """The charger this identity and password open, or None (unknown, revoked, expired, wrong or no password)."""
    if not password:
        return None
    charger = Charger.objects.select_related("device").filter(identity=identity).first()
    if charger is None:
        return None
    now = timezone.now()
    digest = _digest(password)
    match = next(
        (
            c
            for c in charger.credentials.filter(revoked_at__isnull=True)
            if c.is_usable(now) and hmac.compare_digest(c.digest, digest)
        ),
        None,
    )
    if match is None:
        return None
    match.touch()
    return Identity(
        charger_id=charger.pk,
        device_id=charger.device_id,
        identity=charger.identity,
        rated_kw=float(charger.device.rated_kw),
        heartbeat_seconds=charger.device.telemetry_interval_seconds,
    )


def still_authorised(*, charger_ids: list[int]) -> set[int]:
    """Of these chargers, those that still hold a usable password."""
    now = timezone.now()
    return set(
        ChargerCredential.objects.filter(charger_id__in=charger_ids, revoked_at__isnull=True)
        .exclude(expires_at__lte=now)
        .values_list("charger_id", flat=True)
    )


# --- connection and status ----------------------------------------------------------------


def _status(charger: Charger, *, at: datetime, online: bool = True, power_kw=None, keep_power: bool = True):
    """The device's status from what the charger last told (plug state from its connectors, its firmware)."""
    if keep_power and power_kw is None:
        power_kw = DeviceStatus.objects.filter(device_id=charger.device_id).values_list("power_kw", flat=True).first()
    statuses = [s for c, s in sorted(charger.connectors.items()) if c != "0"]
    return enrollment.record_heartbeat(
        device_id=charger.device_id,
        at=at,
        online=online,
        ev_plugged_in=mapping.plugged_in(charger.connectors, v16=charger.protocol == Charger.Protocol.V16),
        power_kw=None if power_kw is None else Decimal(str(power_kw)),
        mode=statuses[0][:40] if statuses else "",
        firmware=charger.firmware,
    )


def connected(*, charger_id: int, protocol: str, node: str, at: datetime | None = None) -> None:
    at = at or timezone.now()
    with transaction.atomic():
        Charger.objects.filter(pk=charger_id).update(
            protocol=protocol, connected=True, node=node, connected_at=at, last_message_at=at
        )
        _status(Charger.objects.get(pk=charger_id), at=at)


def disconnected(*, charger_id: int, node: str, at: datetime | None = None) -> None:
    """The connection closed; nothing changes if the charger has meanwhile connected to another process.

    The device stays online as the platform's rule has it (offline after three missed telemetry
    intervals): a charger that drops its connection usually comes back within seconds, and a
    command issued meanwhile reaches it when it does.
    """
    Charger.objects.filter(pk=charger_id, node=node).update(
        connected=False, node="", disconnected_at=at or timezone.now()
    )


def seen(*, actions: dict[int, str], at: datetime | None = None) -> None:
    """Many chargers' latest messages at once (the server batches them): last message, and online now."""
    if not actions:
        return
    at = at or timezone.now()
    ids = list(actions)
    with transaction.atomic():
        Charger.objects.filter(pk__in=ids).update(
            last_message_at=at, last_action=Case(*[When(pk=k, then=Value(v)) for k, v in actions.items()])
        )
        # Liveness only: what the charger reported stays as its last status said.
        DeviceStatus.objects.filter(device__ocpp_charger__in=ids, last_seen_at__lte=at).update(
            last_seen_at=at, online=True, updated_at=at
        )


def boot(*, charger_id: int, vendor: str, model: str, serial_number: str, firmware: str, at: datetime | None = None):
    at = at or timezone.now()
    with transaction.atomic():
        Charger.objects.filter(pk=charger_id).update(
            vendor=vendor[:50], model=model[:50], serial_number=serial_number[:50], firmware=firmware[:60], booted_at=at
        )
        _status(Charger.objects.get(pk=charger_id), at=at)


def connector_status(*, charger_id: int, connector: int, status: str, at: datetime | None = None) -> None:
    at = at or timezone.now()
    with transaction.atomic():
        charger = Charger.objects.select_for_update().get(pk=charger_id)
        charger.connectors = {**charger.connectors, str(connector): status}
        charger.save(update_fields=["connectors"])
        _status(charger, at=at)


# --- meter values and sessions ------------------------------------------------------------


def meter_values(
    *,
    charger_id: int,
    connector: int,
    samples: list[mapping.Sample],
    transaction_id: str | None = None,
    at: datetime | None = None,
) -> int:
    """Readings from the energy register, the status's power, a session's register; returns the readings stored."""
    at = at or timezone.now()
    stored = 0
    with transaction.atomic():
        charger = Charger.objects.select_for_update().select_related("device").get(pk=charger_id)
        device = charger.device
        station_meter = "0" in charger.connectors or connector == 0
        registers = mapping.registers(samples)
        if registers and (connector == 0 or (connector == 1 and not station_meter)):
            if connector == 0 and "0" not in charger.connectors:
                charger.connectors = {**charger.connectors, "0": charger.connectors.get("0", "")}
            previous = (charger.register_at, charger.register_wh) if charger.register_at else None
            readings, last = mapping.interval_readings(previous, registers)
            if last is not None:
                charger.register_at, charger.register_wh = last
            if readings:
                try:
                    with transaction.atomic():
                        stored = meter.ingest(
                            readings=readings,
                            meters=meter.Meters(
                                devices={device.pk: (device.site_id, device.device_type, device.bidirectional)},
                                default_device=device.pk,
                            ),
                            now=at,
                        ).inserted
                except meter.BatchRejected as refused:
                    log.warning("OCPP %s: meter values not stored: %s", charger.identity, refused)
            charger.save(update_fields=["register_at", "register_wh", "connectors"])
        if transaction_id is not None and registers:
            _session_register(charger, transaction_id, registers)
        power = mapping.power_kw(samples)
        if power is not None:
            _status(charger, at=at, power_kw=power)
    return stored


def _energy(session: ChargingSession) -> Decimal | None:
    if session.meter_start_wh is None or session.meter_stop_wh is None:
        return None
    return Decimal(f"{max(0.0, session.meter_stop_wh - session.meter_start_wh) / 1000:.3f}")


def _session_register(charger: Charger, transaction_id: str, registers: list[tuple[datetime, float]]) -> None:
    session = ChargingSession.objects.filter(charger=charger, transaction_id=transaction_id).first()
    if session is None:
        return
    if session.meter_start_wh is None:
        session.meter_start_wh = registers[0][1]
    session.meter_stop_wh = registers[-1][1]
    session.energy_kwh = _energy(session)
    session.save(update_fields=["meter_start_wh", "meter_stop_wh", "energy_kwh", "updated_at"])


def start_transaction(*, charger_id: int, connector: int, id_tag: str, meter_start_wh: float, at: datetime) -> int:
    """1.6 StartTransaction: a new session; its id is the transactionId the charger is given."""
    with transaction.atomic():
        charger = Charger.objects.get(pk=charger_id)
        session = ChargingSession.objects.create(
            charger=charger,
            device_id=charger.device_id,
            transaction_id=f"pending-{secrets.token_hex(8)}",
            connector=connector,
            id_tag=id_tag[:36],
            started_at=at,
            meter_start_wh=meter_start_wh,
        )
        session.transaction_id = str(session.pk)
        session.save(update_fields=["transaction_id"])
    return session.pk


def stop_transaction(
    *, charger_id: int, transaction_id: str, meter_stop_wh: float, at: datetime, reason: str = ""
) -> ChargingSession | None:
    """1.6 StopTransaction: the session ends with its energy (a transaction the platform never opened is ignored)."""
    with transaction.atomic():
        session = (
            ChargingSession.objects.select_for_update()
            .filter(charger_id=charger_id, transaction_id=transaction_id)
            .first()
        )
        if session is None:
            return None
        session.stopped_at = max(at, session.started_at)
        session.meter_stop_wh = meter_stop_wh
        session.stop_reason = reason[:40]
        session.energy_kwh = _energy(session)
        session.save()
    return session


def transaction_event(
    *,
    charger_id: int,
    event_type: str,
    transaction_id: str,
    at: datetime,
    evse: int,
    id_tag: str = "",
    stopped_reason: str = "",
    registers: list[tuple[datetime, float]] | None = None,
) -> ChargingSession:
    """2.0.1 TransactionEvent: Started opens the session, Updated carries its register, Ended closes it."""
    registers = registers or []
    with transaction.atomic():
        charger = Charger.objects.get(pk=charger_id)
        session, _ = ChargingSession.objects.select_for_update().get_or_create(
            charger=charger,
            transaction_id=transaction_id[:36],
            defaults={"device_id": charger.device_id, "connector": evse, "started_at": at},
        )
        if id_tag and not session.id_tag:
            session.id_tag = id_tag[:36]
        if event_type == "Started":
            session.started_at = min(at, session.started_at)
        if registers:
            if session.meter_start_wh is None:
                session.meter_start_wh = registers[0][1]
            session.meter_stop_wh = registers[-1][1]
        if event_type == "Ended":
            session.stopped_at = max(at, session.started_at)
            session.stop_reason = stopped_reason[:40]
        session.energy_kwh = _energy(session)
        session.save()
    return session


# --- commands and plans -------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    id: str
    event_id: int
    device_id: int
    kind: str
    schedule: list
    expires_at: datetime


def live_commands(*, device_ids: list[int], now: datetime | None = None) -> list[Command]:
    """The devices' live commands (pending or accepted, not expired): one per event, the latest."""
    now = now or timezone.now()
    rows = (
        DeviceCommand.objects.filter(
            device_id__in=device_ids,
            status__in=[DeviceCommand.Status.PENDING, DeviceCommand.Status.ACCEPTED],
            expires_at__gt=now,
        )
        .order_by("device_id", "event_id", "-sequence")
        .distinct("device_id", "event_id")
        .values_list("id", "event_id", "device_id", "kind", "schedule", "expires_at")
    )
    return [Command(str(i), e, d, k, s, x) for i, e, d, k, s, x in rows]


def answer(*, command_id: str, accepted: bool, reason: str = "") -> str:
    """The charger's answer to a command's profile becomes its acknowledgement; returns the command's status."""
    command = DeviceCommand.objects.filter(pk=command_id).first()
    if command is None:
        return "gone"
    status = DeviceCommand.Status.ACCEPTED if accepted else DeviceCommand.Status.REJECTED
    try:
        return dispatch.acknowledge(command=command, status=status, reason=reason).status
    except DomainError as refused:  # expired, or already answered otherwise: the command keeps its state
        log.info("OCPP answer to command %s not recorded: %s", command_id, refused)
        return refused.code


def accepted(*, command_ids: list[str]) -> int:
    """Many chargers' Accepted answers at once (the server batches them)."""
    return dispatch.accept_many(command_ids=command_ids)


def plan(*, device_id: int, now: datetime | None = None) -> list[tuple[datetime, int, list[float]]]:
    """The device's charging plans that have not ended: (start, step seconds, kW per step)."""
    now = now or timezone.now()
    return [
        (p.start, p.step_seconds, list(p.kw))
        for p in DeviceSchedule.objects.filter(device_id=device_id, start__gt=now - timedelta(days=2)).order_by("start")
        if p.start.timestamp() + p.step_seconds * len(p.kw) > now.timestamp()
    ]


def plan_answered(*, charger_id: int, answer: str, at: datetime | None = None) -> None:
    Charger.objects.filter(pk=charger_id).update(plan_answer=answer[:20], plan_sent_at=at or timezone.now())


def composites_checked(*, applies: dict[int, bool | None], at: datetime | None = None) -> None:
    """Whether each charger's composite schedule holds its dispatch profile (the server batches them)."""
    at = at or timezone.now()
    with transaction.atomic():
        for value in (True, False, None):
            ids = [charger for charger, result in applies.items() if result is value]
            if ids:
                Charger.objects.filter(pk__in=ids).update(applies_profile=value, composite_checked_at=at)


def chargers_of(*, device_ids: list[int]) -> list[int]:
    """Of these devices, the OCPP chargers."""
    return list(Charger.objects.filter(device_id__in=device_ids).values_list("device_id", flat=True))
