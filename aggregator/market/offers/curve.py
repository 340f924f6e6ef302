"""An energy offer's price-quantity curve per interval, from what each kW costs the customers (pure, no ORM).

Cost blocks
    Each member device is a block: its kW and, per interval, what a MWh taken from it costs ($/MWh):

    - stored energy (batteries with a plan): the plan's value of a stored kWh, averaged over the interval's steps,
      divided by the discharge half of the round trip (sqrt of the round-trip efficiency): a kWh at the meter
      draws 1/sqrt(eff) kWh from store. Devices without a plan cost nothing to take.
    - the payout rule of the program's settlement terms, net of the platform's fee to the customer:
      * revenue_share s %: the customer receives s (1 - fee) of the price, so the price that makes the customer
        whole is stored / (s (1 - fee)); with s = 0 it is the stored cost itself;
      * per_kwh r $/kWh: the aggregator pays 1000 r $/MWh whatever the price: the price is max(1000 r, stored);
      * per_event E $: spread over a typical event's energy, 1000 E / (kw * event hours) $/MWh, or the stored
        cost if higher.
    - opt-out risk: a device that opted out of a share q of the events it was allocated delivers (1 - q) of what
      is counted on, so its price is divided by (1 - q) (q at most 0.9).

The curve
    `build_curve`: sort blocks by cost (stable); cap the cumulative kW at the forecast's chosen quantile (the
    cheapest kW is kept); price each block at min(max(cost, NBT), cap) and then at least the floor (NBT only for
    demand response, where Order 745 pays nothing below it); prices are rounded to cents and kW to watts; blocks
    of one price are coalesced; while more than the market's segment limit remain, the adjacent pair with the
    smallest price gap is merged into one segment at their kW-weighted price (the first such pair on a tie). A
    weighted price lies between its two neighbours' prices, so the curve stays non-decreasing, inside [floor, cap]
    and at or above the NBT price throughout.

Segments are [[kw, price_per_mwh], ...]: each segment's incremental kW at its price, prices non-decreasing.
`validate_curve` checks an operator's edit against the same rules and names the field of each problem.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aggregator.core.errors import Problem

FloatArray = npt.NDArray[np.float64]

KW_DECIMALS = 3
PRICE_DECIMALS = 2
MAX_OPT_OUT_RATE = 0.9
# kW a curve may exceed its quantile limit by (rounding of 3-decimal kW).
KW_TOLERANCE = 0.0005


@dataclass(frozen=True)
class PriceRules:
    """A market's price rules for one offer interval: floor, cap, segment limit, and the net-benefits price that
    applies to demand response (None when the resource is not demand response or the month has none)."""

    floor: float
    cap: float
    max_segments: int
    nbt: float | None = None

    def price_of(self, cost: float) -> float:
        price = cost if self.nbt is None else max(cost, self.nbt)
        return max(min(price, self.cap), self.floor)


@dataclass(frozen=True)
class Payout:
    """What the program pays customers (settlement terms): rule revenue_share (%), per_kwh ($/kWh) or per_event ($),
    the platform's fee off each payout (%), and the event length per-event payouts are spread over (hours)."""

    rule: str
    value: float
    fee_pct: float = 0.0
    event_hours: float = 4.0


