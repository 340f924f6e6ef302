"""The closed loop: each active event's delivery against its target, and a rebalance where it falls short."""

import time
from datetime import datetime

import numpy as np
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from dispatch import allocation, selectors
from dispatch.models import (
    AllocationRound,
    DispatchEvent,
)
from dispatch.services.rounds import current_index, current_kw, intervals_of, write_round
from dispatch.services.states import S

SHORTFALL_TOLERANCE = 0.02  # of the target: closer than this is on target

# Per device, for the current interval: allocated kW, the device's report (if any), and
# whether it is still serving (a live command, online).
_LOOP = """
SELECT a.device_id, a.kw[%(n)s], r.delivered_kw,
       EXISTS (SELECT 1 FROM dispatch_devicecommand c WHERE c.event_id = a.event_id AND c.device_id = a.device_id
               AND c.status IN ('pending', 'accepted') AND c.kind <> 'cancel')
       AND coalesce(st.online, true)
FROM dispatch_allocation a
LEFT JOIN dispatch_deliveryreport r ON r.event_id = a.event_id AND r.device_id = a.device_id AND r.interval_start = %(start)s
LEFT JOIN enrollment_devicestatus st ON st.device_id = a.device_id
WHERE a.event_id = %(event)s AND a.kw[%(n)s] > 0
"""


def rebalance(*, event_id: int, reason: str = "closed loop", now: datetime | None = None) -> AllocationRound | None:
    """Compare what devices deliver with the target now; give any shortfall to devices with headroom.

    Expected now = reports where devices reported, allocations of devices still serving
    that have not reported yet, nothing from devices that opted out, rejected or went
    offline. A device delivering less than asked is assumed to keep doing so for the
    rest of the event.
    """
    now = now or timezone.now()
    with transaction.atomic():
        event = (
            DispatchEvent.objects.select_for_update()
            .select_related("resource__market", "resource__program")
            .get(pk=event_id)
        )
        if event.state not in (S.NOTIFIED, S.ACTIVE) or event.allocation_round == 0 or now >= event.end:
            return None
        if event.commands_issued_round < event.allocation_round:
            return None  # devices still waiting for their first command would look like non-serving ones
        intervals = intervals_of(event)
        j = current_index(intervals, now)
        margin = 1 + float(event.over_commit_pct) / 100
        with connection.cursor() as cursor:
            cursor.execute(_LOOP, {"n": j + 1, "start": intervals[j].start, "event": event.pk})
            rows = cursor.fetchall()
        # A report counts for at most what the device was asked (and never below zero), so
        # one device's odd figure cannot hide a shortfall or send the whole fleet in.
        rows = [
            (d, kw, None if delivered is None else min(max(delivered, 0.0), kw), serving)
            for d, kw, delivered, serving in rows
        ]
        expected = sum(
            (delivered if delivered is not None else kw) if serving else 0.0 for _, kw, delivered, serving in rows
        )
        losing = {
            d: (kw - (delivered if delivered is not None else kw)) if serving else kw
            for d, kw, delivered, serving in rows
        }
        target = float(intervals[j].target_kw)
        if expected >= target * (1 - SHORTFALL_TOLERANCE):
            return None
        c, fleet, customers = selectors.candidates(
            event=event, instants=[i.start for i in intervals], now=now, window=(max(now, event.start), event.end)
        )
        previous = current_kw(event, c.device_id, len(intervals))
        index = {int(d): i for i, d in enumerate(c.device_id)}
        # Devices no longer serving drop out of the remaining intervals; under-deliverers keep their share.
        for device_id, _, _, serving in rows:
            if not serving and device_id in index:
                c.excluded[index[device_id]] = c.excluded[index[device_id]] or allocation.OPTED_OUT
        # Headroom excludes what an under-deliverer was already asked for.
        kept = np.where(c.usable[:, None], previous, 0.0)
        deficit = np.zeros(len(intervals))
        deficit[j:] = sum(losing.values())
        shortfall = np.clip(
            np.maximum(deficit, np.array([float(i.target_kw) for i in intervals]) * margin - kept.sum(axis=0)), 0, None
        )
        shortfall[j] = max(target * margin - expected, 0.0)
        ranks = allocation.rank(c)
        kw = allocation.top_up(c, current=previous, shortfall=shortfall, ranks=ranks, from_interval=j)
        why = allocation.reasons(c, kw)
        return write_round(
            event=event,
            c=c,
            fleet=fleet,
            customers=customers,
            kw=kw,
            ranks=ranks,
            why=why,
            previous=previous,
            intervals=intervals,
            first=j,
            reason=reason,
            targets=np.array([float(i.target_kw) for i in intervals]) * margin,
            t0=time.perf_counter(),
        )


def open_events_due(*, now: datetime) -> list[int]:
    """Events with a transition due or commands not all issued (the sweep's work list)."""
    return list(
        DispatchEvent.objects.filter(
            Q(state=S.SCHEDULED, notify_at__lte=now)
            | Q(state__in=[S.SCHEDULED, S.NOTIFIED], start__lte=now)
            | Q(state=S.ACTIVE, end__lte=now)
            | Q(commands_issued_round__lt=F("allocation_round"))
        ).values_list("pk", flat=True)
    )


def active_event_ids() -> list[int]:
    return list(DispatchEvent.objects.filter(state__in=[S.NOTIFIED, S.ACTIVE]).values_list("pk", flat=True))
