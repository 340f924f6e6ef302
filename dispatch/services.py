"""Dispatch workflows: events, their lifecycle, allocation rounds, command fan-out, device replies.

Keyword-only functions, one transaction each. Every step that a task runs is
idempotent: it locks the event, looks at its state and the clock, and does only what
is still due, so a retried, duplicated or late task changes nothing twice. Commands
are unique per (event, device, round), so a fan-out chunk that runs again inserts
nothing.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import numpy as np
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from aggregator.aggregation.models import ResourceState, VirtualResource
from aggregator.core import state_machine
from aggregator.core.errors import DomainError, Problem
from aggregator.core.state_machine import Transition
from dispatch import allocation, notifications, poll_cache, selectors
from dispatch.models import (
    OPEN_STATES,
    Allocation,
    AllocationRound,
    DeviceCommand,
    DeviceOptOut,
    DispatchEvent,
    EventInterval,
    EventState,
    EventTransition,
    PushEndpoint,
)
from dispatch.openadr.models import Resource as VenResource
from enrollment.models import Device

S = EventState
TRANSITIONS = state_machine.table(
    Transition("notify", frozenset({S.SCHEDULED}), S.NOTIFIED, system_only=True),
    Transition("start", frozenset({S.SCHEDULED, S.NOTIFIED}), S.ACTIVE, system_only=True),
    Transition("complete", frozenset({S.ACTIVE}), S.COMPLETED, system_only=True),
    Transition("cancel", frozenset(OPEN_STATES), S.CANCELLED, reason_required=True),
    Transition("modify", frozenset(OPEN_STATES), S.SCHEDULED, reason_required=True),  # target: unchanged state
)
MAX_EVENT = timedelta(hours=24)
MAX_INTERVALS = 288
REAL_TIME_GRACE = timedelta(minutes=2)  # "start now" from a client whose clock is a little behind
FAN_OUT_CHUNK = 5_000
SHORTFALL_TOLERANCE = 0.02  # of the target: closer than this is on target
DISPATCHABLE = {
    DispatchEvent.Source.OPERATOR_TEST: frozenset(
        {ResourceState.SUBMITTED, ResourceState.REGISTERED, ResourceState.ACTIVE}
    ),
    DispatchEvent.Source.MARKET_INSTRUCTION: frozenset({ResourceState.REGISTERED, ResourceState.ACTIVE}),
    DispatchEvent.Source.UTILITY_CALL: frozenset({ResourceState.REGISTERED, ResourceState.ACTIVE}),
}


class EventRefused(DomainError):
    status = 400


@dataclass(frozen=True)
class IntervalSpec:
    start: datetime
    end: datetime
    target_kw: Decimal


# --- creating events --------------------------------------------------------------


def hourly_intervals(*, start: datetime, end: datetime, target_kw: Decimal) -> list[IntervalSpec]:
    """A flat target as hourly intervals from the start (capability changes by the hour).

    In UTC: an hour added to a local time on a DST day is not an hour.
    """
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    out, at = [], start
    while at < end:
        nxt = min(at + timedelta(hours=1), end)
        out.append(IntervalSpec(at, nxt, target_kw))
        at = nxt
    return out


def _interval_problems(*, start: datetime, end: datetime, intervals: list[IntervalSpec]) -> list[Problem]:
    problems = []
    if not intervals:
        return [Problem("required", "At least one interval with a target is required.", "intervals")]
    if len(intervals) > MAX_INTERVALS:
        return [Problem("too_large", f"At most {MAX_INTERVALS} intervals.", "intervals")]
    expected = start
    for i, spec in enumerate(intervals):
        if spec.start != expected:
            problems.append(
                Problem(
                    "not_contiguous",
                    f"Interval {i} must start at {expected.isoformat()} "
                    "(intervals cover the event without gaps or overlaps, in order).",
                    f"intervals[{i}].start",
                )
            )
            break
        if not spec.end > spec.start:
            problems.append(Problem("out_of_range", "An interval ends after it starts.", f"intervals[{i}].end"))
            break
        if spec.target_kw < 0:
            problems.append(Problem("out_of_range", "target_kw cannot be negative.", f"intervals[{i}].target_kw"))
        expected = spec.end
    else:
        if expected != end:
            problems.append(
                Problem(
                    "not_contiguous",
                    f"The last interval must end at the event's end, {end.isoformat()}.",
                    f"intervals[{len(intervals) - 1}].end",
                )
            )
    return problems


def _window_problems(*, start, end, notify_at, now) -> list[Problem]:
    problems = []
    for name, value in (("start", start), ("end", end), ("notify_at", notify_at)):
        if value.tzinfo is None:
            problems.append(Problem("naive_timestamp", f"{name} needs its UTC offset.", name))
    if problems:
        return problems
    if start < now - REAL_TIME_GRACE:
        problems.append(Problem("in_the_past", "start is in the past (use now for a real-time event).", "start"))
    if not end > start:
        problems.append(Problem("out_of_range", "end must be after start.", "end"))
    elif end - start > MAX_EVENT:
        problems.append(
            Problem("out_of_range", f"An event lasts at most {MAX_EVENT.total_seconds() / 3600:g} hours.", "end")
        )
    if notify_at > start:
        problems.append(Problem("out_of_range", "notify_at cannot be after start.", "notify_at"))
    return problems


def _capability_check(*, event: DispatchEvent, specs: list[IntervalSpec], now: datetime) -> list[Problem]:
    """Intervals asking more than the resource can give then; refused or warned per the program's rule."""
    instants = [s.start for s in specs]
    c, _, _ = selectors.candidates(event=event, instants=instants, now=now, window=(event.start, event.end))
    available = np.where(c.usable[:, None], c.available, 0.0).sum(axis=0) if len(c.device_id) else np.zeros(len(specs))
    return [
        Problem(
            "above_capability",
            f"Interval {i} asks {float(s.target_kw):g} kW; the resource has {available[i]:.1f} kW available then.",
            f"intervals[{i}].target_kw",
        )
        for i, s in enumerate(specs)
        if float(s.target_kw) > available[i] + 1e-6
    ]