def device_costs(
    *,
    kw: FloatArray,
    stored_value_per_kwh: FloatArray,
    round_trip_efficiency: FloatArray,
    opt_out_rate: FloatArray,
    payout: Payout,
) -> FloatArray:
    """$/MWh of taking each device's energy per interval: shape (devices, intervals).

    `stored_value_per_kwh` is (devices, intervals), NaN where a device has no plan; `round_trip_efficiency` is a
    fraction per device (NaN or <= 0: lossless); `opt_out_rate` a fraction per device.
    """
    stored = np.nan_to_num(np.asarray(stored_value_per_kwh, dtype=float), nan=0.0) * 1000.0
    efficiency = np.asarray(round_trip_efficiency, dtype=float)
    efficiency = np.where(np.isfinite(efficiency) & (efficiency > 0), np.minimum(efficiency, 1.0), 1.0)
    stored = np.maximum(stored, 0.0) / np.sqrt(efficiency)[:, None]
    net = 1.0 - payout.fee_pct / 100.0
    if payout.rule == "revenue_share":
        share = payout.value / 100.0 * net
        cost = stored / share if share > 0 else stored
    elif payout.rule == "per_kwh":
        cost = np.maximum(stored, payout.value * 1000.0)
    elif payout.rule == "per_event":
        kwh = np.asarray(kw, dtype=float) * payout.event_hours
        per_mwh = np.where(kwh > 0, payout.value * 1000.0 / np.where(kwh > 0, kwh, 1.0), 0.0)
        cost = np.maximum(stored, per_mwh[:, None])
    else:
        raise ValueError(f"unknown payout rule {payout.rule!r}")
    risk = np.clip(np.nan_to_num(np.asarray(opt_out_rate, dtype=float), nan=0.0), 0.0, MAX_OPT_OUT_RATE)
    result: FloatArray = cost / (1.0 - risk)[:, None]
    return result


def build_curve(
    kw: Sequence[float] | FloatArray, cost: Sequence[float] | FloatArray, *, limit_kw: float, rules: PriceRules
) -> list[list[float]]:
    """One interval's segments from cost blocks (kW, $/MWh), capped at `limit_kw` (the forecast quantile)."""
    costs = np.asarray(cost, dtype=float).reshape(-1, 1)
    return build_curves(np.asarray(kw, dtype=float), costs, limit_kw=np.array([limit_kw]), rules=[rules])[0]


def _merged(kws: list[float], prices: list[float], limit: int) -> list[list[float]]:
    """Coalesce equal prices, then merge the closest adjacent pair (kW-weighted) until at most `limit` remain."""
    out_kw: list[float] = []
    out_price: list[float] = []
    for q, p in zip(kws, prices, strict=True):
        if q <= 0:
            continue
        if out_price and out_price[-1] == p:
            out_kw[-1] += q
        else:
            out_kw.append(q)
            out_price.append(p)
    while len(out_kw) > limit:
        gaps = [out_price[i + 1] - out_price[i] for i in range(len(out_price) - 1)]
        i = gaps.index(min(gaps))
        total = out_kw[i] + out_kw[i + 1]
        out_price[i] = (out_kw[i] * out_price[i] + out_kw[i + 1] * out_price[i + 1]) / total
        out_kw[i] = total
        del out_kw[i + 1], out_price[i + 1]
    curve = [[round(q, KW_DECIMALS), round(p, PRICE_DECIMALS)] for q, p in zip(out_kw, out_price, strict=True)]
    return [segment for segment in curve if segment[0] > 0]


def build_curves(
    kw: FloatArray, cost: FloatArray, *, limit_kw: FloatArray, rules: Sequence[PriceRules]
) -> list[list[list[float]]]:
    """Curves for every interval: `kw` is (devices,) or (devices, intervals), `cost` (devices, intervals),
    `limit_kw` and `rules` one per interval. Sorting, capping and pricing run over all intervals at once."""
    costs = np.asarray(cost, dtype=float)
    if costs.ndim != 2:
        raise ValueError("cost must be (devices, intervals)")
    quantities = np.asarray(kw, dtype=float)
    quantities = np.array(np.broadcast_to(quantities[:, None] if quantities.ndim == 1 else quantities, costs.shape))
    usable = (quantities > 0) & np.isfinite(costs) & np.isfinite(quantities)
    quantities = np.where(usable, quantities, 0.0)
    order = np.argsort(np.where(usable, costs, np.inf), axis=0, kind="stable")
    quantities = np.take_along_axis(quantities, order, axis=0)
    costs = np.take_along_axis(np.where(usable, costs, 0.0), order, axis=0)
    limits = np.maximum(np.nan_to_num(np.asarray(limit_kw, dtype=float), nan=0.0), 0.0)
    before = np.cumsum(quantities, axis=0) - quantities
    quantities = np.clip(limits[None, :] - before, 0.0, quantities)
    nbt = np.array([-np.inf if r.nbt is None else r.nbt for r in rules])
    cap = np.array([r.cap for r in rules])
    floor = np.array([r.floor for r in rules])
    prices = np.round(
        np.maximum(np.minimum(np.maximum(costs, nbt[None, :]), cap[None, :]), floor[None, :]), PRICE_DECIMALS
    )
    kw_columns = quantities.T.tolist()
    price_columns = prices.T.tolist()
    return [_merged(kw_columns[t], price_columns[t], max(int(rules[t].max_segments), 1)) for t in range(costs.shape[1])]


