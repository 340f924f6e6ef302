"""The event state machine, and what every part of dispatch's workflows shares: the refusal, an interval's target, the recorded transition."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from aggregator.core import state_machine
from aggregator.core.errors import DomainError
from aggregator.core.state_machine import Actor, Transition
from dispatch.models import (
    OPEN_STATES,
    DispatchEvent,
    EventState,
    EventTransition,
)

S = EventState

TRANSITIONS = state_machine.table(
    Transition("notify", frozenset({S.SCHEDULED}), S.NOTIFIED, system_only=True),
    Transition("start", frozenset({S.SCHEDULED, S.NOTIFIED}), S.ACTIVE, system_only=True),
    Transition("complete", frozenset({S.ACTIVE}), S.COMPLETED, system_only=True),
    Transition("cancel", frozenset(OPEN_STATES), S.CANCELLED, reason_required=True),
    Transition("modify", frozenset(OPEN_STATES), S.SCHEDULED, reason_required=True),  # target: unchanged state
)


class EventRefused(DomainError):
    status = 400


@dataclass(frozen=True)
class IntervalSpec:
    start: datetime
    end: datetime
    target_kw: Decimal


def record(
    event: DispatchEvent, *, action: str, from_state: str, to_state: str, by: Actor, at: datetime, reason: str = ""
) -> None:
    EventTransition.entry(
        by=by, event=event, action=action, from_state=from_state, to_state=to_state, at=at, reason=reason
    ).save()


def transition(event: DispatchEvent, *, action: str, by: Actor, at: datetime, reason: str = "") -> None:
    rule = state_machine.check(TRANSITIONS, action=action, state=event.state, reason=reason, noun="an event")
    from_state = event.state
    event.state = rule.target
    event.save(update_fields=["state", "updated_at"])
    record(event, action=action, from_state=from_state, to_state=event.state, by=by, at=at, reason=reason)