@transaction.atomic
def create_event(
    *,
    resource: VirtualResource,
    source: str,
    start: datetime,
    end: datetime,
    by,
    intervals: list[IntervalSpec] | None = None,
    target_kw: Decimal | None = None,
    notify_at: datetime | None = None,
    target_kind: str = DispatchEvent.TargetKind.REDUCTION,
    ramp_seconds: int = 0,
    over_commit_pct: Decimal | None = None,
    external_ref: str = "",
    replaces: DispatchEvent | None = None,
    now: datetime | None = None,
) -> DispatchEvent:
    """Validate and schedule an event; its notify/start/end tasks are queued when this commits."""
    now = now or timezone.now()
    resource = VirtualResource.objects.select_for_update().select_related("market", "program").get(pk=resource.pk)
    notify_at = notify_at or (min(now, start) if start.tzinfo else now)
    problems = _window_problems(start=start, end=end, notify_at=notify_at, now=now)
    if problems:
        raise EventRefused(problems)
    start, end, notify_at = start.astimezone(UTC), end.astimezone(UTC), notify_at.astimezone(UTC)
    if source not in DISPATCHABLE:
        problems.append(Problem("invalid_choice", f"source is one of {', '.join(DISPATCHABLE)}.", "source"))
    elif resource.state not in DISPATCHABLE[source]:
        problems.append(
            Problem("not_dispatchable", f"A {resource.state} resource cannot take a {source} event.", "resource")
        )
    if problems:
        raise EventRefused(problems)
    if intervals is None:
        if target_kw is None:
            raise EventRefused(Problem("required", "Give target_kw or intervals.", "target_kw"))
        try:
            target_kw = Decimal(target_kw)
        except (InvalidOperation, TypeError, ValueError):
            raise EventRefused(Problem("invalid", "target_kw must be a number.", "target_kw")) from None
        intervals = hourly_intervals(start=start, end=end, target_kw=target_kw)
    problems = [
        Problem("naive_timestamp", "Interval times need their UTC offset.", f"intervals[{i}]")
        for i, spec in enumerate(intervals)
        if spec.start.tzinfo is None or spec.end.tzinfo is None
    ]
    if problems:
        raise EventRefused(problems)
    intervals = [
        IntervalSpec(spec.start.astimezone(UTC), spec.end.astimezone(UTC), spec.target_kw) for spec in intervals
    ]
    problems = _interval_problems(start=start, end=end, intervals=intervals)
    if problems:
        raise EventRefused(problems)
    if replaces is not None:
        replaces = DispatchEvent.objects.select_for_update().get(pk=replaces.pk)
        if replaces.resource_id != resource.pk or replaces.state not in OPEN_STATES:
            raise EventRefused(
                Problem("invalid", "Only an open event of the same resource can be replaced.", "replaces")
            )
    overlapping = DispatchEvent.objects.filter(resource=resource, state__in=OPEN_STATES, start__lt=end, end__gt=start)
    if replaces is not None:
        overlapping = overlapping.exclude(pk=replaces.pk)
    clash = overlapping.first()
    if clash is not None:
        raise DomainError(
            Problem(
                "overlapping_event",
                f"Event {clash.pk} already asks this resource for "
                f"{clash.start.isoformat()} to {clash.end.isoformat()}; replace it or pick another window.",
                "start",
            )
        )
    event = DispatchEvent(
        resource=resource,
        source=source,
        external_ref=external_ref,
        target_kind=target_kind,
        notify_at=notify_at,
        start=start,
        end=end,
        ramp_seconds=ramp_seconds,
        over_commit_pct=resource.program.over_commit_pct if over_commit_pct is None else over_commit_pct,
        replaces=replaces,
        created_at=now,
    )
    event.created_by, event.created_by_label = state_machine.actor(by)
    shortfalls = _capability_check(event=event, specs=intervals, now=now)
    if shortfalls and resource.program.above_capability == resource.program.CapabilityRule.REFUSE:
        raise EventRefused(shortfalls, status=422)
    event.warnings = [p.as_dict() for p in shortfalls]
    if replaces is not None:
        _cancel(replaces, by=by, reason=f"Replaced by a new event from {start.isoformat()}.", now=now)
        _fan_out_after_commit(replaces)
    try:
        with transaction.atomic():
            event.save()
    except IntegrityError as exc:  # a concurrent request took the window or the instruction id
        raise DomainError(
            Problem("conflict", f"Another event was created for this window or reference meanwhile ({exc}).", "start")
        ) from exc
    EventInterval.objects.bulk_create(
        EventInterval(event=event, start=s.start, end=s.end, target_kw=s.target_kw) for s in intervals
    )
    _record(
        event,
        action="create",
        from_state="",
        to_state=event.state,
        by=by,
        at=now,
        reason=f"{len(intervals)} interval(s); "
        + ("; ".join(w["message"] for w in event.warnings) if event.warnings else "within capability"),
    )
    transaction.on_commit(lambda: _schedule_tasks(event))
    return event


