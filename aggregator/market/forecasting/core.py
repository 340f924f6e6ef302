"""The learned flexibility forecast's numeric core: plain arrays in, arrays out (no ORM; type-checked).

Every series here lives on one hour axis: UTC hour starts as epoch seconds, the history before the issue
instant followed by the hours forecast. A load group's value on the axis is its load factor (kWh read / rated kWh
covered by the readings), NaN where the rollup has no hour; the services turn load factors into kW with the
group's current scale (its members' rated kW x delivery ratio).

- `calendar`: local hour, day type (weekday; weekend or holiday), month and hour of week of each instant.
- `fit_load`: the ridge fit of a load group (thermostats, water heaters, controllable loads): load factor on
  local hour x day type (48 cells), cooling and heating degree hours by 6-hour block (base 65 °F) when a
  temperature is known for at least half the hours, and month terms when at least two months have 14 days of
  history each. The target is centred on its mean, so the penalty shrinks sparse cells towards the group's
  mean, not towards zero.
- `fit_profile`: EV chargers: the load factor their per-charger hour-of-week profiles predict (no fit; the
  profile is the estimate), with its residuals against what the group read.
- `quantile_offsets`: empirical P10/P50/P90 of a resource's residual total, per local 6-hour block (all hours
  when a block has too few), inflated for the fit's in-sample optimism.
- `first_available`, `blend_real_time`, `plan_headroom_kw`, `score`: persistence, the real-time blend, a
  battery's headroom along its plan, and the backtest's scores.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

BALANCE_F = 65.0
BLOCK_HOURS = 6
BLOCKS = 24 // BLOCK_HOURS
CELLS = 48  # local hour x day type
RIDGE = 0.1
MIN_MONTH_HOURS = 14 * 24
MIN_TEMPERATURE_SHARE = 0.5
MIN_BLOCK_RESIDUALS = 24
QUANTILES = (0.1, 0.5, 0.9)
REAL_TIME_TAU_MINUTES = 30.0
DEFAULT_DISCHARGE_EFFICIENCY = 0.95


@dataclass(frozen=True)
class Calendar:
    hour: Ints  # local hour 0-23
    day_type: Ints  # 0 weekday, 1 weekend or holiday
    month: Ints  # 0-11
    how: Ints  # hour of week, Monday 00:00 = 0 (holidays keep their weekday)

    def __len__(self) -> int:
        return len(self.hour)

    def take(self, index: npt.NDArray[np.bool_] | Ints) -> "Calendar":
        return Calendar(self.hour[index], self.day_type[index], self.month[index], self.how[index])

    @property
    def cell(self) -> Ints:
        return self.day_type * 24 + self.hour

    @property
    def block(self) -> Ints:
        return self.hour // BLOCK_HOURS


def calendar(epochs: Sequence[int] | Ints, time_zone: str, holidays: frozenset[date] = frozenset()) -> Calendar:
    """Local calendar features of each instant (epoch seconds) in `time_zone`; a DST day simply has 23 or 25
    hours, each with its own local hour (two instants share 01:00 on the autumn day)."""
    zone = ZoneInfo(time_zone)
    local = [datetime.fromtimestamp(int(e), UTC).astimezone(zone) for e in epochs]
    hour = np.array([t.hour for t in local], dtype=np.int64)
    weekday = np.array([t.weekday() for t in local], dtype=np.int64)
    off = np.array([t.weekday() >= 5 or t.date() in holidays for t in local], dtype=np.int64)
    month = np.array([t.month - 1 for t in local], dtype=np.int64)
    return Calendar(hour=hour, day_type=off, month=month, how=weekday * 24 + hour)


def fill_temperature(temperature: Floats) -> Floats:
    """Hours without a temperature take the same hour of the latest day before them that has one (diurnal
    persistence: what the forecast hours get when no temperature forecast was imported)."""
    out = temperature.astype(np.float64).copy()
    for i in np.flatnonzero(~np.isfinite(out)):
        j = i - 24
        while j >= 0 and not np.isfinite(out[j]):
            j -= 24
        if j >= 0:
            out[i] = out[j]
    return out


@dataclass(frozen=True)
class GroupFit:
    """A group's model over the whole axis: `fitted` (load factor, history and forecast hours) and its residuals
    on the history (NaN where the group read nothing)."""

    fitted: Floats
    residual: Floats
    parameters: int
    observations: int
    temperature: bool
    months: tuple[int, ...]


def _design(cal: Calendar, temperature: Floats | None, months: tuple[int, ...]) -> Floats:
    n = len(cal)
    columns = CELLS + (2 * BLOCKS if temperature is not None else 0) + len(months)
    x = np.zeros((n, columns))
    rows = np.arange(n)
    x[rows, cal.cell] = 1.0
    if temperature is not None:
        cooling = np.clip(temperature - BALANCE_F, 0, None)
        heating = np.clip(BALANCE_F - temperature, 0, None)
        x[rows, CELLS + cal.block] = cooling
        x[rows, CELLS + BLOCKS + cal.block] = heating
    for k, m in enumerate(months):
        x[:, columns - len(months) + k] = cal.month == m
    return x


def fit_load(y: Floats, cal: Calendar, temperature: Floats | None, history: int) -> GroupFit:
    """Ridge fit on the first `history` hours of the axis (those with a value); prediction over all of it.

    `temperature` (°F over the whole axis, forecast hours filled) is used when it is known for at least
    MIN_TEMPERATURE_SHARE of the observed hours; the forecast hours still missing one take the mean degree
    hours of their block.
    """
    n_axis = len(y)
    seen = np.zeros(n_axis, dtype=bool)
    seen[:history] = np.isfinite(y[:history])
    use_temperature = False
    if temperature is not None and seen.any():
        known = np.isfinite(temperature) & seen
        use_temperature = known.sum() >= MIN_TEMPERATURE_SHARE * seen.sum()
        if use_temperature:
            seen &= np.isfinite(temperature)
    if not seen.any():
        empty = np.full(n_axis, np.nan)
        return GroupFit(empty, empty.copy(), 0, 0, False, ())
    month_hours = np.bincount(cal.month[seen], minlength=12)
    months = tuple(int(m) for m in np.flatnonzero(month_hours >= MIN_MONTH_HOURS))
    months = months if len(months) >= 2 else ()
    temps: Floats | None = None
    if use_temperature and temperature is not None:
        temps = temperature.astype(np.float64).copy()
        missing = ~np.isfinite(temps)
        if missing.any():
            mean_by_block = np.array(
                [np.nanmean(np.where(cal.block[seen] == b, temps[seen], np.nan)) for b in range(BLOCKS)]
            )
            fallback = np.where(np.isfinite(mean_by_block), mean_by_block, np.nanmean(temps[seen]))
            temps[missing] = fallback[cal.block[missing]]
    x_all = _design(cal, temps, months)
    x, target = x_all[seen], y[seen]
    mean = float(target.mean())
    a = x.T @ x + RIDGE * np.eye(x.shape[1])
    beta = np.linalg.solve(a, x.T @ (target - mean))
    fitted = x_all @ beta + mean
    residual = np.full(n_axis, np.nan)
    residual[seen] = target - fitted[seen]
    return GroupFit(fitted, residual, x.shape[1], int(seen.sum()), bool(use_temperature), months)


def fit_profile(y: Floats, predicted: Floats, history: int) -> GroupFit:
    """EV chargers: the load factor their hour-of-week profiles give over the axis (`predicted`), and its
    residuals against what the group read."""
    fitted = predicted.astype(np.float64)
    residual = np.full(len(y), np.nan)
    seen = np.isfinite(y[:history])
    residual[:history][seen] = y[:history][seen] - fitted[:history][seen]
    return GroupFit(fitted, residual, 0, int(seen.sum()), False, ())


def quantile_offsets(residual: Floats, block: Ints, parameters: int = 0) -> Floats:
    """(BLOCKS, 3): the P10, P50 and P90 of the residuals per local 6-hour block (all hours' where a block has
    fewer than MIN_BLOCK_RESIDUALS), inflated by sqrt(n / (n - parameters)); zeros without residuals."""
    ok = np.isfinite(residual)
    out = np.zeros((BLOCKS, 3))
    n = int(ok.sum())
    if not n:
        return out
    inflate = float(np.sqrt(n / max(n - parameters, 1))) if parameters < n else 2.0
    overall = np.quantile(residual[ok], QUANTILES)
    for b in range(BLOCKS):
        in_block = ok & (block == b)
        out[b] = np.quantile(residual[in_block], QUANTILES) if in_block.sum() >= MIN_BLOCK_RESIDUALS else overall
    return out * inflate


def band(expected: Floats, offsets: Floats, block: Ints, spread: Floats | float = 1.0) -> tuple[Floats, Floats, Floats]:
    """P10, P50, P90 around `expected` (kW): its block's offsets x `spread`, never below 0, in order."""
    widths = offsets[block] * np.asarray(spread, dtype=np.float64).reshape(-1, 1)
    quantiles = np.clip(expected[:, None] + widths, 0, None)
    p10, p50, p90 = quantiles[:, 0], quantiles[:, 1], quantiles[:, 2]
    p10 = np.minimum(p10, p50)
    p90 = np.maximum(p90, p50)
    return p10, p50, p90


