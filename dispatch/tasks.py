"""Dispatch tasks: thin, idempotent, acknowledged late (a task a dying worker held runs again).

- advance_event: queued with an ETA at notify, start and end; takes what is due.
- fan_out / issue_command_chunk: commands in chunks of FAN_OUT_CHUNK devices, run in
  parallel by the workers; each chunk is one set-based statement, unique per
  (event, device, round), so a re-run issues nothing twice.
- push_chunk / push_retry: a committed chunk's commands posted, signed, to the devices'
  own endpoints where configured (dispatch.push); retried a few times, never blocking.
- sweep (beat, every 15 s): re-drives events whose moment passed or whose fan-out
  stalled, in case a worker or the broker lost a task.
- closed_loop (beat, every 30 s): rebalance every active event.
"""

from datetime import timedelta

from celery import group, shared_task
from django.utils import timezone

from dispatch import notifications, push, schedules, services
from dispatch.models import AllocationRound, DispatchEvent

STALLED_AFTER = timedelta(seconds=30)  # a fan-out this old and incomplete lost a chunk


def _run_chunks(chunks) -> None:
    if chunks:
        group(issue_command_chunk.s(*chunk) for chunk in chunks).apply_async()


@shared_task(acks_late=True)
def advance_event(event_id: int) -> None:
    _run_chunks(services.advance(event_id=event_id))


@shared_task(acks_late=True)
def fan_out(event_id: int) -> None:
    _run_chunks(services.pending_chunks(event=DispatchEvent.objects.get(pk=event_id)))


@shared_task(acks_late=True)
def issue_command_chunk(event_id: int, round_number: int, first_device: int, last_device: int) -> int:
    return services.issue_commands(
        event_id=event_id, round_number=round_number, first_device=first_device, last_device=last_device
    )


@shared_task(acks_late=True)
def push_chunk(event_id: int, round_number: int, first_device: int, last_device: int) -> int:
    """Post a committed chunk's commands to the push endpoints of its devices; failures retry on their own."""
    bodies = push.chunk_bodies(
        event_id=event_id, round_number=round_number, first_device=first_device, last_device=last_device
    )
    failed = push.deliver(bodies)
    for endpoint_id in failed:
        push_retry.apply_async((endpoint_id, bodies[endpoint_id].decode(), 1), countdown=push.RETRY_DELAYS[0])
    return len(bodies) - len(failed)


@shared_task(acks_late=True)
def push_retry(endpoint_id: int, body: str, attempt: int) -> bool:
    if not push.deliver({endpoint_id: body.encode()}):
        return True
    if attempt < len(push.RETRY_DELAYS):
        push_retry.apply_async((endpoint_id, body, attempt + 1), countdown=push.RETRY_DELAYS[attempt])
    return False


@shared_task(acks_late=True)
def rebalance(event_id: int, reason: str = "closed loop") -> None:
    if services.rebalance(event_id=event_id, reason=reason) is not None:
        fan_out.delay(event_id)


@shared_task(acks_late=True)
def notify_customers(event_id: int, kind: str) -> dict:
    return notifications.send(event_id=event_id, kind=kind)


@shared_task
def sweep() -> int:
    now = timezone.now()
    due = services.open_events_due(now=now)
    stalled_rounds = set(
        AllocationRound.objects.filter(event_id__in=due, created_at__lte=now - STALLED_AFTER).values_list(
            "event_id", flat=True
        )
    )
    for event in DispatchEvent.objects.filter(pk__in=due):
        moment_passed = event.state in services.OPEN_STATES and (
            (event.state == "scheduled" and event.notify_at <= now)
            or (event.state != "active" and event.start <= now)
            or (event.state == "active" and event.end <= now)
        )
        if moment_passed:
            advance_event.delay(event.pk)
        elif event.pk in stalled_rounds:
            fan_out.delay(event.pk)
    services.expire_lapsed_commands(now=now)
    return len(due)


@shared_task
def closed_loop() -> int:
    ids = services.active_event_ids()
    for event_id in ids:
        rebalance.delay(event_id)
    return len(ids)


@shared_task
def plan_due_schedules(at: str | None = None) -> int:
    """Queue the next-day battery plans of every site whose local evening has come (at `at`, ISO, default now),
    CHUNK_SITES sites a task."""
    from datetime import UTC, datetime

    now = datetime.fromisoformat(at) if at else datetime.now(UTC)
    queued = 0
    for day, site_ids in schedules.due_sites(now).items():
        for first in range(0, len(site_ids), schedules.CHUNK_SITES):
            plan_schedules.delay(site_ids[first : first + schedules.CHUNK_SITES], day.isoformat())
            queued += 1
    return queued


@shared_task(acks_late=True)
def plan_schedules(site_ids: list[int], day: str) -> dict:
    """One chunk of sites' battery plans for `day` (idempotent: a plan replaces the day's earlier one)."""
    from datetime import date

    return schedules.plan_sites(site_ids, date.fromisoformat(day))