def _same_instruction(event: DispatchEvent, *, start, end, intervals, target_kw) -> bool:
    stored = [(i.start, i.end, i.target_kw) for i in event.intervals.order_by("start")]
    if (event.start, event.end) != (start, end):
        return False
    if intervals is not None:
        return [(s.start, s.end, s.target_kw) for s in intervals] == stored
    return all(t == target_kw for _, _, t in stored)


def receive_instruction(
    *,
    market,
    source: str,
    by,
    instruction_id: str,
    resource_ref: str,
    start: datetime,
    end: datetime,
    intervals: list[IntervalSpec] | None = None,
    target_kw: Decimal | None = None,
    notify_at: datetime | None = None,
    target_kind: str = DispatchEvent.TargetKind.REDUCTION,
    ramp_seconds: int = 0,
    replaces_ref: str = "",
) -> tuple[DispatchEvent, bool]:
    """A market's or utility's instruction: (its event, whether it is new).

    The instruction id is the sender's: a resend returns the event it made; the same id
    with other content is refused, never applied twice.
    """
    content = {"start": start, "end": end, "intervals": intervals, "target_kw": target_kw}
    existing = DispatchEvent.objects.filter(source=source, external_ref=instruction_id, resource__market=market).first()
    if existing is not None:
        if existing.resource.market_resource_id != resource_ref or not _same_instruction(existing, **content):
            raise DomainError(
                Problem(
                    "instruction_id_reused",
                    "This instruction id was already used for a different instruction.",
                    "instruction_id",
                )
            )
        return existing, False
    resource = VirtualResource.objects.filter(market=market, market_resource_id=resource_ref).first()
    if resource is None:
        raise EventRefused(
            Problem("does_not_exist", f"No resource registered in {market.code} as that id.", "resource")
        )
    replaces = None
    if replaces_ref:
        replaces = DispatchEvent.objects.filter(source=source, external_ref=replaces_ref, resource=resource).first()
        if replaces is None:
            raise EventRefused(
                Problem("does_not_exist", "No such instruction for this resource.", "replaces_instruction_id")
            )
    try:
        return create_event(
            resource=resource,
            source=source,
            start=start,
            end=end,
            by=by,
            intervals=intervals,
            target_kw=target_kw,
            notify_at=notify_at,
            target_kind=target_kind,
            ramp_seconds=ramp_seconds,
            external_ref=instruction_id,
            replaces=replaces,
        ), True
    except DomainError:
        # The same instruction sent twice at once: the second finds the first's event.
        twin = DispatchEvent.objects.filter(source=source, external_ref=instruction_id, resource=resource).first()
        if twin is not None and _same_instruction(twin, **content):
            return twin, False
        raise