def first_available(values: Floats, candidates: Ints) -> Floats:
    """Per row of `candidates` (axis indices, most preferred first, -1 for none), the first with a value."""
    out = np.full(candidates.shape[0], np.nan)
    for column in range(candidates.shape[1]):
        index = candidates[:, column]
        take = ~np.isfinite(out) & (index >= 0)
        if not take.any():
            continue
        picked = values[index[take]]
        out[take] = picked
    return out


def blend_real_time(model_kw: Floats, minutes_ahead: Floats, measured_now_kw: float, model_now_kw: float) -> Floats:
    """The hourly model at each real-time interval, moved by what the members measure now against what the model
    says for now; the measured departure fades as exp(-minutes ahead / 30): 0.85 of it 5 minutes out, 0.14 at one
    hour, 0.02 at two."""
    weight = np.exp(-np.asarray(minutes_ahead, dtype=np.float64) / REAL_TIME_TAU_MINUTES)
    return np.clip(model_kw + weight * (measured_now_kw - model_now_kw), 0, None)


def real_time_spread(minutes_ahead: Floats) -> Floats:
    """The hourly band's width at a real-time interval: half of it where the measurement holds, all of it as the
    measurement's weight fades."""
    return 1.0 - 0.5 * np.exp(-np.asarray(minutes_ahead, dtype=np.float64) / REAL_TIME_TAU_MINUTES)


