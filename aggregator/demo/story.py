"""The demo's story, seeded once after the fleet: history, a past settled event, an upcoming one, and device tokens.

- Device tokens for every demo device, written to a file in the data folder (0600) for
  the simulator, which then works through the device API only.
- 45 days of hourly site-meter history from the simulator's own load models, so every
  baseline method has its look-back.
- A past event on the largest PJM resource, run through the dispatch services at the
  times it happened (allocation, commands, devices' delivery reports, completion), its
  reductions in the meter history, prices at its nodes, then settled.
- An upcoming event on the largest CAISO resource, tomorrow evening, scheduled like any other.
"""

import json
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

from aggregator.aggregation.models import VirtualResource
from aggregator.aggregation.selectors import capability_of
from aggregator.demo.simulator import behaviour, device_models
from aggregator.reference import readings
from aggregator.reference.models import Program
from aggregator.reference.prices import import_prices
from dispatch import services as dispatch
from dispatch.models import DeviceCommand
from enrollment import services
from enrollment.models import Device, Site
from settlement import services as settlement
from settlement.models import SettlementTerms

HISTORY_DAYS = 45
TERMS = {  # program code -> settlement terms of the demo programs
    "pjm-capacity-dr": {
        "baseline_method": "pjm-high-4-of-5",
        "capacity_rate_per_kw": Decimal("2.50"),
        "penalty_per_kw": Decimal("1.00"),
        "sharing_rule": "revenue_share",
        "sharing_value": Decimal(60),
        "fee_pct": Decimal(5),
    },
    # Customers get $0.05/kWh (a $50/MWh share of LMP): the demo's energy offers are priced from it, so the
    # market simulator's prices clear them for most of a day's hours (at $0.50 they would never clear).
    "caiso-pdr": {
        "baseline_method": "caiso-10-in-10",
        "sharing_rule": "per_kwh",
        "sharing_value": Decimal("0.05"),
        "fee_pct": Decimal(0),
    },
}


def tokens_file() -> Path:
    return settings.VPP_DATA_DIR / "demo-device-tokens.json"


def models_for(devices) -> dict[int, behaviour.DeviceModel]:
    return {
        d.pk: device_models.model_for(
            device_id=d.pk,
            device_type=d.device_type,
            rated_kw=d.rated_kw,
            energy_kwh=d.energy_kwh,
            backup_reserve_pct=d.backup_reserve_pct,
            time_zone=d.site.time_zone,
            market=d.site.market.code,
        )
        for d in devices
    }


def issue_tokens(devices, *, by) -> Path:
    """A token per device, kept where only this checkout's user can read it; the platform keeps only digests."""

    path = tokens_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens = [services.issue_credential(device=d, label="demo simulator", by=by)[1] for d in devices]
    path.write_text(json.dumps({"tokens": tokens}))
    path.chmod(0o600)
    return path


def _largest(program: Program) -> VirtualResource | None:

    resources = list(VirtualResource.objects.filter(program=program, state__in=["submitted", "registered", "active"]))
    if not resources:
        return None
    capability = capability_of(resource_ids=[r.pk for r in resources], now=datetime.now(UTC), hours=1, event_hours=2)
    return max(resources, key=lambda r: capability[r.pk]["now_kw"])


def _target(resource: VirtualResource, share: float) -> Decimal:
    """A share of what the resource can do now: enough that the allocation spreads over many devices."""

    kw = capability_of(resource_ids=[resource.pk], now=datetime.now(UTC), hours=1, event_hours=2)[resource.pk]["now_kw"]
    return Decimal(max(10, int(kw * share)))


def _local(day, hour: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), zone).astimezone(UTC)


def run_past_event(resource: VirtualResource, *, by, now: datetime) -> tuple:
    """An event three days ago, 14:00-16:00 market time, run through the services at its own times."""

    zone = ZoneInfo(resource.market.time_zone)
    day = (now.astimezone(zone) - timedelta(days=3)).date()
    start, end = _local(day, 14, zone), _local(day, 16, zone)
    event = dispatch.create_event(
        resource=resource,
        source="operator_test",
        start=start,
        end=end,
        by=by,
        notify_at=start - timedelta(hours=2),
        target_kw=_target(resource, 0.8),
        external_ref="DEMO-PAST",
        now=start - timedelta(hours=3),
    )
    for moment in (start - timedelta(hours=2), start):
        for chunk in dispatch.advance(event_id=event.pk, now=moment):
            dispatch.issue_commands(
                event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3], now=moment
            )
    devices = {
        d.pk: d
        for d in Device.objects.filter(
            memberships__resource=resource, memberships__left_at__isnull=True
        ).select_related("site__market")
    }
    models = models_for(devices.values())
    delivered = defaultdict(float)  # (site, interval start) -> kW delivered by its devices
    for command in DeviceCommand.objects.filter(event=event, kind="dispatch"):
        model = models[command.device_id]
        if model.opts_out(f"event-{event.pk}"):
            dispatch.opt_out(
                device_id=command.device_id,
                start=start,
                end=end,
                reason="Customer override (demo)",
                event=event,
                now=start + timedelta(minutes=20),
            )
            continue
        dispatch.acknowledge(command=command, status="accepted", now=start - timedelta(minutes=90))
        reports = []
        for item in command.schedule:
            at = datetime.fromisoformat(item["start"])
            kw = model.step(at + timedelta(minutes=30), 3600, float(item["kw"]))
            reports.append((at, round(kw, 3)))
            delivered[(devices[command.device_id].site_id, at)] += kw
        dispatch.report_delivery(command=command, reports=reports, now=end)
    dispatch.advance(event_id=event.pk, now=end)
    event.refresh_from_db()
    return event, delivered