def _schedule_tasks(event: DispatchEvent) -> None:
    """One task at each moment; the beat sweep catches any a lost worker or broker dropped."""
    from dispatch import tasks

    now = timezone.now()
    for at in sorted({event.notify_at, event.start, event.end}):
        if at <= now:
            tasks.advance_event.delay(event.pk)
        else:
            tasks.advance_event.apply_async((event.pk,), eta=at)


def _record(event, *, action, from_state, to_state, by, at, reason="") -> None:
    EventTransition.entry(
        by=by, event=event, action=action, from_state=from_state, to_state=to_state, at=at, reason=reason
    ).save()


def _transition(event: DispatchEvent, *, action: str, by, at: datetime, reason: str = "") -> None:
    rule = state_machine.check(TRANSITIONS, action=action, state=event.state, reason=reason, noun="an event")
    from_state = event.state
    event.state = rule.target
    event.save(update_fields=["state", "updated_at"])
    _record(event, action=action, from_state=from_state, to_state=event.state, by=by, at=at, reason=reason)


# --- the lifecycle, driven by tasks -------------------------------------------------


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
            _transition(event, action="notify", by="dispatch", at=now)
            if event.allocation_round == 0:
                allocate(event=event, reason="first allocation", now=now, notify="notified")
        if event.state in (S.SCHEDULED, S.NOTIFIED) and event.start <= now < event.end:
            if event.allocation_round == 0:
                allocate(event=event, reason="first allocation", now=now, notify="notified")
            _transition(event, action="start", by="dispatch", at=now)
        if event.state in (S.SCHEDULED, S.NOTIFIED) and event.end <= now:
            _transition(
                event, action="cancel", by="dispatch", at=now, reason="Its window passed before it could start."
            )
        if event.state == S.ACTIVE and event.end <= now:
            _complete(event, now=now)
    return pending_chunks(event=event)


def _complete(event: DispatchEvent, *, now: datetime) -> None:
    _transition(event, action="complete", by="dispatch", at=now)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE dispatch_devicecommand SET status = 'expired' WHERE event_id = %s AND status IN ('pending', 'accepted') "
            "RETURNING device_id",
            [event.pk],
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


# --- allocation rounds -------------------------------------------------------------


def _intervals(event: DispatchEvent) -> list[EventInterval]:
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
    intervals = _intervals(event)
    first = current_index(intervals, now)
    c, fleet, customers = selectors.candidates(
        event=event, instants=[i.start for i in intervals], now=now, window=(max(now, event.start), event.end)
    )
    targets = np.array([float(i.target_kw) for i in intervals])
    previous = _current_kw(event, c.device_id, len(intervals))
    kw, ranks, why = allocation.allocate(c, targets=targets, over_commit_pct=float(event.over_commit_pct))
    kw[:, :first] = previous[:, :first]  # the past stays as it was
    return _write_round(
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


def _current_kw(event: DispatchEvent, device_ids: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(device_ids), k))
    if event.allocation_round == 0 or not len(device_ids):
        return out
    index = {int(d): i for i, d in enumerate(device_ids)}
    for device_id, kw in Allocation.objects.filter(event=event).values_list("device_id", "kw"):
        if device_id in index and kw:
            out[index[device_id], : len(kw)] = kw[:k]
    return out


def _write_round(
    *,
    event,
    c,
    fleet,
    customers,
    kw,
    ranks,
    why,
    previous,
    intervals,
    first,
    reason,
    targets,
    t0,
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
    )


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
                                      customer_events, customer_hours, customer_cost_per_kwh, needs_command)