def plan_headroom_kw(
    energy_kwh: Floats, reserve_kwh: Floats, rated_kw: Floats, round_trip_pct: Floats, event_hours: Floats | float
) -> Floats:
    """What a battery can discharge over an event starting when its plan holds `energy_kwh`: the energy above its
    reserve, through the discharge efficiency, over the event's hours, capped at its rated kW."""
    efficiency = np.where(
        np.isfinite(round_trip_pct), np.sqrt(np.clip(round_trip_pct, 1, 100) / 100.0), DEFAULT_DISCHARGE_EFFICIENCY
    )
    usable = np.clip(energy_kwh - reserve_kwh, 0, None) * efficiency
    return np.minimum(np.nan_to_num(rated_kw), usable / np.asarray(event_hours, dtype=np.float64))


@dataclass(frozen=True)
class Scores:
    intervals: int
    mape_pct: float
    bias_kw: float
    pinball_kw: float


def pinball(actual: Floats, quantiles: Floats) -> Floats:
    """Mean pinball loss over QUANTILES per interval; `quantiles` is (intervals, 3)."""
    levels = np.array(QUANTILES)
    diff = actual[:, None] - quantiles
    return np.mean(np.maximum(levels * diff, (levels - 1) * diff), axis=1)


def score(actual: Floats, expected: Floats, quantiles: Floats) -> Scores:
    """MAPE (intervals with actual load above zero), bias (expected - actual) and mean pinball loss."""
    ok = np.isfinite(actual) & np.isfinite(expected)
    if not ok.any():
        return Scores(0, float("nan"), float("nan"), float("nan"))
    a, e, q = actual[ok], expected[ok], quantiles[ok]
    positive = a > 1e-9
    mape = float(np.mean(np.abs(e[positive] - a[positive]) / a[positive]) * 100) if positive.any() else float("nan")
    return Scores(int(ok.sum()), mape, float(np.mean(e - a)), float(np.mean(pinball(a, q))))
