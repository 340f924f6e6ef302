"""A distribution utility's override: it blocks or caps dispatch of its customers' devices in an area for a window.

The area is a market zone or a list of pricing nodes, and only the utility's own sites in it (sites name their
utility). While an override is in effect:
- allocation gives a blocked device nothing in the intervals the window covers (reason `utility_override` when
  that is all of them) and keeps a capped area's devices within the cap together (dispatch.allocation.Limits);
- events already running when it is made lose the area's devices from the window on (their live commands end,
  as a storm watch's do) and re-balance to other devices; a cap is applied the same way when the area's devices
  hold more than it, so the cap is never exceeded (they do not rejoin that event).
Cancelling ends it from that moment; the event page lists the overrides that took kW from it.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from aggregator.core.errors import DomainError, Problem
from aggregator.reference.models import Market, Utility
from dispatch import jobs, poll_cache, resilience
from dispatch.models import DispatchEvent, UtilityOverride


class OverrideRefused(DomainError):
    status = 400


# The utility's devices in the area: its sites (by name) in the zone or at the nodes.
AREA = """
SELECT d.id FROM enrollment_device d JOIN enrollment_site s ON s.id = d.site_id
WHERE s.market_id = %(market)s AND s.utility = %(utility)s
  AND (s.zone = %(zone)s OR s.pricing_node = ANY(%(nodes)s::text[]))
"""
_LIVE = """
SELECT c.device_id, c.event_id, a.kw
FROM dispatch_devicecommand c JOIN dispatch_allocation a ON a.event_id = c.event_id AND a.device_id = c.device_id
WHERE c.device_id = ANY(%(devices)s) AND c.status IN ('pending', 'accepted') AND c.kind <> 'cancel'
  AND c.not_before < %(end)s AND c.expires_at > greatest(%(start)s, %(now)s)
"""
_LEAVE = """
UPDATE dispatch_devicecommand c SET status = 'opted_out', reason = %(reason)s, acknowledged_at = %(now)s
WHERE c.device_id = ANY(%(devices)s) AND c.event_id = ANY(%(events)s) AND c.status IN ('pending', 'accepted')
  AND c.kind <> 'cancel'
RETURNING c.device_id
"""


def problems(*, zone: str, pricing_nodes, start: datetime, end: datetime, cap_kw, reason: str, now: datetime):
    out = resilience.problems(
        zone=zone,
        pricing_nodes=pricing_nodes,
        start=start,
        end=end,
        reason=reason,
        now=now,
        why="the work or constraint it is for",
        again="make another",
    )
    if cap_kw is not None and cap_kw < 0:
        out.append(Problem("out_of_range", "cap_kw cannot be negative (leave it empty to block).", "cap_kw"))
    return out


def area_devices(override: UtilityOverride) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            AREA,
            {
                "market": override.market_id,
                "utility": override.utility.name,
                "zone": override.zone or None,
                "nodes": list(override.pricing_nodes),
            },
        )
        return [row[0] for row in cursor.fetchall()]


def make(
    *,
    utility: Utility,
    market: Market,
    start: datetime,
    end: datetime,
    reason: str,
    by: str,
    zone: str = "",
    pricing_nodes=(),
    cap_kw: Decimal | None = None,
    now: datetime | None = None,
) -> UtilityOverride:
    now = now or timezone.now()
    refused = problems(
        zone=zone, pricing_nodes=pricing_nodes, start=start, end=end, cap_kw=cap_kw, reason=reason, now=now
    )
    if refused:
        raise OverrideRefused(refused)
    with transaction.atomic():
        override = UtilityOverride.objects.create(
            utility=utility,
            market=market,
            zone=zone,
            pricing_nodes=list(pricing_nodes),
            start=start,
            end=end,
            cap_kw=cap_kw,
            reason=reason[:200],
            created_by_label=by[:150],
            created_at=now,
        )
        _leave_live_events(override, now=now)
    return override


def _leave_live_events(override: UtilityOverride, *, now: datetime) -> None:
    """The area's devices leave the events they serve in the window (all of them for a block; for a cap, those of
    events where the area holds more than the cap), and those events re-balance."""
    devices = area_devices(override)
    if not devices:
        return
    with connection.cursor() as cursor:
        cursor.execute(_LIVE, {"devices": devices, "start": override.start, "end": override.end, "now": now})
        live = cursor.fetchall()
    held: dict[int, float] = {}
    for _, event_id, kw in live:
        held[event_id] = held.get(event_id, 0.0) + max(kw or [0.0])
    cap = None if override.cap_kw is None else float(override.cap_kw)
    events = sorted(e for e, kw in held.items() if cap is None or kw > cap + 1e-9)
    if not events:
        return
    text = f"utility override {override.pk} ({override.utility}): {override.reason}"[:200]
    with connection.cursor() as cursor:
        cursor.execute(_LEAVE, {"devices": devices, "events": events, "reason": text, "now": now})
        left = sorted({row[0] for row in cursor.fetchall()})
    poll_cache.changed(devices=left)
    for event_id in events:
        jobs.rebalance(event_id, "utility override")


def cancel(*, override: UtilityOverride, now: datetime | None = None) -> UtilityOverride:
    now = now or timezone.now()
    with transaction.atomic():
        override = UtilityOverride.objects.select_for_update().get(pk=override.pk)
        if override.cancelled_at is None:
            override.cancelled_at = now
            if override.end > now:
                override.end = max(now, override.start + timedelta(seconds=1))
            override.save(update_fields=["cancelled_at", "end"])
    return override


def in_effect(*, market_id: int, start: datetime, end: datetime) -> list[UtilityOverride]:
    """Overrides of a market overlapping [start, end)."""
    return list(
        UtilityOverride.objects.filter(market_id=market_id, start__lt=end, end__gt=start)
        .select_related("utility")
        .order_by("start", "pk")
    )


def for_event(event: DispatchEvent) -> list[dict]:
    """The overrides that touched an event's window, with how many of its allocated-to-nothing devices they hold."""
    out = []
    for override in in_effect(market_id=event.resource.market_id, start=event.start, end=event.end):
        devices = set(area_devices(override))
        members = event.allocations.filter(device_id__in=devices)
        out.append(
            {
                "override": override,
                "devices": members.count(),
                "blocked": members.filter(reason="utility_override").count(),
            }
        )
    return out