SELECT %(event)s, %(round)s, t.device, t.customer, p.kw[(t.i - 1) * %(k)s + 1 : t.i * %(k)s],
       p.available[(t.i - 1) * %(k)s + 1 : t.i * %(k)s], t.reason, t.rank, t.events, t.hours, t.cost, t.needs
FROM (SELECT %(kw)s::float8[] AS kw, %(available)s::float8[] AS available) p, unnest(%(devices)s::bigint[], %(customers)s::bigint[], %(reasons)s::varchar[], %(ranks)s::integer[],
            %(events)s::integer[], %(hours)s::float8[], %(costs)s::float8[], %(needs)s::boolean[])
     WITH ORDINALITY AS t(device, customer, reason, rank, events, hours, cost, needs, i)
"""
_UPDATE_ON_CONFLICT = """
ON CONFLICT (event_id, device_id) DO UPDATE SET round = EXCLUDED.round, kw = EXCLUDED.kw, available_kw = EXCLUDED.available_kw,
    reason = EXCLUDED.reason, rank = EXCLUDED.rank, customer_events = EXCLUDED.customer_events,
    customer_hours = EXCLUDED.customer_hours, customer_cost_per_kwh = EXCLUDED.customer_cost_per_kwh,
    needs_command = EXCLUDED.needs_command
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
       %(ramp)s, %(not_before)s, %(expires)s, 'pending', %(now)s, ''
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
    for n, interval in enumerate(intervals[first:], start=first + 1):
        params[f"s{n}"], params[f"e{n}"] = (
            interval.start.astimezone(UTC).isoformat(),
            interval.end.astimezone(UTC).isoformat(),
        )
        items.append(f"jsonb_build_object('start', %(s{n})s::text, 'end', %(e{n})s::text, 'kw', a.kw[{n}])")
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
            schedule, times = _schedule_sql(_intervals(event), rnd.first_interval)
            cursor.execute(_ISSUE.format(schedule=schedule), {**params, **times})
            devices = [row[0] for row in cursor.fetchall()]
            issued = len(devices)
        # A superseded command's device always gets its new one here, unless this chunk
        # already ran; then nothing changed at all.
        poll_cache.changed(devices=devices)
        if devices and PushEndpoint.objects.exists():
            from dispatch import tasks

            transaction.on_commit(lambda: tasks.push_chunk.delay(event_id, round_number, first_device, last_device))
        if devices and VenResource.objects.filter(device_id__in=devices).exists():
            from dispatch.openadr import tasks as openadr

            transaction.on_commit(lambda: openadr.sync_commands.delay(event_id, first_device, last_device))
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


# --- operator actions ----------------------------------------------------------------


def _cancel(event: DispatchEvent, *, by, reason: str, now: datetime) -> None:
    _transition(event, action="cancel", by=by, at=now, reason=reason)
    if event.allocation_round:
        intervals = _intervals(event)
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


def cancel(*, event: DispatchEvent, by, reason: str, now: datetime | None = None) -> DispatchEvent:
    now = now or timezone.now()
    with transaction.atomic():
        event = (
            DispatchEvent.objects.select_for_update()
            .select_related("resource__market", "resource__program")
            .get(pk=event.pk)
        )
        if event.end <= now and event.state == S.ACTIVE:
            raise DomainError(Problem("ended", "The event has ended; it completes, it cannot be cancelled.", "state"))
        _cancel(event, by=by, reason=reason.strip(), now=now)
    _fan_out_after_commit(event)
    return event


