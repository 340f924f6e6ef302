"""Device replies: acknowledgements, opt-outs (the customer's override, leaving events off-grid) and delivery reports."""

import contextlib
from datetime import datetime
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from aggregator.core.errors import DomainError, Problem
from dispatch import jobs, poll_cache
from dispatch.models import (
    DeviceCommand,
    DeviceOptOut,
    DispatchEvent,
    EventInterval,
)
from dispatch.services.states import EventRefused
from enrollment.models import Device


def acknowledge(*, command: DeviceCommand, status: str, reason: str = "", now: datetime | None = None) -> DeviceCommand:
    """accepted or rejected; repeating the same answer changes nothing."""
    now = now or timezone.now()
    if status not in (DeviceCommand.Status.ACCEPTED, DeviceCommand.Status.REJECTED):
        raise EventRefused(Problem("invalid_choice", "status is accepted or rejected.", "status"))
    with transaction.atomic():
        command = DeviceCommand.objects.select_for_update().get(pk=command.pk)
        if command.status == status:
            return command
        if command.status != DeviceCommand.Status.PENDING:
            raise DomainError(
                Problem(
                    "not_pending",
                    f"This command is {command.status}; only a pending command can be acknowledged.",
                    "status",
                )
            )
        expired = command.expires_at <= now
        poll_cache.changed(devices=[command.device_id])
        if expired:
            command.status = DeviceCommand.Status.EXPIRED
            command.save(update_fields=["status"])
        else:
            command.status, command.acknowledged_at, command.reason = status, now, reason[:200]
            command.delivered_at = command.delivered_at or now
            command.save(update_fields=["status", "acknowledged_at", "reason", "delivered_at"])
            if status == DeviceCommand.Status.REJECTED and command.kind != DeviceCommand.Kind.CANCEL:
                # The device will not serve this event: keep it out of later rounds, and replace it now.
                DeviceOptOut.objects.create(
                    device_id=command.device_id,
                    start=now,
                    end=command.expires_at,
                    event_id=command.event_id,
                    reason=f"rejected: {reason}"[:200],
                    created_at=now,
                )
                jobs.rebalance(command.event_id, f"device {command.device_id} rejected its command")
    if expired:  # raised after the block, so the expiry is kept
        raise DomainError(Problem("expired", "This command expired before it was acknowledged.", "status"))
    return command


def accept_many(*, command_ids: list[str], now: datetime | None = None) -> int:
    """Accept many commands at once (an OCPP server records its chargers' answers by the thousand): pending,
    unexpired ones in one statement; any other goes through `acknowledge` (an expired one is recorded as such,
    one already answered otherwise keeps its answer). Returns how many were accepted here."""
    now = now or timezone.now()
    if not command_ids:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """UPDATE dispatch_devicecommand SET status = 'accepted', acknowledged_at = %s, reason = '',
                      delivered_at = coalesce(delivered_at, %s)
               WHERE id = ANY(%s::uuid[]) AND status = 'pending' AND expires_at > %s RETURNING id, device_id""",
            [now, now, list(command_ids), now],
        )
        done = cursor.fetchall()
        poll_cache.changed(devices=sorted({device for _, device in done}))
    accepted = {str(command_id) for command_id, _ in done}
    for command in DeviceCommand.objects.filter(pk__in=[c for c in command_ids if str(c) not in accepted]):
        # Expired (now recorded as such), or answered otherwise before: it keeps that answer.
        with contextlib.suppress(DomainError):
            acknowledge(command=command, status=DeviceCommand.Status.ACCEPTED, now=now)
    return len(done)


