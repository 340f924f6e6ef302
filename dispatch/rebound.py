"""After an event, thermostats and water heaters draw back what they shed (rebound, or snapback): a pure model.

Payback shape (a program's settings): a share of the energy each device shed (`rebound_pct`) comes back over
`rebound_minutes` from the moment it is restored, highest at once and falling to nothing (a triangle; its area is
the payback energy). Released all at once, a resource's rebound peaks at the sum of its devices' peaks; a program
can limit that peak (`rebound_limit_kw`), and then restores are staggered: devices are spread over groups
released STEP_MINUTES apart (holding their shed that much longer), as few groups as keep the peak within the
limit, at most `MAX_STAGGER_MINUTES` of delay; devices are dealt to groups largest first, back and forth, so the
groups weigh about the same. The limit also bounds what allocation gives the resource's thermostats and water
heaters (`max_shed_kwh`: the most shed energy whose payback the widest stagger keeps within it), so the need
passes to devices that do not rebound; should uneven devices still leave a peak above the limit, the widest
stagger is used and the event page says so.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

STEP_MINUTES = 5
MAX_STAGGER_MINUTES = 60


@dataclass
class Rebound:
    offset_minutes: npt.NDArray[np.int64]  # per device: how long after the event's end it is restored
    kw: npt.NDArray[np.float64]  # the resource's expected rebound per minute from the event's end
    peak_kw: float
    unstaggered_peak_kw: float
    within_limit: bool


def triangle(minutes: int) -> npt.NDArray[np.float64]:
    """The payback shape per minute, for one kWh: falls linearly to zero over `minutes`; sums to 60 (kWh to kW)."""
    m = np.arange(minutes, dtype=float)
    shape = 1.0 - m / minutes
    return shape * (60.0 / shape.sum())


def expected(
    shed_kwh: npt.NDArray[np.float64], *, share: float, minutes: int, limit_kw: float | None = None
) -> Rebound:
    """Stagger (if a limit needs it) and the resource's expected rebound, from each device's shed energy (kWh)."""
    n = len(shed_kwh)
    minutes = max(int(minutes), 1)
    shape = triangle(minutes)
    payback = np.clip(np.asarray(shed_kwh, dtype=float), 0.0, None) * share
    horizon = MAX_STAGGER_MINUTES + minutes
    unstaggered = float(payback.sum() * shape[0])
    groups = 1
    if limit_kw is not None and unstaggered > limit_kw:
        groups = MAX_STAGGER_MINUTES // STEP_MINUTES + 1
        for g in range(2, MAX_STAGGER_MINUTES // STEP_MINUTES + 2):
            if _peak(_per_group(payback, g), shape, horizon) <= limit_kw + 1e-9:
                groups = g
                break
    assignment = _deal(payback, groups)
    profile = _profile(np.bincount(assignment, weights=payback, minlength=groups), shape, horizon)
    peak = float(profile.max(initial=0.0))
    return Rebound(
        offset_minutes=(assignment * STEP_MINUTES).astype(np.int64) if n else np.zeros(0, dtype=np.int64),
        kw=profile,
        peak_kw=peak,
        unstaggered_peak_kw=unstaggered,
        within_limit=limit_kw is None or peak <= limit_kw + 1e-9,
    )


def max_shed_kwh(*, limit_kw: float, share: float, minutes: int) -> float:
    """The most energy a resource's rebounding devices may shed for the widest stagger to keep their payback's peak
    within `limit_kw` (the payback spread evenly over its groups)."""
    if share <= 0:
        return float("inf")
    groups = MAX_STAGGER_MINUTES // STEP_MINUTES + 1
    minutes = max(int(minutes), 1)
    per_kwh = _peak(np.full(groups, 1.0 / groups), triangle(minutes), MAX_STAGGER_MINUTES + minutes)
    return max(limit_kw, 0.0) / (per_kwh * share)


def _deal(payback: npt.NDArray[np.float64], groups: int) -> npt.NDArray[np.int64]:
    """Group per device: largest first, dealt back and forth (0, 1, ..., g-1, g-1, ..., 0, ...) so the groups weigh
    about the same."""
    out = np.zeros(len(payback), dtype=np.int64)
    if groups == 1 or not len(payback):
        return out
    rank = np.empty(len(payback), dtype=np.int64)
    rank[np.argsort(-payback, kind="stable")] = np.arange(len(payback))
    lap, place = np.divmod(rank, groups)
    return np.where(lap % 2 == 0, place, groups - 1 - place).astype(np.int64)


def _per_group(payback: npt.NDArray[np.float64], groups: int) -> npt.NDArray[np.float64]:
    return np.bincount(_deal(payback, groups), weights=payback, minlength=groups)


def _profile(
    group_kwh: npt.NDArray[np.float64], shape: npt.NDArray[np.float64], horizon: int
) -> npt.NDArray[np.float64]:
    out = np.zeros(horizon)
    for g, kwh in enumerate(group_kwh):
        start = g * STEP_MINUTES
        end = min(start + len(shape), horizon)
        out[start:end] += kwh * shape[: end - start]
    return out


def _peak(group_kwh: npt.NDArray[np.float64], shape: npt.NDArray[np.float64], horizon: int) -> float:
    return float(_profile(group_kwh, shape, horizon).max(initial=0.0))
