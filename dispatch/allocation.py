"""Splitting an event's target over devices: pure functions over numpy arrays.

The same rule serves the first allocation of an event over 100,000 devices, a
re-allocation of one opted-out device's kW, and the tests.

Order of preference (`rank`): the customer with the lightest season so far first
(hours dispatched this season over all the customer's devices, then events), then
the device offering more kW, then the device id (stable). Each interval is filled
in that order: a device gives all it has until the interval's target plus the
over-commit margin is met, the last one only what is still missing. The same order
holds in every interval, so a device tends to serve the whole event or not at all,
and the burden moves to other customers as a season goes on.
"""

from dataclasses import dataclass

import numpy as np

# Why a device got what it got (the Allocation.Reason values).
ALLOCATED, NOT_NEEDED, OFFLINE, OPTED_OUT, NOT_ENROLLED, NO_HEADROOM, OFF_GRID = (
    "allocated",
    "not_needed",
    "offline",
    "opted_out",
    "not_enrolled",
    "no_headroom",
    "off_grid",
)
MIN_KW = 0.01  # below this a share is not worth a command


@dataclass
class Candidates:
    """One entry per member device; `available` is kW per interval, shape (devices, intervals)."""

    device_id: np.ndarray
    available: np.ndarray
    excluded: np.ndarray  # object: None, or OFFLINE / OPTED_OUT / NOT_ENROLLED
    customer_hours: np.ndarray
    customer_events: np.ndarray
    customer_cost: np.ndarray | None = None  # $/kWh a kWh costs the customer's bill (battery plans); NaN unknown

    @property
    def usable(self) -> np.ndarray:
        return np.array([e is None for e in self.excluded], dtype=bool) if len(self.excluded) else np.zeros(0, bool)


def rank(c: Candidates) -> np.ndarray:
    """1-based preference rank per device: the lowest cost to the customer's bill first (by the cent per kWh; a device
    without a battery plan costs nothing there), then the lightest season; excluded devices rank last."""
    offered = c.available.sum(axis=1) if c.available.size else np.zeros(len(c.device_id))
    cost = np.zeros(len(c.device_id)) if c.customer_cost is None else np.nan_to_num(c.customer_cost)
    cents = np.round(cost * 100)
    order = np.lexsort((c.device_id, -offered, c.customer_events, c.customer_hours, cents, ~c.usable))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def fill(headroom: np.ndarray, need: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """kW per device and interval: headroom taken in rank order until each interval's need is met."""
    n, k = headroom.shape
    out = np.zeros((n, k))
    if n == 0:
        return out
    order = np.argsort(ranks, kind="stable")
    ordered = np.clip(headroom[order], 0.0, None)
    before = np.cumsum(ordered, axis=0) - ordered  # kW already taken by better-ranked devices
    take = np.clip(np.minimum(ordered, need[None, :] - before), 0.0, None)
    take[take < MIN_KW] = 0.0
    out[order] = take
    return out


def allocate(
    c: Candidates, *, targets: np.ndarray, over_commit_pct: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kW per device and interval, rank, reason) for a fresh allocation."""
    ranks = rank(c)
    usable = c.usable
    headroom = np.where(usable[:, None], c.available, 0.0)
    kw = fill(headroom, np.asarray(targets, dtype=float) * (1 + over_commit_pct / 100.0), ranks)
    return kw, ranks, reasons(c, kw)


def reasons(c: Candidates, kw: np.ndarray) -> np.ndarray:
    out = np.array(c.excluded, dtype=object)
    usable = c.usable
    given = kw.sum(axis=1) > 0 if kw.size else np.zeros(len(out), bool)
    none_available = c.available.max(axis=1) < MIN_KW if c.available.size else np.ones(len(out), bool)
    out[usable & given] = ALLOCATED
    out[usable & ~given & none_available] = NO_HEADROOM
    out[usable & ~given & ~none_available] = NOT_NEEDED
    return out


def top_up(
    c: Candidates, *, current: np.ndarray, shortfall: np.ndarray, ranks: np.ndarray, from_interval: int
) -> np.ndarray:
    """New kW per device and interval after covering `shortfall` (per interval) from `from_interval` on.

    Excluded devices lose their kW from `from_interval` on (it is part of the shortfall
    the caller computed); the others keep theirs and the best-ranked with headroom add more.
    """
    kw = current.copy()
    usable = c.usable
    kw[~usable, from_interval:] = 0.0
    headroom = np.where(usable[:, None], np.clip(c.available - kw, 0.0, None), 0.0)
    headroom[:, :from_interval] = 0.0
    need = np.clip(shortfall, 0.0, None).astype(float)
    need[:from_interval] = 0.0
    return kw + fill(headroom, need, ranks)


def explain(
    *,
    kind: str,
    available: np.ndarray,
    kw: np.ndarray,
    reason: str,
    rank: int,
    of: int | None,
    customer_events: int,
    customer_hours: float,
    customer_cost: float | None = None,
) -> str:
    """One line for the operator: what the device could give, what it was given, and why."""
    offered = f"{kind}: {available.max(initial=0):.2f} kW available at most"
    rank_text = f"rank {rank}" + (f" of {of}" if of else "")
    season = f"customer's season so far {customer_events} event(s), {customer_hours:.1f} h"
    if customer_cost is not None:
        season = f"costs its customer's bill ${customer_cost:.3f}/kWh (its battery plan); {season}"
    if reason == ALLOCATED:
        return f"{offered}; {season}; {rank_text}; allocated up to {kw.max(initial=0):.2f} kW."
    if reason == NOT_NEEDED:
        return f"{offered}; {season}; {rank_text}; not needed: better-ranked devices met the target."
    if reason == NO_HEADROOM:
        return f"{offered}: nothing to give for this window."
    return {
        OFFLINE: "Offline: not reporting, so not asked.",
        OPTED_OUT: "Opted out for this window (customer or storm watch).",
        NOT_ENROLLED: "Not active in the resource's program.",
        OFF_GRID: "Off the grid (islanded or in an outage): serving its own site, so not asked.",
    }[reason]