def opt_out(
    *,
    device_id: int,
    start: datetime,
    end: datetime,
    reason: str = "",
    event: DispatchEvent | None = None,
    now: datetime | None = None,
) -> DeviceOptOut:
    """The customer's override: the device leaves every event overlapping [start, end); others replace it."""
    now = now or timezone.now()
    if end <= max(start, now):
        raise EventRefused(Problem("out_of_range", "until must be after start and in the future.", "until"))
    market_zone = Device.objects.filter(pk=device_id).values_list("site__market__time_zone", flat=True).get()
    if event is not None:
        existing = DeviceOptOut.objects.filter(device_id=device_id, event=event, end__gte=end).first()
        if existing is not None:  # a retried request
            return existing
    with transaction.atomic():
        record = DeviceOptOut.objects.create(
            device_id=device_id, start=start, end=end, event=event, reason=reason[:200], created_at=now
        )
        live = DeviceCommand.objects.filter(
            device_id=device_id,
            status__in=[DeviceCommand.Status.PENDING, DeviceCommand.Status.ACCEPTED],
            not_before__lt=end,
            expires_at__gt=start,
        ).exclude(kind=DeviceCommand.Kind.CANCEL)
        events = set(live.values_list("event_id", flat=True))
        if live.update(
            status=DeviceCommand.Status.OPTED_OUT, reason=reason[:200] or "customer override", acknowledged_at=now
        ):
            poll_cache.changed(devices=[device_id])
        with connection.cursor() as cursor:
            cursor.execute(
                """INSERT INTO dispatch_deviceseasonburden AS b (device_id, season, events, hours, opt_outs)
                   VALUES (%s, %s, 0, 0, 1) ON CONFLICT (device_id, season) DO UPDATE SET opt_outs = b.opt_outs + 1""",
                [device_id, start.astimezone(ZoneInfo(market_zone)).year],
            )
        for event_id in events:
            jobs.rebalance(event_id, f"device {device_id} opted out")
    return record


def leave_events_off_grid(*, device_id: int, status: str, now: datetime | None = None) -> int:
    """An islanded device (or one in an outage) serves its own site: it leaves the events it has live commands in,
    and others replace it. Returns how many events it left (none again while its commands are already opted out)."""
    now = now or timezone.now()
    live = DeviceCommand.objects.filter(
        device_id=device_id,
        status__in=[DeviceCommand.Status.PENDING, DeviceCommand.Status.ACCEPTED],
        expires_at__gt=now,
    ).exclude(kind=DeviceCommand.Kind.CANCEL)
    until = max(live.values_list("expires_at", flat=True), default=None)
    if until is None:
        return 0
    events = set(live.values_list("event_id", flat=True))
    opt_out(device_id=device_id, start=now, end=until, reason=f"off the grid ({status})", now=now)
    return len(events)


def report_delivery(
    *, command: DeviceCommand, reports: list[tuple[datetime, float]], now: datetime | None = None
) -> int:
    """Upsert a device's measured kW per interval of the command's event; a resend replaces, never duplicates."""
    now = now or timezone.now()
    seen: dict[datetime, int] = {}
    duplicates = [
        Problem("duplicate_interval", f"Also reported at reports[{seen[at]}].", f"reports[{i}].interval_start")
        for i, (at, _) in enumerate(reports)
        if seen.setdefault(at, i) != i
    ]
    if duplicates:
        raise EventRefused(duplicates)
    starts = set(EventInterval.objects.filter(event_id=command.event_id).values_list("start", flat=True))
    problems = [
        Problem("unknown_interval", "Not the start of one of the event's intervals.", f"reports[{i}].interval_start")
        for i, (at, _) in enumerate(reports)
        if at not in starts
    ]
    problems += [
        Problem("in_the_future", "That interval has not started yet.", f"reports[{i}].interval_start")
        for i, (at, _) in enumerate(reports)
        if at in starts and at > now
    ]
    if problems:
        raise EventRefused(problems)
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO dispatch_deliveryreport (event_id, device_id, interval_start, delivered_kw, reported_at)
               SELECT %s, %s, s, k, %s FROM unnest(%s::timestamptz[], %s::float8[]) AS t(s, k)
               ON CONFLICT (event_id, device_id, interval_start) DO UPDATE
                   SET delivered_kw = EXCLUDED.delivered_kw, reported_at = EXCLUDED.reported_at""",
            [command.event_id, command.device_id, now, [r[0] for r in reports], [float(r[1]) for r in reports]],
        )
        return cursor.rowcount