def modify(
    *,
    event: DispatchEvent,
    by,
    reason: str,
    intervals: list[IntervalSpec] | None = None,
    target_kw: Decimal | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> DispatchEvent:
    """New targets (and/or a new end) for an open event; devices get updated commands."""
    now = now or timezone.now()
    with transaction.atomic():
        # The resource first, as create_event locks it: a new end and a new event cannot both take a window.
        VirtualResource.objects.select_for_update().filter(pk=event.resource_id).first()
        event = (
            DispatchEvent.objects.select_for_update()
            .select_related("resource__market", "resource__program")
            .get(pk=event.pk)
        )
        state_machine.check(TRANSITIONS, action="modify", state=event.state, reason=reason, noun="an event")
        end = end or event.end
        if end.tzinfo is None or any(spec.start.tzinfo is None or spec.end.tzinfo is None for spec in intervals or []):
            raise EventRefused(Problem("naive_timestamp", "Times need their UTC offset.", "end"))
        end = end.astimezone(UTC)
        if intervals is not None:
            intervals = [
                IntervalSpec(spec.start.astimezone(UTC), spec.end.astimezone(UTC), spec.target_kw) for spec in intervals
            ]
        if end.tzinfo is None or not end > max(event.start, now) or end - event.start > MAX_EVENT:
            raise EventRefused(
                Problem(
                    "out_of_range",
                    f"end must be in the future, after start, within {MAX_EVENT.total_seconds() / 3600:g} hours of it.",
                    "end",
                )
            )
        old = _intervals(event)
        first = current_index(old, now)
        if intervals is None:
            if target_kw is None:
                if end == event.end:
                    raise EventRefused(Problem("required", "Give target_kw, intervals or a new end.", "target_kw"))
                target_kw = old[min(first, len(old) - 1)].target_kw  # a new end keeps the current target
            from_at = old[first].start if first < len(old) else event.end
            intervals = [IntervalSpec(i.start, i.end, i.target_kw) for i in old[:first]] + hourly_intervals(
                start=from_at, end=end, target_kw=Decimal(target_kw)
            )
        problems = _interval_problems(start=event.start, end=end, intervals=intervals)
        kept = [(i.start, i.end, i.target_kw) for i in old[:first]]
        if [(s.start, s.end, s.target_kw) for s in intervals[:first]] != kept:
            problems.append(Problem("immutable", "Intervals already served cannot change.", "intervals"))
        if (
            DispatchEvent.objects.filter(
                resource=event.resource, state__in=OPEN_STATES, start__lt=end, end__gt=event.start
            )
            .exclude(pk=event.pk)
            .exists()
        ):
            problems.append(
                Problem("overlapping_event", "The new end runs into another event of this resource.", "end")
            )
        if problems:
            raise EventRefused(problems)
        event.end = end  # capability over the new length (energy-limited devices give less over longer)
        shortfalls = _capability_check(event=event, specs=intervals, now=now)
        if shortfalls and event.resource.program.above_capability == event.resource.program.CapabilityRule.REFUSE:
            raise EventRefused(shortfalls, status=422)
        event.warnings = [p.as_dict() for p in shortfalls]
        event.save(update_fields=["end", "warnings", "updated_at"])
        event.intervals.all().delete()
        EventInterval.objects.bulk_create(
            EventInterval(event=event, start=s.start, end=s.end, target_kw=s.target_kw) for s in intervals
        )
        _record(
            event, action="modify", from_state=event.state, to_state=event.state, by=by, at=now, reason=reason.strip()
        )
        if event.allocation_round:
            reshaped = [(i.start, i.end) for i in old] != [(spec.start, spec.end) for spec in intervals]
            if len(intervals) != len(old):
                _resize_allocations(event, len(intervals))
            allocate(event=event, reason=f"modified: {reason.strip()}", now=now, notify="updated", resend_live=reshaped)
        transaction.on_commit(lambda: _schedule_tasks(event))
    _fan_out_after_commit(event)
    return event


def _resize_allocations(event: DispatchEvent, k: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE dispatch_allocation SET
                   kw = (SELECT array_agg(coalesce(kw[n], 0) ORDER BY n) FROM generate_series(1, %s) n),
                   available_kw = (SELECT array_agg(coalesce(available_kw[n], 0) ORDER BY n) FROM generate_series(1, %s) n)
               WHERE event_id = %s""",
            [k, k, event.pk],
        )


def _fan_out_after_commit(event: DispatchEvent) -> None:
    from dispatch import tasks

    transaction.on_commit(lambda: tasks.fan_out.delay(event.pk))


# --- device replies ------------------------------------------------------------------


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
                from dispatch import tasks

                transaction.on_commit(
                    lambda: tasks.rebalance.delay(command.event_id, f"device {command.device_id} rejected its command")
                )
    if expired:  # raised after the block, so the expiry is kept
        raise DomainError(Problem("expired", "This command expired before it was acknowledged.", "status"))
    return command


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
    from dispatch import tasks

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
            transaction.on_commit(lambda e=event_id: tasks.rebalance.delay(e, f"device {device_id} opted out"))
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


# --- the closed loop --------------------------------------------------------------------

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
        intervals = _intervals(event)
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
        previous = _current_kw(event, c.device_id, len(intervals))
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
        return _write_round(
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
