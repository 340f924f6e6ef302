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

Device limits (`Limits`, where the caller knows them) hold in every allocation: a device
is either off or at least its minimum kW in an interval (the remainder below it goes to
the next device); it serves at most its event hours (the least of its per-event maximum,
what its day and its engine's year have left); once started it runs for at least its
minimum run; the devices that inject at one site (batteries, generators, V2G) give
together no more than the site may export plus the load it has at least; and the devices
of an area its distribution utility has capped give together no more than the cap; and the thermostats and
water heaters of a program with a rebound limit shed together no more energy than the limit's payback allows
(dispatch.rebound.max_shed_kwh), the worst-ranked giving way first. A fill that
breaks a limit in a device-interval takes that device-interval out and fills again, so
the need passes down the ranking (a few passes: each takes out every breach it finds).
Notice and ramp rates are limits on what a device has available in each interval and are
applied by the caller (dispatch.selectors.candidates).
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
SHORT_NOTICE, RUN_TOO_LONG, UTILITY_OVERRIDE, REBOUND_LIMIT = (
    "short_notice",
    "run_too_long",
    "utility_override",
    "rebound_limit",
)
MIN_KW = 0.01  # below this a share is not worth a command
EPS = 1e-9
MAX_PASSES = 60


@dataclass
class Limits:
    """Per device; 0 (min kW, min run) or inf (hours) where it has none."""

    min_kw: np.ndarray
    max_hours: np.ndarray  # event hours it may serve in this event
    min_run: np.ndarray  # int: once started, at least this many consecutive intervals
    interval_hours: np.ndarray  # per interval
    site: np.ndarray | None = None  # int per device: index of its site in `site_cap` (-1: not capped)
    site_cap: np.ndarray | None = None  # (sites, intervals): kW the site's injecting devices may give together
    area: np.ndarray | None = None  # int per device: index of its utility-capped area in `area_cap` (-1: none)
    area_cap: np.ndarray | None = None  # (areas, intervals): kW the area's devices may give together
    rebound: np.ndarray | None = None  # bool per device: its shed load comes back after the event
    rebound_kwh: float | None = None  # energy the rebounding devices may shed together over the event

    @classmethod
    def none(cls, n: int, interval_hours: np.ndarray) -> "Limits":
        return cls(np.zeros(n), np.full(n, np.inf), np.zeros(n, dtype=np.int64), np.asarray(interval_hours, float))

    def active(self) -> bool:
        return bool(
            (self.min_kw > MIN_KW).any()
            or np.isfinite(self.max_hours).any()
            or (self.min_run > 1).any()
            or (self.site is not None and (self.site >= 0).any())
            or (self.area is not None and (self.area >= 0).any())
            or self._rebound_capped()
        )

    def _rebound_capped(self) -> bool:
        return self.rebound is not None and self.rebound_kwh is not None and bool(self.rebound.any())


@dataclass
class Candidates:
    """One entry per member device; `available` is kW per interval, shape (devices, intervals)."""

    device_id: np.ndarray
    available: np.ndarray
    excluded: np.ndarray  # object: None, or OFFLINE / OPTED_OUT / NOT_ENROLLED
    customer_hours: np.ndarray
    customer_events: np.ndarray
    customer_cost: np.ndarray | None = None  # $/kWh a kWh costs the customer's bill (battery plans); NaN unknown
    limits: Limits | None = None

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


def _short_runs(given: np.ndarray, min_run: np.ndarray) -> np.ndarray:
    """Device-intervals in a run of consecutive given intervals shorter than the device's minimum run."""
    out = np.zeros_like(given)
    rows = np.flatnonzero((min_run > 1) & given.any(axis=1))
    if not len(rows):
        return out
    g = given[rows]
    padded = np.pad(g, ((0, 0), (1, 1)))
    starts = np.nonzero(g & ~padded[:, :-2])  # row-major: each row's runs in order, starts and ends paired
    ends = np.nonzero(g & ~padded[:, 2:])
    short = (ends[1] - starts[1] + 1) < min_run[rows][starts[0]]
    marks = np.zeros((len(rows), g.shape[1] + 1), dtype=np.int64)
    np.add.at(marks, (starts[0][short], starts[1][short]), 1)
    np.add.at(marks, (ends[0][short], ends[1][short] + 1), -1)
    out[rows] = np.cumsum(marks, axis=1)[:, :-1] > 0
    return out


def _over_cap(kw: np.ndarray, group: np.ndarray | None, cap: np.ndarray | None, ranks: np.ndarray) -> np.ndarray:
    """kW to take off each device so that no group's devices give more than the group's cap: from the worst-ranked
    device of the group up."""
    cut = np.zeros_like(kw)
    if group is None or cap is None:
        return cut
    capped = np.flatnonzero(group >= 0)
    if not len(capped):
        return cut
    totals = np.zeros_like(cap)
    np.add.at(totals, group[capped], kw[capped])
    excess = np.clip(totals - cap, 0.0, None)
    for g, t in zip(*np.nonzero(excess > EPS)):
        left = excess[g, t]
        for i in sorted(capped[group[capped] == g], key=lambda d: -ranks[d]):
            take = min(left, kw[i, t] - cut[i, t])
            cut[i, t] += take
            left -= take
            if left <= EPS:
                break
    return cut


def _over_caps(kw: np.ndarray, limits: Limits, ranks: np.ndarray) -> np.ndarray:
    """What the site caps (injecting devices) and then the area caps (utility overrides) take off."""
    cut = _over_cap(kw, limits.site, limits.site_cap, ranks)
    return cut + _over_cap(np.clip(kw - cut, 0.0, None), limits.area, limits.area_cap, ranks)


def _over_rebound(kw: np.ndarray, limits: Limits, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kW to take off, devices to leave out): the rebounding devices keep, best-ranked first, what fits in
    `rebound_kwh`; the one at the edge is scaled to fit, every worse-ranked one is left out (so the need passes to
    devices that do not rebound, not down the ranking to the next thermostat)."""
    cut, out = np.zeros_like(kw), np.zeros(len(kw), dtype=bool)
    if not limits._rebound_capped():
        return cut, out
    assert limits.rebound is not None and limits.rebound_kwh is not None
    devices = np.flatnonzero(limits.rebound)
    devices = devices[np.argsort(ranks[devices], kind="stable")]
    kwh = kw[devices] @ limits.interval_hours
    before = np.cumsum(kwh) - kwh
    over = before + kwh > limits.rebound_kwh + EPS
    if not over.any():
        return cut, out
    edge = int(np.flatnonzero(over)[0])
    keep = max(limits.rebound_kwh - before[edge], 0.0)
    share = keep / kwh[edge] if kwh[edge] > EPS else 0.0
    cut[devices[edge]] = kw[devices[edge]] * (1 - share)
    out[devices[edge + 1 :]] = True
    cut[devices[edge + 1 :]] = kw[devices[edge + 1 :]]
    if share <= EPS:
        out[devices[edge]] = True
    return cut, out


def _round_up(kw: np.ndarray, headroom: np.ndarray, need: np.ndarray, ranks: np.ndarray, limits: Limits) -> np.ndarray:
    """Where a remainder is left that only devices with a larger minimum could give, the best-ranked of them gives
    its minimum (over the target, rather than short of it); only devices whose other limits the interval keeps."""
    short = need - kw.sum(axis=0)
    wanting = np.flatnonzero(short > MIN_KW)
    if not len(wanting):
        return kw
    order = np.argsort(ranks, kind="stable")
    free = (limits.min_kw[order] > MIN_KW) & (limits.min_run[order] <= 1)
    for group in (limits.site, limits.area):
        if group is not None:
            free &= group[order] < 0
    if limits._rebound_capped():
        assert limits.rebound is not None
        free &= ~limits.rebound[order]
    devices = order[free]  # in rank order: devices with a minimum and no other limit a single interval could break
    if not len(devices):
        return kw
    kw = kw.copy()
    minimum = limits.min_kw[devices]
    served = (kw[devices] > 0) @ limits.interval_hours
    for t in wanting:
        fits = (
            (minimum > short[t])
            & (headroom[devices, t] >= minimum)
            & (kw[devices, t] == 0)
            & (served + limits.interval_hours[t] <= limits.max_hours[devices] + EPS)
        )
        pick = np.flatnonzero(fits)
        if len(pick):
            kw[devices[pick[0]], t] = minimum[pick[0]]
            served[pick[0]] += limits.interval_hours[t]
    return kw


def fill_within_limits(headroom: np.ndarray, need: np.ndarray, ranks: np.ndarray, limits: Limits | None) -> np.ndarray:
    """fill, then every device-interval that breaks a device's limits is taken out and the need filled again."""
    kw = fill(headroom, need, ranks)
    if limits is None or not limits.active() or not kw.size:
        return kw
    original, headroom = headroom, headroom.copy()
    for _ in range(MAX_PASSES):
        given = kw > 0
        cum = np.cumsum(np.where(given, limits.interval_hours[None, :], 0.0), axis=1)
        breach = given & (kw < limits.min_kw[:, None] - EPS)
        breach |= given & (cum > limits.max_hours[:, None] + EPS)
        breach |= _short_runs(given & ~breach, limits.min_run)
        cut = _over_caps(np.where(breach, 0.0, kw), limits, ranks)
        rebound_cut, left_out = _over_rebound(np.clip(np.where(breach, 0.0, kw) - cut, 0.0, None), limits, ranks)
        cut += rebound_cut
        if not breach.any() and not (cut > EPS).any():
            return _round_up(kw, original, need, ranks, limits)
        headroom[breach] = 0.0
        headroom[left_out] = 0.0
        headroom = np.where(cut > EPS, np.clip(kw - cut, 0.0, None), headroom)
        kw = fill(headroom, need, ranks)
    # Out of passes: whatever still breaks a limit is dropped (a shortfall, never a device asked beyond its limits).
    given = kw > 0
    cum = np.cumsum(np.where(given, limits.interval_hours[None, :], 0.0), axis=1)
    kw[given & ((kw < limits.min_kw[:, None] - EPS) | (cum > limits.max_hours[:, None] + EPS))] = 0.0
    kw[_short_runs(kw > 0, limits.min_run)] = 0.0
    kw = np.clip(kw - _over_caps(kw, limits, ranks), 0.0, None)
    return np.clip(kw - _over_rebound(kw, limits, ranks)[0], 0.0, None)


def allocate(
    c: Candidates, *, targets: np.ndarray, over_commit_pct: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kW per device and interval, rank, reason) for a fresh allocation."""
    ranks = rank(c)
    usable = c.usable
    headroom = np.where(usable[:, None], c.available, 0.0)
    kw = fill_within_limits(headroom, np.asarray(targets, dtype=float) * (1 + over_commit_pct / 100.0), ranks, c.limits)
    return kw, ranks, reasons(c, kw)


def reasons(c: Candidates, kw: np.ndarray) -> np.ndarray:
    out = np.array(c.excluded, dtype=object)
    usable = c.usable
    given = kw.sum(axis=1) > 0 if kw.size else np.zeros(len(out), bool)
    none_available = c.available.max(axis=1) < MIN_KW if c.available.size else np.ones(len(out), bool)
    out[usable & given] = ALLOCATED
    out[usable & ~given & none_available] = NO_HEADROOM
    out[usable & ~given & ~none_available] = NOT_NEEDED
    limits = c.limits
    if limits is not None and limits._rebound_capped() and kw.size:
        assert limits.rebound is not None and limits.rebound_kwh is not None
        shed = kw[limits.rebound] @ limits.interval_hours
        if shed.sum() >= limits.rebound_kwh * (1 - 1e-6):  # the limit held the rebounding devices back
            out[usable & ~given & ~none_available & limits.rebound] = REBOUND_LIMIT
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
    added = fill(headroom, need, ranks)
    if c.limits is None or not c.limits.active():
        return kw + added
    # Within limits: the whole allocation is filled again with the devices' present kW kept as a floor.
    total = np.where(usable[:, None], c.available, 0.0)
    total[:, :from_interval] = kw[:, :from_interval]
    need_all = kw.sum(axis=0) + need
    again = fill_within_limits(total, need_all, ranks, c.limits)
    again[:, :from_interval] = kw[:, :from_interval]
    return again


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
        SHORT_NOTICE: "Needs more notice than the event gave: not asked.",
        RUN_TOO_LONG: "Its minimum run is longer than the event: not started.",
        UTILITY_OVERRIDE: "Its distribution utility blocked dispatch in its area for this window.",
        REBOUND_LIMIT: "Held back: more shed load here would come back above the program's rebound limit.",
        OFF_GRID: "Off the grid (islanded or in an outage): serving its own site, so not asked.",
    }[reason]
