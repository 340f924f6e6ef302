"""The lifecycle, driven by tasks: notify, start and complete each event when its moment comes."""

from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from dispatch import poll_cache, selectors
from dispatch.models import (
    DispatchEvent,
)
from dispatch.services.rounds import allocate, pending_chunks
from dispatch.services.states import S, transition


def advance(*, event_id: int, now: datetime | None = None) -> list[tuple[int, int, int, int]]:
    """Take every transition that is due; return the fan-out chunks still to run.

    Safe to call any number of times, from ETA tasks and the sweep alike.
    """
    now = now or timezone.now()
    with transaction.atomic():
        event = (
            DispatchEvent.objects.select_for_update()
            .select_related("resource__market", "resource__program")
            .get(pk=event_id)
        )
        if event.state == S.SCHEDULED and event.notify_at <= now < event.end:
            transition(event, action="notify", by="dispatch", at=now)
            if event.allocation_round == 0:
                allocate(event=event, reason="first allocation", now=now, notify="notified")
        if event.state in (S.SCHEDULED, S.NOTIFIED) and event.start <= now < event.end:
            if event.allocation_round == 0:
                allocate(event=event, reason="first allocation", now=now, notify="notified")
            transition(event, action="start", by="dispatch", at=now)
        if event.state in (S.SCHEDULED, S.NOTIFIED) and event.end <= now:
            transition(event, action="cancel", by="dispatch", at=now, reason="Its window passed before it could start.")
        if event.state == S.ACTIVE and event.end <= now:
            _complete(event, now=now)
    return pending_chunks(event=event)


def _complete(event: DispatchEvent, *, now: datetime) -> None:
    transition(event, action="complete", by="dispatch", at=now)
    with connection.cursor() as cursor:
        cursor.execute(
            # A staggered restore's command runs on past the end (dispatch.rebound): it lapses at its own expiry.
            "UPDATE dispatch_devicecommand SET status = 'expired' WHERE event_id = %s AND status IN ('pending', 'accepted') "
            "AND expires_at <= %s RETURNING device_id",
            [event.pk, now],
        )
        poll_cache.changed(devices=[row[0] for row in cursor.fetchall()])
        cursor.execute(_BURDEN, {"event": event.pk, "season": selectors.season_of(event)})
        cursor.execute(_PERFORMANCE, {"event": event.pk})


# Hours a device was asked for kW, added to its season; one statement for the whole event.
_BURDEN = """
WITH ints AS (
    SELECT array_agg(extract(epoch FROM "end" - start) / 3600.0 ORDER BY start) AS hours
    FROM dispatch_eventinterval WHERE event_id = %(event)s
)
INSERT INTO dispatch_deviceseasonburden AS b (device_id, season, events, hours, opt_outs)
SELECT a.device_id, %(season)s, 1,
       (SELECT coalesce(sum(ints.hours[n]), 0) FROM generate_subscripts(a.kw, 1) n WHERE a.kw[n] > 0), 0
FROM dispatch_allocation a, ints
WHERE a.event_id = %(event)s AND EXISTS (SELECT 1 FROM unnest(a.kw) k WHERE k > 0)
ON CONFLICT (device_id, season) DO UPDATE SET events = b.events + 1, hours = b.hours + EXCLUDED.hours
"""

# What each reporting device delivered against what it was allocated, folded into its
# running delivery ratio (the capability model derates by it).
_PERFORMANCE = """
WITH ints AS (
    SELECT start, row_number() OVER (ORDER BY start) AS n, extract(epoch FROM "end" - start) / 3600.0 AS hours
    FROM dispatch_eventinterval WHERE event_id = %(event)s
), this AS (
    SELECT a.device_id, sum(least(r.delivered_kw, a.kw[i.n] * 2) * i.hours) / nullif(sum(a.kw[i.n] * i.hours), 0) AS ratio
    FROM dispatch_allocation a
    JOIN dispatch_deliveryreport r ON r.event_id = a.event_id AND r.device_id = a.device_id
    JOIN ints i ON i.start = r.interval_start
    WHERE a.event_id = %(event)s AND a.kw[i.n] > 0
    GROUP BY a.device_id
)
INSERT INTO aggregator_deviceperformance AS p (device_id, events, delivered_ratio, updated_at)
SELECT device_id, 1, round(greatest(ratio, 0)::numeric, 4), now() FROM this WHERE ratio IS NOT NULL
ON CONFLICT (device_id) DO UPDATE SET
    delivered_ratio = round((p.delivered_ratio * p.events + EXCLUDED.delivered_ratio) / (p.events + 1), 4),
    events = p.events + 1, updated_at = now()
"""


def expire_lapsed_commands(*, now: datetime) -> int:
    """Commands of completed events still live past their expiry (a staggered restore's) are marked expired."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE dispatch_devicecommand c SET status = 'expired' FROM dispatch_dispatchevent e "
            "WHERE e.id = c.event_id AND e.state = 'completed' AND c.status IN ('pending', 'accepted') "
            "AND c.expires_at <= %s RETURNING c.device_id",
            [now],
        )
        devices = [row[0] for row in cursor.fetchall()]
    if devices:
        poll_cache.changed(devices=devices)
    return len(devices)
