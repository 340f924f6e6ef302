"""How the VTN meets the platform: dispatch commands become OpenADR events, VEN reports become telemetry.

Dispatch → VEN. Each fan-out chunk that gives a command to a device mapped to a VEN
resource also writes that resource's OpenADR event for the dispatch event (one per
resource, in the OpenADR program mapped to the dispatch event's program, created on first
use), targeted at the VEN (`VEN_NAME`) and the resource (`RESOURCE_NAME`). Its intervals
carry the device's allocation: `DISPATCH_SETPOINT_RELATIVE` in kW relative to normal
operation (negative: import less / export more), or for a resource that takes only levels
a `SIMPLE` level (0 none, 1 to 3 by the share of the device's rated kW). A modified or
re-balanced allocation updates the event (PUT to subscribers), a cancellation or an
allocation back to zero deletes it (DELETE). A VEN reading an event counts as the
device's command being delivered. Each event asks for a per-interval USAGE report.

VEN → platform. A report's resources are matched by resourceName to the VEN's resources
and their devices (others, like AGGREGATED_REPORT, are kept but not mapped). Per interval:
USAGE (kWh) and DEMAND (kW, average) become the device meter's interval readings (the
same store, checks and revisions as the device API's); DELTA_USAGE (kWh, negative =
reduced) on a dispatch event's report becomes the device's delivered kW for the closed
loop and the control room; STORAGE_CHARGE_LEVEL (%) and OPERATING_STATE the device's
status. An interval's time is its own intervalPeriod, else its resource's (the n-th
interval starting n durations later), else (intervalPeriod being optional in both places)
its event's: the event's interval of the same id, or the event's own period n durations on;
else the time the report was received, with no duration (a status such as OPERATING_STATE
needs no more; a metered USAGE does, and is refused without one). The report records which
of these its readings took (`period_from`). A report that cannot be mapped is refused whole.
"""

import math

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from aggregator.core.errors import DomainError, Problem
from aggregator.reference import readings as meter
from dispatch import services as dispatch
from dispatch.models import DeviceCommand, DispatchEvent
from dispatch.openadr import notify
from dispatch.openadr import representation as rep
from dispatch.openadr.models import Event, Program, Report, Resource, Ven
from dispatch.openadr.schema import Invalid, format_datetime, format_duration, parse_duration
from enrollment import services as enrollment
from enrollment.models import Device

USAGE_REPORT = {
    "payloadType": "USAGE",
    "readingType": "DIRECT_READ",
    "units": "KWH",
    "targets": None,
    "aggregate": False,
    "startInterval": -1,
    "numIntervals": -1,
    "historical": True,
    "frequency": -1,
    "repeat": 1,
}


# --- dispatch → VEN -------------------------------------------------------------------------


def device_for(ven: Ven, resource_name: str) -> Device | None:
    """The enrolled device a new resource stands for: at the VEN's site, with the resource's name as its serial."""
    if ven.site_id is None:
        return None
    return (
        Device.objects.filter(site_id=ven.site_id, serial__iexact=resource_name, openadr_resource__isnull=True)
        .order_by("pk")
        .first()
    )


def program_for(event: DispatchEvent) -> Program:
    platform = event.resource.program
    program = Program.objects.filter(platform_program=platform).first()
    if program is None:
        name = f"{platform.market.code}-{platform.code}"
        program, _ = Program.objects.get_or_create(
            program_name=name,
            defaults={
                "platform_program": platform,
                "body": {
                    "programLongName": platform.name,
                    "programType": platform.service,
                    "country": "US",
                    "payloadDescriptors": [
                        {
                            "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                            "payloadType": signal,
                            "units": units,
                            "currency": None,
                        }
                        for signal, units in ((Resource.Signal.SETPOINT, "KW"), (Resource.Signal.SIMPLE, None))
                    ],
                },
            },
        )
    return program


def _value(resource: Resource, kw: float) -> float | int:
    if resource.signal == Resource.Signal.SIMPLE:
        rated = float(resource.device.rated_kw)
        return 0 if kw <= 0 else min(3, max(1, math.ceil(3 * kw / rated - 1e-9)))
    return round(-kw, 3) or 0.0


