"""Allocation rounds: a target allocated over the resource's devices, stored, and fanned out as commands in chunks."""

import time
from datetime import UTC, datetime

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from aggregator.aggregation import capability
from aggregator.core.state_machine import Actor
from dispatch import allocation, channels, notifications, poll_cache, rebound, selectors
from dispatch.models import (
    Allocation,
    AllocationRound,
    DeviceCommand,
    DispatchEvent,
    EventInterval,
)
from dispatch.services.states import S, transition

FAN_OUT_CHUNK = settings.DISPATCH_FAN_OUT_CHUNK  # 5,000 unless DISPATCH_FAN_OUT_CHUNK says otherwise


def intervals_of(event: DispatchEvent) -> list[EventInterval]:
    return list(event.intervals.order_by("start"))


def current_index(intervals: list[EventInterval], now: datetime) -> int:
    """The interval `now` falls in (0 before the event, len after it)."""
    for i, interval in enumerate(intervals):
        if now < interval.end:
            return i
    return len(intervals)


def allocate(
    *, event: DispatchEvent, reason: str, now: datetime, notify: str = "", resend_live: bool = False
) -> AllocationRound:
    """A fresh allocation of the event's targets from the current interval on (the event is locked)."""
    t0 = time.perf_counter()
    intervals = intervals_of(event)
    first = current_index(intervals, now)
    c, fleet, customers = selectors.candidates(
        event=event, instants=[i.start for i in intervals], now=now, window=(max(now, event.start), event.end)
    )
    targets = np.array([float(i.target_kw) for i in intervals])
    previous = current_kw(event, c.device_id, len(intervals))
    kw, ranks, why = allocation.allocate(c, targets=targets, over_commit_pct=float(event.over_commit_pct))
    kw[:, :first] = previous[:, :first]  # the past stays as it was
    limits = c.limits
    for _ in range(3):  # uneven devices can stagger above the limit the even split allows: hold back a little more
        if limits is None or limits.rebound_kwh is None or event.resource.program.rebound_limit_kw is None:
            break
        peak = _rebound(event=event, fleet=fleet, kw=kw, intervals=intervals).kw.max(initial=0.0)
        limit_kw = float(event.resource.program.rebound_limit_kw)
        if peak <= limit_kw + 1e-9:
            break
        limits.rebound_kwh = float((kw[limits.rebound] @ limits.interval_hours).sum()) * limit_kw / peak * 0.999
        kw, ranks, why = allocation.allocate(c, targets=targets, over_commit_pct=float(event.over_commit_pct))
        kw[:, :first] = previous[:, :first]
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
        first=first,
        reason=reason,
        notify=notify,
        resend_live=resend_live,
        targets=targets * (1 + float(event.over_commit_pct) / 100),
        t0=t0,
    )


def current_kw(event: DispatchEvent, device_ids: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(device_ids), k))
    if event.allocation_round == 0 or not len(device_ids):
        return out
    index = {int(d): i for i, d in enumerate(device_ids)}
    for device_id, kw in Allocation.objects.filter(event=event).values_list("device_id", "kw"):
        if device_id in index and kw:
            out[index[device_id], : len(kw)] = kw[:k]
    return out


