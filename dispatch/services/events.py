"""Creating events (from an operator, a utility call or a market instruction), and the operator's changes: cancel, modify."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import numpy as np
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from aggregator.aggregation.models import ResourceState, VirtualResource
from aggregator.core import state_machine
from aggregator.core.errors import DomainError, Problem
from aggregator.core.state_machine import Actor
from aggregator.reference.models import Market
from dispatch import jobs, selectors
from dispatch.models import (
    OPEN_STATES,
    Allocation,
    DispatchEvent,
    EventInterval,
)
from dispatch.services.rounds import allocate, cancel_round, current_index, intervals_of
from dispatch.services.states import TRANSITIONS, EventRefused, IntervalSpec, S, record

# An event lasts at most a day on the market's clock: 24 hours, and a whole fall-back day's 25 real ones.
MAX_EVENT = timedelta(hours=24)
MAX_EVENT_REAL = timedelta(hours=25)


def too_long(start: datetime, end: datetime, time_zone: str) -> bool:
    """Longer than MAX_EVENT on the market's local clock (or than MAX_EVENT_REAL in real time)."""
    zone = ZoneInfo(time_zone)
    wall = end.astimezone(zone).replace(tzinfo=None) - start.astimezone(zone).replace(tzinfo=None)
    return wall > MAX_EVENT or end - start > MAX_EVENT_REAL


MAX_INTERVALS = 288

REAL_TIME_GRACE = timedelta(minutes=2)  # "start now" from a client whose clock is a little behind

DISPATCHABLE = {
    DispatchEvent.Source.OPERATOR_TEST: frozenset(
        {ResourceState.SUBMITTED, ResourceState.REGISTERED, ResourceState.ACTIVE}
    ),
    DispatchEvent.Source.MARKET_INSTRUCTION: frozenset({ResourceState.REGISTERED, ResourceState.ACTIVE}),
    DispatchEvent.Source.UTILITY_CALL: frozenset({ResourceState.REGISTERED, ResourceState.ACTIVE}),
}


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


def _window_problems(*, start, end, notify_at, now, time_zone: str) -> list[Problem]:
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
    elif too_long(start, end, time_zone):
        problems.append(
            Problem(
                "out_of_range",
                f"An event lasts at most {MAX_EVENT.total_seconds() / 3600:g} hours on the market's clock "
                "(a whole fall-back day is 25).",
                "end",
            )
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
    by: Actor,
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
    problems = _window_problems(start=start, end=end, notify_at=notify_at, now=now, time_zone=resource.market.time_zone)
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
        cancel_round(replaces, by=by, reason=f"Replaced by a new event from {start.isoformat()}.", now=now)
        jobs.fan_out(replaces.pk)
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
    record(
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
    market: Market,
    source: str,
    by: Actor,
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
    for at in sorted({event.notify_at, event.start, event.end}):
        jobs.advance_event(event.pk, at=at)


def cancel(*, event: DispatchEvent, by: Actor, reason: str, now: datetime | None = None) -> DispatchEvent:
    now = now or timezone.now()
    with transaction.atomic():
        event = (
            DispatchEvent.objects.select_for_update()
            .select_related("resource__market", "resource__program")
            .get(pk=event.pk)
        )
        if event.end <= now and event.state == S.ACTIVE:
            raise DomainError(Problem("ended", "The event has ended; it completes, it cannot be cancelled.", "state"))
        cancel_round(event, by=by, reason=reason.strip(), now=now)
    jobs.fan_out(event.pk)
    return event


def modify(
    *,
    event: DispatchEvent,
    by: Actor,
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
        if (
            end.tzinfo is None
            or not end > max(event.start, now)
            or too_long(event.start, end, event.resource.market.time_zone)
        ):
            raise EventRefused(
                Problem(
                    "out_of_range",
                    f"end must be in the future, after start, within {MAX_EVENT.total_seconds() / 3600:g} hours of it "
                    "on the market's clock.",
                    "end",
                )
            )
        old = intervals_of(event)
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
        record(
            event, action="modify", from_state=event.state, to_state=event.state, by=by, at=now, reason=reason.strip()
        )
        if event.allocation_round:
            reshaped = [(i.start, i.end) for i in old] != [(spec.start, spec.end) for spec in intervals]
            if len(intervals) != len(old):
                _resize_allocations(event, len(intervals))
            allocate(event=event, reason=f"modified: {reason.strip()}", now=now, notify="updated", resend_live=reshaped)
        transaction.on_commit(lambda: _schedule_tasks(event))
    jobs.fan_out(event.pk)
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


class _Preview(Exception):
    def __init__(self, result: dict):
        self.result = result


def preview_event(
    *, resource: VirtualResource, source: str, start: datetime, end: datetime, by: Actor, **kwargs
) -> dict:
    """What an event would do if it were created now, created nothing: the allocation it would get and, where a
    battery's own plan wanted the energy the event takes, what the dispatch costs that customer's bill. The event
    is created and allocated inside a transaction that is then rolled back, so the answer is the real rule's."""
    now = timezone.now()
    try:
        with transaction.atomic():
            event = create_event(resource=resource, source=source, start=start, end=end, by=by, now=now, **kwargs)
            round_ = allocate(event=event, reason="preview", now=now)
            hours = [(i.end - i.start).total_seconds() / 3600 for i in event.intervals.order_by("start")]
            costs = []
            for allocation in Allocation.objects.filter(event=event, customer_cost_per_kwh__gt=0).select_related(
                "device"
            ):
                kwh = sum(kw * h for kw, h in zip(allocation.kw, hours))
                if kwh > 0:
                    costs.append(
                        {
                            "site": allocation.device.site_id,
                            "device": allocation.device_id,
                            "kwh": round(kwh, 3),
                            "cost_per_kwh": round(allocation.customer_cost_per_kwh, 4),
                            "cost": round(kwh * allocation.customer_cost_per_kwh, 2),
                        }
                    )
            raise _Preview(
                {
                    "target_kw": round_.target_kw,
                    "allocated_kw": round_.allocated_kw,
                    "devices": round_.devices,
                    "warnings": event.warnings,
                    "customer_costs": costs,
                    "customer_cost_total": round(sum(c["cost"] for c in costs), 2),
                }
            )
    except _Preview as preview:
        return preview.result
    raise AssertionError("unreachable")  # pragma: no cover