def _event_fields(event: DispatchEvent, resource: Resource, schedule: list[dict]) -> dict:
    intervals = []
    for n, item in enumerate(schedule):
        start, end = parse_datetime(item["start"]), parse_datetime(item["end"])
        intervals.append(
            {
                "id": n,
                "intervalPeriod": {"start": format_datetime(start), "duration": format_duration(end - start)},
                "payloads": [{"type": resource.signal, "values": [_value(resource, float(item["kw"]))]}],
            }
        )
    units = "KW" if resource.signal == Resource.Signal.SETPOINT else None
    return {
        "event_name": f"{event.resource.name} #{event.pk}",
        "priority": 0,
        "targets": [
            {"type": "VEN_NAME", "values": [resource.ven.ven_name]},
            {"type": "RESOURCE_NAME", "values": [resource.resource_name]},
        ],
        # Seen by its VEN only: resource names are unique within a VEN, not across VENs.
        "target_keys": [f"VEN_NAME:{resource.ven.ven_name}"],
        "body": {
            "payloadDescriptors": [
                {
                    "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                    "payloadType": resource.signal,
                    "units": units,
                    "currency": None,
                }
            ],
            "reportDescriptors": [USAGE_REPORT],
            "intervalPeriod": intervals[0]["intervalPeriod"] if intervals else None,
            "intervals": intervals,
        },
    }


def sync_commands(*, event_id: int, first_device: int, last_device: int) -> int:
    """Make the OpenADR events of the chunk's VEN resources match their devices' latest commands; returns the changes."""
    resources = list(
        Resource.objects.select_related("ven", "device").filter(
            device_id__gte=first_device,
            device_id__lte=last_device,
            device_id__in=DeviceCommand.objects.filter(event_id=event_id).values("device_id"),
        )
    )
    if not resources:
        return 0
    event = DispatchEvent.objects.select_related("resource__program__market").get(pk=event_id)
    program = program_for(event)
    latest = {
        c.device_id: c
        for c in DeviceCommand.objects.filter(event_id=event_id, device_id__in=[r.device_id for r in resources])
        .order_by("device_id", "-sequence")
        .distinct("device_id")
    }
    existing = {e.resource_id: e for e in Event.objects.filter(dispatch_event_id=event_id, resource__in=resources)}
    changes = 0
    with transaction.atomic():
        for resource in resources:
            command, current = latest[resource.device_id], existing.get(resource.pk)
            serving = (
                command.kind != DeviceCommand.Kind.CANCEL
                and command.status in (DeviceCommand.Status.PENDING, DeviceCommand.Status.ACCEPTED)
                and any(float(i["kw"]) > 0 for i in command.schedule)
            )
            if not serving:
                if current is not None and current.deleted_at is None:
                    bodies = rep.in_each_version(rep.event, current)
                    current.remove()
                    notify.deleted(
                        "EVENT",
                        bodies,
                        program_id=program.pk,
                        targets=current.targets,
                        readers={resource.ven.client_id},
                    )
                    changes += 1
                continue
            fields = _event_fields(event, resource, command.schedule)
            if current is None:
                current = Event.objects.create(program=program, dispatch_event=event, resource=resource, **fields)
                notify.changed("EVENT", "CREATE", current)
            elif current.deleted_at is not None or any(getattr(current, k) != v for k, v in fields.items()):
                operation = (
                    "CREATE" if current.deleted_at is not None else "UPDATE"
                )  # a removed event comes back as new
                for key, value in fields.items():
                    setattr(current, key, value)
                current.deleted_at, current.modified_at = None, timezone.now()
                current.save()
                notify.changed("EVENT", operation, current)
            else:
                continue
            changes += 1
    return changes


def mark_read(principal, events: list[Event]) -> None:
    """A VEN that reads its dispatch events has received their commands."""
    if not principal.is_ven:
        return
    pairs = [
        (e.dispatch_event_id, e.resource.device_id)
        for e in events
        if e.dispatch_event_id is not None and e.resource_id is not None and e.resource.device_id is not None
    ]
    if not pairs:
        return
    match = Q()
    for event_id, device_id in pairs:
        match |= Q(event_id=event_id, device_id=device_id)
    DeviceCommand.objects.filter(match, delivered_at__isnull=True).update(delivered_at=timezone.now())


# --- VEN → platform -------------------------------------------------------------------------


def _number(values: list, path: str, problems: list[Problem]) -> float | None:
    if len(values) != 1 or isinstance(values[0], bool) or not isinstance(values[0], (int, float)):
        problems.append(Problem("invalid", "One number.", f"{path}.values"))
        return None
    return float(values[0])