def write_round(
    *,
    event: DispatchEvent,
    c: allocation.Candidates,
    fleet: capability.Fleet,
    customers: np.ndarray,
    kw: np.ndarray,
    ranks: np.ndarray,
    why: np.ndarray,
    previous: np.ndarray,
    intervals: list[EventInterval],
    first: int,
    reason: str,
    targets: np.ndarray,
    t0: float,
    notify: str = "",
    resend_live: bool = False,
) -> AllocationRound:
    number = event.allocation_round + 1
    kw = np.round(kw, 3)
    n, k = kw.shape if kw.size else (len(c.device_id), len(intervals))
    changed = np.abs(kw - previous).max(axis=1) > 1e-9 if kw.size else np.zeros(n, bool)
    if number == 1:
        changed[:] = True
    wants_kw = kw[:, first:].max(axis=1) > 0 if kw.size else np.zeros(n, bool)
    live = _devices_with_live_commands(event) if number > 1 else set()
    has_live = np.isin(c.device_id, np.fromiter(live, dtype=np.int64, count=len(live))) if live else np.zeros(n, bool)
    if resend_live:  # the intervals moved: every live schedule is out of date
        changed |= has_live
    # A round written before the last one's fan-out finished takes over its unsent commands.
    unsent = _unsent_devices(event) if number > 1 and event.commands_issued_round < event.allocation_round else set()
    if unsent:
        changed |= np.isin(c.device_id, np.fromiter(unsent, dtype=np.int64, count=len(unsent)))
        if not notify:
            notify = (
                AllocationRound.objects.filter(event=event, number=event.allocation_round)
                .values_list("notify", flat=True)
                .first()
                or ""
            )
    staggered = _rebound(event=event, fleet=fleet, kw=kw, intervals=intervals)
    restore = staggered.offset_seconds
    if number > 1:  # a device whose restore moved needs its command again
        changed |= restore != _current_restore(event, c.device_id)
    needs = changed & (wants_kw | has_live)
    rows = np.flatnonzero(changed)
    _store_allocations(
        event=event,
        number=number,
        columns={
            "devices": c.device_id[rows].tolist(),
            "customers": customers[rows].tolist(),
            "kw": kw[rows].ravel().tolist(),
            "available": np.round(c.available[rows], 3).ravel().tolist(),
            "reasons": [str(r) for r in why[rows]],
            "ranks": ranks[rows].tolist(),
            "events": c.customer_events[rows].tolist(),
            "hours": np.round(c.customer_hours[rows], 2).tolist(),
            "costs": [
                "NULL" if c.customer_cost is None or np.isnan(x) else round(float(x), 4)
                for x in (c.customer_cost[rows] if c.customer_cost is not None else [np.nan] * len(rows))
            ],
            "needs": needs[rows].tolist(),
            "restore": restore[rows].tolist(),
            "k": k,
        },
    )
    event.allocation_round = number
    event.save(update_fields=["allocation_round", "updated_at"])
    return AllocationRound.objects.create(
        event=event,
        number=number,
        reason=reason,
        first_interval=first,
        target_kw=[round(float(t), 3) for t in targets],
        allocated_kw=[round(float(x), 3) for x in kw.sum(axis=0)],
        devices=int((kw.max(axis=1) > 0).sum()) if kw.size else 0,
        commands_needed=int(needs.sum()),
        notify=notify,
        chunk_bounds=_chunk_bounds(c.device_id[needs]),
        seconds=round(time.perf_counter() - t0, 4),
        rebound_kw=[round(float(x), 3) for x in staggered.kw],
        rebound_within_limit=staggered.within_limit,
    )


class _Staggered:
    def __init__(self, offset_seconds: np.ndarray, kw: np.ndarray, within_limit: bool):
        self.offset_seconds, self.kw, self.within_limit = offset_seconds, kw, within_limit


def _rebound(*, event: DispatchEvent, fleet: capability.Fleet, kw: np.ndarray, intervals: list) -> _Staggered:
    """The resource's expected rebound after the event and each device's restore offset (dispatch.rebound), from
    what its thermostats and water heaters shed."""
    n = len(fleet)
    offsets = np.zeros(n, dtype=np.int64)
    program = event.resource.program
    sheds = np.isin(fleet.type_code, selectors.REBOUND_TYPES) & (kw.max(axis=1, initial=0) > 0 if kw.size else False)
    if not sheds.any() or not intervals or program.rebound_pct <= 0:
        return _Staggered(offsets, np.zeros(0), True)
    hours = np.array([(i.end - i.start).total_seconds() / 3600 for i in intervals])
    result = rebound.expected(
        (kw[sheds] * hours[None, :]).sum(axis=1),
        share=float(program.rebound_pct) / 100,
        minutes=program.rebound_minutes,
        limit_kw=None if program.rebound_limit_kw is None else float(program.rebound_limit_kw),
    )
    offsets[sheds] = result.offset_minutes * 60
    return _Staggered(
        offsets, result.kw[: int(np.flatnonzero(result.kw > 1e-6).max(initial=-1)) + 1], result.within_limit
    )


def _current_restore(event: DispatchEvent, device_ids: np.ndarray) -> np.ndarray:
    out = np.zeros(len(device_ids), dtype=np.int64)
    index = {int(d): i for i, d in enumerate(device_ids)}
    for device_id, seconds in Allocation.objects.filter(event=event, restore_offset_seconds__gt=0).values_list(
        "device_id", "restore_offset_seconds"
    ):
        if device_id in index:
            out[index[device_id]] = seconds
    return out


