"""What dispatch runs later, by task: the one place its services queue Celery work.

Services call these instead of importing dispatch.tasks (the tasks import the services, so the
services importing the tasks would be a loop). A job names its task, and most are sent when the
surrounding transaction commits, so a worker never looks for a row that is not there yet.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from celery import current_app
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

SWEEP = "the beat's dispatch sweep (dispatch.tasks.sweep)"
CLOSED_LOOP = "the beat's closed loop (dispatch.tasks.closed_loop)"


@dataclass(frozen=True)
class Job:
    """A task to send, with its arguments: an on-commit callback that says which task it queues.

    `recovered_by` names the periodic task that does this job's work if its message is lost (the
    beat's sweep takes every event step whose moment has passed and re-drives stalled fan-outs;
    the closed loop rebalances every live event). Such a job, sent while the broker is down, is
    logged and left to it: what the caller wrote is committed and stands, and the work happens
    once the broker is back. A job without one raises.
    """

    task: str
    args: tuple = ()
    eta: datetime | None = None
    countdown: float | None = None
    recovered_by: str = ""

    def __call__(self) -> None:
        options = {}
        if self.eta is not None:
            options["eta"] = self.eta
        if self.countdown is not None:
            options["countdown"] = self.countdown
        try:
            # Nothing reads a job's result: without ignore_result, each send would also subscribe
            # this process to the task's result channel.
            current_app.send_task(self.task, args=self.args, ignore_result=True, **options)
        except OperationalError as exc:
            if not self.recovered_by:
                raise
            logger.warning(
                "The broker is unreachable (%s): %s%r was not queued; %s does its work once the broker is back.",
                exc,
                self.task,
                self.args,
                self.recovered_by,
            )


def send(job: Job) -> None:
    """Queue the job now (the caller has committed, or nothing it reads is uncommitted)."""
    job()


def after_commit(job: Job) -> None:
    """Queue the job when the current transaction commits (at once outside one)."""
    transaction.on_commit(job)


def advance_event(event_id: int, *, at: datetime | None = None) -> None:
    """Take the event's next step now, or at `at` (notify, start, end)."""
    eta = at if at and at > timezone.now() else None
    send(Job("dispatch.tasks.advance_event", (event_id,), eta=eta, recovered_by=SWEEP))


def fan_out(event_id: int) -> None:
    """Issue the event's pending command chunks, after this transaction's round is committed."""
    after_commit(Job("dispatch.tasks.fan_out", (event_id,), recovered_by=SWEEP))


def rebalance(event_id: int, reason: str) -> None:
    """Re-allocate the event's remaining intervals, after this transaction commits."""
    after_commit(Job("dispatch.tasks.rebalance", (event_id, reason), recovered_by=CLOSED_LOOP))


def push_chunk(event_id: int, round_number: int, first_device: int, last_device: int) -> None:
    """Post a committed chunk's commands to its devices' push endpoints."""
    after_commit(Job("dispatch.tasks.push_chunk", (event_id, round_number, first_device, last_device)))


def notify_customers(event_id: int, kind: str) -> None:
    """Tell the event's customers (from a worker, once the event's change committed)."""
    send(Job("dispatch.tasks.notify_customers", (event_id, kind)))