def ingest_report(report: Report) -> None:
    """Map a report's intervals onto the platform's readings, delivery reports and device status (see above)."""

    period_from = Report.PeriodFrom.REPORT
    received = format_datetime(report.modified_at)
    event_body = report.event.body
    event_periods = {i.get("id"): i.get("intervalPeriod") for i in event_body.get("intervals") or []}
    for entry in report.body.get("resources") or []:
        default = entry.get("intervalPeriod")
        for interval in entry["intervals"]:
            if interval.get("intervalPeriod") is not None or default is not None:
                continue
            if event_periods.get(interval.get("id")) is not None or event_body.get("intervalPeriod") is not None:
                period_from = period_from if period_from == Report.PeriodFrom.RECEIPT else Report.PeriodFrom.EVENT
            else:
                period_from = Report.PeriodFrom.RECEIPT
    if report.period_from != period_from:
        report.period_from = period_from
        report.save(update_fields=["period_from"])
    if report.ven is None:
        return
    resources = {r.resource_name: r for r in report.ven.resources.select_related("device").filter(device__isnull=False)}
    problems: list[Problem] = []
    readings, paths, deltas, status = [], [], {}, {}
    for i, entry in enumerate(report.body.get("resources") or []):
        resource = resources.get(entry["resourceName"])
        if resource is None:
            continue
        device = resource.device
        default = entry.get("intervalPeriod")
        for j, interval in enumerate(entry["intervals"]):
            path = f"resources[{i}].intervals[{j}]"
            period, offset = interval.get("intervalPeriod"), 0
            if period is None and default is not None:
                period, offset = default, j
            if period is None:
                period = event_periods.get(interval.get("id"))
            if period is None and event_body.get("intervalPeriod") is not None:
                period, offset = event_body["intervalPeriod"], j
            if period is None:
                period = {"start": received}
            duration = parse_duration(period.get("duration") or "PT0S")
            try:
                start = parse_datetime(period["start"]) + offset * duration
                start + duration
            except OverflowError:
                problems.append(Problem("out_of_range", "Its interval ends beyond the year 9999.", path))
                continue
            seconds = int(duration.total_seconds())
            for k, payload in enumerate(interval["payloads"]):
                kind, where = payload["type"], f"{path}.payloads[{k}]"
                if kind in ("USAGE", "DEMAND", "DELTA_USAGE"):
                    value = _number(payload["values"], where, problems)
                    if value is None:
                        continue
                    if seconds not in meter.INTERVALS:
                        problems.append(
                            Problem(
                                "invalid_interval",
                                "A metered interval lasts 1, 5, 15, 30 or 60 minutes.",
                                f"{path}.intervalPeriod.duration",
                            )
                        )
                        continue
                    if kind == "DELTA_USAGE":
                        deltas.setdefault(device.pk, []).append((start, -value * 3600 / seconds, where))
                    else:
                        readings.append(
                            {
                                "meter": "device",
                                "device": device.pk,
                                "start": start.isoformat(),
                                "interval_seconds": seconds,
                                "kwh" if kind == "USAGE" else "kw": value,
                            }
                        )
                        paths.append(where)
                elif kind == "STORAGE_CHARGE_LEVEL":
                    value = _number(payload["values"], where, problems)
                    if value is not None and not 0 <= value <= 100:
                        problems.append(Problem("out_of_range", "A percentage from 0 to 100.", f"{where}.values"))
                    elif value is not None:
                        status.setdefault(device.pk, {})["state_of_charge_pct"] = (start + duration, value)
                elif kind == "OPERATING_STATE":
                    if len(payload["values"]) != 1 or not isinstance(payload["values"][0], str):
                        problems.append(Problem("invalid", "One string.", f"{where}.values"))
                    else:
                        status.setdefault(device.pk, {})["mode"] = (start + duration, payload["values"][0][:40])
    if problems:
        raise Invalid(problems)
    if readings:
        devices = {d.pk: (d.site_id, d.device_type, d.bidirectional) for d in (r.device for r in resources.values())}
        try:
            lines, _ = meter.parse(
                readings, meters=meter.Meters(devices=devices, default_device=None), label=lambda n: paths[n]
            )
            meter.store(
                lines=lines,
                earliest=meter.device_earliest(timezone.now()),
                starts=lambda: enumerate(r["start"] for r in readings),
                label=lambda n: paths[n],
            )
        except meter.BatchRejected as rejected:
            raise Invalid(rejected.problems) from None
    dispatch_event_id = report.event.dispatch_event_id
    for device_id, items in deltas.items():
        command = (
            DeviceCommand.objects.filter(event_id=dispatch_event_id, device_id=device_id).order_by("-sequence").first()
            if dispatch_event_id
            else None
        )
        if command is None:
            raise Invalid(
                Problem(
                    "not_dispatched",
                    "DELTA_USAGE is reported for the platform's dispatch events, to the devices they dispatched.",
                    f"{items[0][2]}.type",
                )
            )
        try:
            dispatch.report_delivery(command=command, reports=[(at, kw) for at, kw, _ in items])
        except DomainError as refused:
            raise Invalid(
                [
                    Problem(p.code, p.message, items[int(p.field.split("[")[1].split("]")[0])][2] if p.field else None)
                    for p in refused.problems
                ]
            ) from None
    now = timezone.now()
    for device_id, fields in status.items():
        at = min(now, max(t for t, _ in fields.values()))
        enrollment.record_heartbeat(device_id=device_id, at=at, **{k: v for k, (_, v) in fields.items()})