def _chunk_bounds(device_ids: np.ndarray) -> list[int]:
    """[first, last, first, last, ...] device ids of FAN_OUT_CHUNK-sized chunks (ids ascending)."""
    ids = np.sort(device_ids)
    return [
        int(x) for i in range(0, len(ids), FAN_OUT_CHUNK) for x in (ids[i], ids[min(i + FAN_OUT_CHUNK, len(ids)) - 1])
    ]


def _unsent_devices(event: DispatchEvent) -> set[int]:
    """Devices the latest round meant to command that have no command from it yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT a.device_id FROM dispatch_allocation a
               WHERE a.event_id = %s AND a.round = %s AND a.needs_command
                 AND NOT EXISTS (SELECT 1 FROM dispatch_devicecommand c
                                 WHERE c.event_id = a.event_id AND c.device_id = a.device_id AND c.round = a.round)""",
            [event.pk, event.allocation_round],
        )
        return {row[0] for row in cursor.fetchall()}


def _devices_with_live_commands(event: DispatchEvent) -> set[int]:
    return set(
        DeviceCommand.objects.filter(
            event=event, status__in=[DeviceCommand.Status.PENDING, DeviceCommand.Status.ACCEPTED]
        ).values_list("device_id", flat=True)
    )


# A round's rows arrive as one array per column (kW flattened, k per device): one
# statement, no per-row Python. A first round inserts; a later one updates in place.
_ALLOCATIONS = """
INSERT INTO dispatch_allocation AS a (event_id, round, device_id, customer_id, kw, available_kw, reason, rank,
                                      customer_events, customer_hours, customer_cost_per_kwh, needs_command,
                                      restore_offset_seconds)
SELECT %(event)s, %(round)s, t.device, t.customer, p.kw[(t.i - 1) * %(k)s + 1 : t.i * %(k)s],
       p.available[(t.i - 1) * %(k)s + 1 : t.i * %(k)s], t.reason, t.rank, t.events, t.hours, t.cost, t.needs,
       t.restore
FROM (SELECT %(kw)s::float8[] AS kw, %(available)s::float8[] AS available) p, unnest(%(devices)s::bigint[], %(customers)s::bigint[], %(reasons)s::varchar[], %(ranks)s::integer[],
            %(events)s::integer[], %(hours)s::float8[], %(costs)s::float8[], %(needs)s::boolean[], %(restore)s::integer[])
     WITH ORDINALITY AS t(device, customer, reason, rank, events, hours, cost, needs, restore, i)
"""

_UPDATE_ON_CONFLICT = """
ON CONFLICT (event_id, device_id) DO UPDATE SET round = EXCLUDED.round, kw = EXCLUDED.kw, available_kw = EXCLUDED.available_kw,
    reason = EXCLUDED.reason, rank = EXCLUDED.rank, customer_events = EXCLUDED.customer_events,
    customer_hours = EXCLUDED.customer_hours, customer_cost_per_kwh = EXCLUDED.customer_cost_per_kwh,
    needs_command = EXCLUDED.needs_command, restore_offset_seconds = EXCLUDED.restore_offset_seconds
"""


def _store_allocations(*, event: DispatchEvent, number: int, columns: dict) -> None:
    if not columns["devices"]:
        return
    # Each column as one array literal: PostgreSQL parses hundreds of thousands of elements
    # in C, where adapting them one by one as Python values takes seconds.
    params = {
        name: ("{" + ",".join(map(str, values)) + "}" if isinstance(values, list) else values)
        for name, values in columns.items()
    }
    with connection.cursor() as cursor:
        cursor.execute(
            _ALLOCATIONS + ("" if number == 1 else _UPDATE_ON_CONFLICT), {"event": event.pk, "round": number, **params}
        )


def pending_chunks(*, event: DispatchEvent) -> list[tuple[int, int, int, int]]:
    """(event, round, first device id, last device id) ranges whose commands are not all issued yet."""
    if event.commands_issued_round >= event.allocation_round:
        return []
    number = event.allocation_round
    with connection.cursor() as cursor:
        # The cheap test first (a count on the command index); the list only when short.
        cursor.execute(
            "SELECT count(*) FROM dispatch_devicecommand WHERE event_id = %s AND round = %s", [event.pk, number]
        )
        issued = cursor.fetchone()[0]
        rnd = (
            AllocationRound.objects.filter(event=event, number=number)
            .values_list("commands_needed", "chunk_bounds")
            .first()
        )
        needed, bounds = rnd if rnd else (None, [])
        if needed is not None and issued >= needed:
            _round_issued(event, number)
            return []
        if issued == 0 and bounds:  # a fresh round: the chunks its writer planned, no listing
            return [(event.pk, number, bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)]
        cursor.execute(
            """
            SELECT a.device_id FROM dispatch_allocation a
            WHERE a.event_id = %s AND a.round = %s AND a.needs_command
              AND (%s OR NOT EXISTS (SELECT 1 FROM dispatch_devicecommand c
                                     WHERE c.event_id = a.event_id AND c.device_id = a.device_id AND c.round = a.round))
            ORDER BY a.device_id
            """,
            [event.pk, number, issued == 0],
        )
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        _round_issued(event, number)
        return []
    return [
        (event.pk, number, ids[i], ids[min(i + FAN_OUT_CHUNK, len(ids)) - 1]) for i in range(0, len(ids), FAN_OUT_CHUNK)
    ]


