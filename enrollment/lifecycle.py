"""The enrollment state machine: every allowed transition, in one table.

    applied ──submit_for_review──▶ utility_review ──approve──▶ approved ──activate──▶ active
       │                              │   └──lapse (market rule)──▶ approved            │  ▲
       └──reject──▶ rejected ◀──reject┘                                     suspend ▼  │ activate
                                                                                suspended
    withdraw: from any open state to withdrawn.

rejected and withdrawn are terminal; a device that wants back in applies again.
"""

from django.db import models

from aggregator.core import state_machine
from aggregator.core.state_machine import Transition


class State(models.TextChoices):
    APPLIED = "applied", "Applied"
    UTILITY_REVIEW = "utility_review", "Utility review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    WITHDRAWN = "withdrawn", "Withdrawn"


TERMINAL = frozenset({State.REJECTED, State.WITHDRAWN})
OPEN = frozenset(State) - TERMINAL


TRANSITIONS: dict[str, Transition] = state_machine.table(
    Transition("submit_for_review", frozenset({State.APPLIED}), State.UTILITY_REVIEW),
    Transition("approve", frozenset({State.UTILITY_REVIEW}), State.APPROVED),
    Transition("lapse", frozenset({State.UTILITY_REVIEW}), State.APPROVED, system_only=True),
    Transition("reject", frozenset({State.APPLIED, State.UTILITY_REVIEW}), State.REJECTED, reason_required=True),
    Transition("activate", frozenset({State.APPROVED, State.SUSPENDED}), State.ACTIVE),
    Transition("suspend", frozenset({State.ACTIVE}), State.SUSPENDED, reason_required=True),
    Transition("withdraw", frozenset(OPEN), State.WITHDRAWN),
)

OPERATOR_ACTIONS = tuple(action for action, t in TRANSITIONS.items() if not t.system_only)


def allowed_actions(state: str) -> list[str]:
    return state_machine.allowed_actions(TRANSITIONS, state)
