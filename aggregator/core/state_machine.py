"""Explicit state machines: each allowed transition is a row in a table."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aggregator.core.errors import InvalidTransition, Problem

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

# Who takes an action: a user, or a job's name (None: the platform itself).
type Actor = AbstractBaseUser | str | None


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset
    target: str
    reason_required: bool = False
    # Only the platform itself takes this transition (e.g. a lapsed review).
    system_only: bool = False


def table(*transitions: Transition) -> dict[str, Transition]:
    return {t.action: t for t in transitions}


def check(transitions: dict[str, Transition], *, action: str, state: str, reason: str, noun: str) -> Transition:
    """The rule for `action` from `state`, or the InvalidTransition explaining why not."""
    rule = transitions.get(action)
    if rule is None:
        raise InvalidTransition(Problem("unknown_action", f"No lifecycle action {action!r}.", "action"), status=400)
    if state not in rule.sources:
        allowed = ", ".join(sorted(str(s) for s in rule.sources))
        raise InvalidTransition(
            Problem("invalid_transition", f"Cannot {action} {noun} that is {state} (allowed from: {allowed}).", "state")
        )
    if rule.reason_required and not reason.strip():
        raise InvalidTransition(Problem("required", f"A reason is required to {action}.", "reason"), status=400)
    return rule


def allowed_actions(transitions: dict[str, Transition], state: str) -> list[str]:
    return [action for action, t in transitions.items() if state in t.sources and not t.system_only]


def actor(by: Actor) -> tuple[object, str]:
    """(user or None, label) for a history record; `by` is a user or a job's name."""
    if by is None or isinstance(by, str):
        return None, by or "system"
    return by, by.get_username()