def _round_issued(event: DispatchEvent, number: int) -> None:
    """Mark the round's commands all issued; whoever marks it queues the customers' messages.

    Customers hear of an event once their devices have their commands, and the messages
    never hold up a fan-out worker while commands are still going out.
    """
    if DispatchEvent.objects.filter(pk=event.pk, commands_issued_round__lt=number).update(commands_issued_round=number):
        kind = AllocationRound.objects.filter(event=event, number=number).values_list("notify", flat=True).first()
        if kind:
            transaction.on_commit(
                lambda: notifications.notify_customers(
                    event_id=event.pk, kind=kind if kind != "updated" else f"updated:{number}"
                )
            )


# One statement per chunk: supersede the devices' older live commands, then insert the new
# ones, unique per (event, device, round) so a re-run inserts nothing.
_SUPERSEDE = """
UPDATE dispatch_devicecommand c SET status = 'superseded'
FROM dispatch_allocation a
WHERE a.event_id = %(event)s AND a.round = %(round)s AND a.needs_command AND a.device_id BETWEEN %(first)s AND %(last)s
  AND c.event_id = a.event_id AND c.device_id = a.device_id AND c.round < a.round AND c.status IN ('pending', 'accepted')
RETURNING c.device_id
"""

_ISSUE = """
INSERT INTO dispatch_devicecommand (id, event_id, device_id, sequence, round, kind, schedule, ramp_seconds, not_before,
                                    expires_at, status, created_at, reason)
SELECT gen_random_uuid(), a.event_id, a.device_id, coalesce(prev.sequence, 0) + 1, a.round,
       CASE WHEN %(cancel)s OR opted.out OR NOT coalesce(0 < ANY (a.kw[%(first)s + 1:]), false) THEN 'cancel'
            WHEN prev.sequence IS NULL THEN 'dispatch' ELSE 'update' END,
       CASE WHEN %(cancel)s OR opted.out THEN '[]'::jsonb ELSE {schedule} END,
       %(ramp)s, %(not_before)s, %(expires)s + make_interval(secs => a.restore_offset_seconds), 'pending', %(now)s, ''
FROM dispatch_allocation a
LEFT JOIN LATERAL (SELECT max(sequence) AS sequence FROM dispatch_devicecommand c
                   WHERE %(round)s > 1 AND c.event_id = a.event_id AND c.device_id = a.device_id) prev ON true
-- The customer overrode after the round was written: the device is told to stand down.
CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM dispatch_deviceoptout o WHERE o.device_id = a.device_id
                                   AND o.start < %(expires)s AND o."end" > %(not_before)s) AS out) opted
WHERE a.event_id = %(event)s AND a.round = %(round)s AND a.needs_command AND a.device_id BETWEEN %(first_device)s AND %(last_device)s
ON CONFLICT DO NOTHING
RETURNING device_id
"""


def _schedule_sql(intervals: list[EventInterval], first: int) -> tuple[str, dict]:
    """The schedule of a command from interval `first` on, as one jsonb_build_array over the allocation's kW.

    The interval times are the same for every device, so they are bound once as ISO text
    (the same text PostgreSQL writes for a timestamptz in JSON) instead of being unnested,
    formatted and aggregated again for each of a chunk's thousands of rows.
    """
    items, params = [], {}
    last = len(intervals)
    for n, interval in enumerate(intervals[first:], start=first + 1):
        params[f"s{n}"], params[f"e{n}"] = (
            interval.start.astimezone(UTC).isoformat(),
            interval.end.astimezone(UTC).isoformat(),
        )
        end = f"%(e{n})s::text"
        if n == last:  # a staggered restore holds the last interval's kW that much longer
            end = (
                f"CASE WHEN a.restore_offset_seconds = 0 THEN {end} ELSE to_char((%(e{n})s::timestamptz + "
                "make_interval(secs => a.restore_offset_seconds)) AT TIME ZONE 'UTC', "
                '\'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\') END'
            )
        items.append(f"jsonb_build_object('start', %(s{n})s::text, 'end', {end}, 'kw', a.kw[{n}])")
    return f"jsonb_build_array({', '.join(items)})", params


