"""Dispatch workflows: events, their lifecycle, allocation rounds, command fan-out, device replies, the closed loop.

Keyword-only functions, one transaction each. Every step that a task runs is
idempotent: it locks the event, looks at its state and the clock, and does only what
is still due, so a retried, duplicated or late task changes nothing twice. Commands
are unique per (event, device, round), so a fan-out chunk that runs again inserts
nothing.

The package's modules follow the workflow; this module names their public functions in one place.
Modules depend downwards only: states <- rounds <- events, lifecycle, closed_loop; replies <- states.
"""

from dispatch.models import OPEN_STATES
from dispatch.services.closed_loop import SHORTFALL_TOLERANCE, active_event_ids, open_events_due, rebalance
from dispatch.services.events import (
    DISPATCHABLE,
    MAX_EVENT,
    MAX_INTERVALS,
    REAL_TIME_GRACE,
    cancel,
    create_event,
    hourly_intervals,
    modify,
    preview_event,
    receive_instruction,
)
from dispatch.services.lifecycle import advance, expire_lapsed_commands
from dispatch.services.replies import accept_many, acknowledge, leave_events_off_grid, opt_out, report_delivery
from dispatch.services.rounds import FAN_OUT_CHUNK, allocate, current_index, issue_commands, pending_chunks
from dispatch.services.states import TRANSITIONS, EventRefused, IntervalSpec, S

__all__ = [
    "DISPATCHABLE",
    "FAN_OUT_CHUNK",
    "MAX_EVENT",
    "MAX_INTERVALS",
    "OPEN_STATES",
    "REAL_TIME_GRACE",
    "SHORTFALL_TOLERANCE",
    "TRANSITIONS",
    "EventRefused",
    "IntervalSpec",
    "S",
    "accept_many",
    "acknowledge",
    "active_event_ids",
    "advance",
    "allocate",
    "cancel",
    "create_event",
    "current_index",
    "expire_lapsed_commands",
    "hourly_intervals",
    "issue_commands",
    "leave_events_off_grid",
    "modify",
    "open_events_due",
    "opt_out",
    "pending_chunks",
    "preview_event",
    "rebalance",
    "receive_instruction",
    "report_delivery",
]