def write_history(sites: list[Site], *, now: datetime, delivered: dict) -> int:
    """Hourly site-meter readings for the last 45 days, with the past event's reductions in them."""

    end = now.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=HISTORY_DAYS)
    by_site = defaultdict(list)
    for device in Device.objects.filter(site__in=sites).select_related("site__market"):
        by_site[device.site_id].append(device)
    rows = []
    for site in sites:
        devices = by_site.get(site.pk, [])
        history = behaviour.history_kwh(
            site_seed=site.pk,
            commercial=any(d.device_type in device_models.COMMERCIAL_TYPES for d in devices),
            devices=list(models_for(devices).values()),
            time_zone=site.time_zone,
            start=start,
            end=end,
        )
        rows.extend(
            {
                "site": site.pk,
                "start": at.isoformat(),
                "interval_seconds": 3600,
                "kwh": round(kwh - delivered.get((site.pk, at), 0.0), 3),
                "quality": "actual",
            }
            for at, kwh in history
        )
    written = 0
    for i in range(0, len(rows), readings.MAX_BATCH):
        batch = rows[i : i + readings.MAX_BATCH]
        lines, _ = readings.parse(batch, meters=readings.Meters({}, None), sites=frozenset(s.pk for s in sites))
        written += readings.store(lines=lines, starts=lambda b=batch: enumerate(r["start"] for r in b)).inserted
    return written


def _prices(event) -> None:
    """The event's hours priced at every node of its sites (a plausible afternoon LMP)."""

    nodes = sorted(
        set(Site.objects.filter(devices__memberships__resource=event.resource).values_list("pricing_node", flat=True))
    )
    lines = ["node,start,price_per_mwh,interval_minutes"]
    for n, node in enumerate(nodes):
        for k, interval in enumerate(event.intervals.order_by("start")):
            lines.append(f"{node},{interval.start.isoformat()},{85 + 15 * k + n},60")
    import_prices(market=event.resource.market, source="\n".join(lines).encode())


def seed(*, programs: list[Program], by, now: datetime | None = None) -> dict:
    """The story after the fleet import; returns what it made."""

    now = now or datetime.now(UTC)
    devices = list(
        Device.objects.filter(site__customer__external_ref__startswith="DEMO-")
        .select_related("site__market")
        .order_by("id")
    )
    for program in programs:
        if program.code in TERMS:
            SettlementTerms.objects.get_or_create(program=program, defaults=TERMS[program.code])
    out = {"tokens": str(issue_tokens(devices, by=by))}
    by_code = {p.market.code: p for p in programs}
    past = _largest(by_code["PJM"]) if "PJM" in by_code else None
    delivered = {}
    if past is not None:
        with transaction.atomic():
            event, delivered = run_past_event(past, by=by, now=now)
        out["past_event"] = event.pk
    sites = list(Site.objects.filter(customer__external_ref__startswith="DEMO-"))
    out["readings"] = write_history(sites, now=now, delivered=delivered)
    if past is not None:
        _prices(event)
        out["settlement_run"] = settlement.settle_event(event=event, by="demo seed", now=now).pk
    upcoming = _largest(by_code["CAISO"]) if "CAISO" in by_code else None
    if upcoming is not None:
        zone = ZoneInfo(upcoming.market.time_zone)
        day = (now.astimezone(zone) + timedelta(days=1)).date()
        event = dispatch.create_event(
            resource=upcoming,
            source="operator_test",
            start=_local(day, 18, zone),
            end=_local(day, 20, zone),
            target_kw=_target(upcoming, 0.5),
            by=by,
            external_ref="DEMO-NEXT",
            notify_at=_local(day, 9, zone),
        )
        out["upcoming_event"] = event.pk
    return out