def issue_commands(
    *, event_id: int, round_number: int, first_device: int, last_device: int, now: datetime | None = None
) -> int:
    """Commands of one round for the devices in [first_device, last_device]; returns how many were new."""
    now = now or timezone.now()
    with transaction.atomic():
        # A share lock: chunks run side by side, but not beside a round being written
        # (cancel, modify, rebalance hold the event FOR UPDATE), so a round never misses
        # a command a chunk was still committing.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM dispatch_dispatchevent WHERE id = %s FOR SHARE", [event_id])
        event = DispatchEvent.objects.get(pk=event_id)
        if event.allocation_round != round_number:
            return 0  # a newer round superseded this one; its own chunks will run
        rnd = AllocationRound.objects.get(event=event, number=round_number)
        params = {
            "event": event_id,
            "round": round_number,
            "first_device": first_device,
            "last_device": last_device,
            "first": rnd.first_interval,
            "cancel": event.state == S.CANCELLED,
            "ramp": event.ramp_seconds,
            "not_before": max(event.start, now) if rnd.first_interval else event.start,
            "expires": event.end,
            "now": now,
        }
        with connection.cursor() as cursor:
            if round_number > 1:  # a first round has nothing to supersede
                cursor.execute(_SUPERSEDE, {**params, "first": first_device, "last": last_device})
            schedule, times = _schedule_sql(intervals_of(event), rnd.first_interval)
            cursor.execute(_ISSUE.format(schedule=schedule), {**params, **times})
            devices = [row[0] for row in cursor.fetchall()]
            issued = len(devices)
        # A superseded command's device always gets its new one here, unless this chunk
        # already ran; then nothing changed at all.
        poll_cache.changed(devices=devices)
        channels.deliver_chunk(
            event_id=event_id,
            round_number=round_number,
            first_device=first_device,
            last_device=last_device,
            devices=devices,
        )
        if issued:
            # The round's row lock orders the chunks' last statement: a chunk's total counts
            # every chunk that committed before it, so the one that reaches what the round
            # needs is the last to commit.
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE dispatch_allocationround SET commands_issued = commands_issued + %s "
                    "WHERE event_id = %s AND number = %s RETURNING commands_issued",
                    [issued, event_id, round_number],
                )
                total = cursor.fetchone()[0]
        else:  # a re-run: nothing new, but the round may still want marking
            total = AllocationRound.objects.filter(pk=rnd.pk).values_list("commands_issued", flat=True).get()
    # After the commit: marking the event waits for no chunk's share lock on it.
    if total >= rnd.commands_needed:
        with transaction.atomic():
            _round_issued(event, round_number)
    return issued


def cancel_round(event: DispatchEvent, *, by: Actor, reason: str, now: datetime) -> None:
    transition(event, action="cancel", by=by, at=now, reason=reason)
    if event.allocation_round:
        intervals = intervals_of(event)
        first = current_index(intervals, now)
        rows = Allocation.objects.filter(event=event)
        live = _devices_with_live_commands(event)
        number = event.allocation_round + 1
        with connection.cursor() as cursor:
            # Zero every device's kW from now on; those with a live command get a cancel command.
            cursor.execute(
                """
                UPDATE dispatch_allocation SET round = %s,
                    kw = (SELECT array_agg(CASE WHEN n > %s THEN 0 ELSE kw[n] END ORDER BY n) FROM generate_subscripts(kw, 1) n),
                    needs_command = device_id = ANY(%s)
                WHERE event_id = %s
                """,
                [number, first, list(live), event.pk],
            )
        event.allocation_round = number
        event.save(update_fields=["allocation_round", "updated_at"])
        AllocationRound.objects.create(
            event=event,
            number=number,
            reason=f"cancelled: {reason}",
            first_interval=first,
            target_kw=[0.0] * len(intervals),
            allocated_kw=[0.0] * len(intervals),
            devices=0,
            commands_needed=rows.filter(needs_command=True).count(),
            notify="cancelled",
        )
