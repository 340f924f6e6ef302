"""Storm watch: ahead of severe weather, keep a zone's devices home with their batteries full.

Declaring one for a market's zone (or a list of its pricing nodes) and a window:
- every device at a site in the scope gets an opt-out over the window (marked as the storm
  watch's, not the customer's, so it does not count against the customer's season), so it
  leaves the events overlapping the window now (live commands become opted out, the
  events re-balance to other devices) and is not allocated to any new one;
- the resources' capability drops by those devices over the window (aggregator.aggregation.selectors);
- batteries' standing schedules hold a full charge over the window (dispatch.schedules).
Cancelling a storm watch ends its opt-outs from that moment.
"""

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from aggregator.core.errors import DomainError, Problem
from dispatch import jobs, poll_cache
from dispatch.models import DeviceOptOut, StormWatch

MAX_WINDOW = timedelta(days=7)


class StormWatchRefused(DomainError):
    status = 400


_COVER = """
INSERT INTO dispatch_deviceoptout (device_id, start, "end", event_id, reason, storm_watch_id, created_at)
SELECT d.id, %(start)s, %(end)s, NULL, %(reason)s, %(watch)s, %(now)s
FROM enrollment_device d JOIN enrollment_site s ON s.id = d.site_id
WHERE s.market_id = %(market)s AND (s.zone = %(zone)s OR s.pricing_node = ANY(%(nodes)s::text[]))
RETURNING device_id
"""
_LEAVE = """
UPDATE dispatch_devicecommand c SET status = 'opted_out', reason = %(reason)s, acknowledged_at = %(now)s
WHERE c.device_id = ANY(%(devices)s) AND c.status IN ('pending', 'accepted') AND c.kind <> 'cancel'
  AND c.not_before < %(end)s AND c.expires_at > greatest(%(start)s, %(now)s)
RETURNING c.device_id, c.event_id
"""


def problems(
    *,
    zone: str,
    pricing_nodes,
    start: datetime,
    end: datetime,
    reason: str,
    now: datetime,
    why: str = "the weather it is for",
    again: str = "declare another",
) -> list[Problem]:
    """What is wrong with an area-and-window rule's scope and window (a storm watch's; a utility override's too,
    with its own wording): nothing is an empty list."""
    problems = []
    if not zone and not pricing_nodes:
        problems.append(Problem("required", "Name a zone or pricing nodes.", "zone"))
    if zone and pricing_nodes:
        problems.append(Problem("ambiguous", "A zone or pricing nodes, not both.", "pricing_nodes"))
    if end <= start:
        problems.append(Problem("out_of_range", "end must be after start.", "end"))
    elif end <= now:
        problems.append(Problem("in_the_past", "The window has already ended.", "end"))
    elif end - start > MAX_WINDOW:
        problems.append(Problem("too_long", f"At most {MAX_WINDOW.days} days; {again} when it ends.", "end"))
    if not reason.strip():
        problems.append(Problem("required", f"Say why ({why}).", "reason"))
    return problems


def declare(
    *,
    market,
    start: datetime,
    end: datetime,
    reason: str,
    by,
    zone: str = "",
    pricing_nodes=(),
    now: datetime | None = None,
) -> StormWatch:
    now = now or timezone.now()
    refused = problems(zone=zone, pricing_nodes=pricing_nodes, start=start, end=end, reason=reason, now=now)
    if refused:
        raise StormWatchRefused(refused)
    label = getattr(by, "username", None) or str(by)
    with transaction.atomic():
        watch = StormWatch.objects.create(
            market=market,
            zone=zone,
            pricing_nodes=list(pricing_nodes),
            start=start,
            end=end,
            reason=reason[:200],
            created_by=by if hasattr(by, "pk") else None,
            created_by_label=label,
            created_at=now,
        )
        text = f"storm watch {watch.pk}: {reason}"[:200]
        with connection.cursor() as cursor:
            cursor.execute(
                _COVER,
                {
                    "start": start,
                    "end": end,
                    "reason": text,
                    "watch": watch.pk,
                    "now": now,
                    "market": market.pk,
                    "zone": zone or None,
                    "nodes": list(pricing_nodes),
                },
            )
            devices = [row[0] for row in cursor.fetchall()]
            cursor.execute(_LEAVE, {"devices": devices, "reason": text, "now": now, "start": start, "end": end})
            left = cursor.fetchall()
        events = sorted({event for _, event in left})
        watch.devices, watch.events = len(devices), len(events)
        watch.save(update_fields=["devices", "events"])
        if left:
            poll_cache.changed(devices=sorted({device for device, _ in left}))
        for event_id in events:
            jobs.rebalance(event_id, "storm watch")
    return watch


def cancel(*, watch: StormWatch, now: datetime | None = None) -> StormWatch:
    """End the watch now: its opt-outs stop at this moment (removed if they had not begun)."""
    now = now or timezone.now()
    with transaction.atomic():
        watch = StormWatch.objects.select_for_update().get(pk=watch.pk)
        if watch.cancelled_at is None:
            watch.opt_outs.filter(start__gte=now).delete()
            watch.opt_outs.filter(end__gt=now).update(end=now)
            watch.cancelled_at = now
            watch.save(update_fields=["cancelled_at"])
    return watch


def covered(device_ids: list[int], start: datetime, end: datetime) -> dict[int, list[tuple[datetime, datetime]]]:
    """The storm-watch windows over [start, end) of each of these devices."""

    out: dict[int, list] = {}
    for device_id, a, b in DeviceOptOut.objects.filter(
        device_id__in=device_ids, storm_watch__isnull=False, start__lt=end, end__gt=start
    ).values_list("device_id", "start", "end"):
        out.setdefault(device_id, []).append((a, b))
    return out