def curve_kw(segments: Sequence[Sequence[float]]) -> float:
    return round(sum(float(s[0]) for s in segments), KW_DECIMALS)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def validate_curve(
    segments: object,
    *,
    limit_kw: float,
    rules: PriceRules,
    min_kw: float = 0.0,
    field: str = "segments",
    min_kw_field: str = "min_kw",
) -> list[Problem]:
    """Problems of an operator's curve (empty when it is valid): pairs of positive kW and finite prices, at most
    the segment limit, prices non-decreasing, inside [floor, cap], at or above the NBT price (demand response),
    the total at most the forecast quantile, and min_kw at most the curve's total."""
    problems: list[Problem] = []
    if not isinstance(segments, (list, tuple)):
        return [Problem("invalid", "A list of [kw, price_per_mwh] pairs.", field)]
    if len(segments) > rules.max_segments:
        problems.append(
            Problem(
                "too_many_segments",
                f"{len(segments)} segments; the market takes at most {rules.max_segments}.",
                field,
            )
        )
    pairs: list[tuple[float, float]] = []
    for i, segment in enumerate(segments):
        where = f"{field}[{i}]"
        if not isinstance(segment, (list, tuple)) or len(segment) != 2:
            problems.append(Problem("invalid", "A [kw, price_per_mwh] pair.", where))
            continue
        quantity, price = _number(segment[0]), _number(segment[1])
        if quantity is None or quantity <= 0:
            problems.append(Problem("invalid_kw", "A segment's kW must be a number above 0.", f"{where}[0]"))
            continue
        if price is None:
            problems.append(Problem("invalid_price", "A segment's price must be a number ($/MWh).", f"{where}[1]"))
            continue
        if price < rules.floor:
            problems.append(
                Problem(
                    "below_floor", f"{price:g} $/MWh is below the market's floor of {rules.floor:g}.", f"{where}[1]"
                )
            )
        if price > rules.cap:
            problems.append(
                Problem("above_cap", f"{price:g} $/MWh is above the market's cap of {rules.cap:g}.", f"{where}[1]")
            )
        if rules.nbt is not None and price < rules.nbt:
            problems.append(
                Problem(
                    "below_net_benefits_price",
                    f"{price:g} $/MWh is below the month's net-benefits price of {rules.nbt:g}: demand response is "
                    "not paid below it (Order 745).",
                    f"{where}[1]",
                )
            )
        if pairs and price < pairs[-1][1]:
            problems.append(
                Problem(
                    "not_monotone",
                    f"Prices must not decrease: {price:g} follows {pairs[-1][1]:g}.",
                    f"{where}[1]",
                )
            )
        pairs.append((quantity, price))
    total = sum(q for q, _ in pairs)
    if total > limit_kw + KW_TOLERANCE:
        problems.append(
            Problem(
                "above_forecast_quantile",
                f"{total:g} kW offered; the forecast quantile allows at most {max(limit_kw, 0.0):g} kW.",
                field,
            )
        )
    if min_kw < 0:
        problems.append(Problem("invalid_kw", "min_kw must not be negative.", min_kw_field))
    elif min_kw > total + KW_TOLERANCE:
        problems.append(Problem("min_above_max", f"min_kw {min_kw:g} is above the curve's {total:g} kW.", min_kw_field))
    return problems
