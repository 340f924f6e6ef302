"""Next-day battery schedules that minimise a site's own bill, as linear programs solved by HiGHS.

For each site, over the next day's intervals t (length dt hours), with its batteries b:

    minimise   sum_t dt (price_t g_t - credit_t x_t) + sum_k demand_price_k D_k
    subject to g_t - x_t = load_t + sum_b (c_bt - d_bt)                    (the site meter)
               e_bt = e_b,t-1 + eff_b dt c_bt - dt d_bt / eff_b           (state of energy; e_b,-1 = now)
               g_t <= D_k for t in demand window k,   D_k >= floor_k      (the month's peak so far)
               0 <= c_bt <= charge_kw,  0 <= d_bt <= power_kw
               reserve_b <= e_bt <= energy_kwh,    e_b,T-1 >= end_b
               e_bt = energy_kwh where a storm watch holds it full (once it can be)
               sum_b c_bt <= surplus_t over batteries that charge from solar only
               x_t <= surplus_t where the tariff lets no stored energy be exported
               0 <= g_t <= G_t,  0 <= x_t <= X_t                             (what the site can draw / send)
               g_t <= G_t u_t,  x_t <= X_t (1 - u_t),  u_t in {0, 1}        (where credit_t > price_t)

`load` is the forecast site load net of solar (kW; negative when solar exports; surplus_t = max(-load_t, 0)); the
tariff gives import prices, export credits and demand charges (aggregator.reference.tariffs).
Demand charges are monthly, so today's demand costs only what it adds above the
month's peak so far: D_k's lower bound is that peak. eff is the square root of the
round-trip efficiency. G_t and X_t are the most the site can import (its load, every battery and car charging)
and export (its solar, every battery discharging): with them and the meter's single net flow, the LP is bounded
even where an export credit exceeds the import price. There, and only there, cost is no longer convex in the net
flow (a free import-and-export loop would earn the difference), so a binary u_t says which way the meter turns;
the mixed-integer program is solved first and then its LP with u fixed, for the energy rows' dual prices. The
backup reserve is a hard lower bound on the state of energy
(a battery found below it may only climb back, as fast as it can charge); the day must
end no emptier than it began, so the plan does not sell tomorrow's energy. A few
sites' programs are stacked block-diagonally into one LP (plan_batch): it pays the
Python set-up once per batch, while HiGHS's time grows faster than the problem, so
batches stay small (dispatch.schedules uses 20 sites): about 3 ms per 96-interval site. A batch that fails
(a car owed more than its charger can give, say) is solved again site by site (plan_each), so one site's
failure is that site's alone.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linprog
from scipy.sparse import coo_array


@dataclass
class Battery:
    power_kw: float
    charge_kw: float
    energy_kwh: float
    reserve_kwh: float
    soc_kwh: float
    round_trip: float = 0.9
    hold_full: np.ndarray | None = None  # bool per interval: keep it full (a storm watch), as far as it can charge
    solar_only: bool = False  # it charges only from the site's solar surplus, never from the grid


@dataclass
class Ev:
    """A flexible EV charging session (plugged from an evening hour to a ready-by hour the next morning).

    In a day's plan it may charge in the morning part (before ready-by: the session that began the evening
    before) and in the evening part (after plug-in: tonight's session), at up to `power_kw`."""

    power_kw: float
    morning: np.ndarray  # bool per interval
    evening: np.ndarray  # bool per interval
    morning_kwh: float  # still owed by ready-by this morning
    evening_kwh: float  # owed tonight already: what tomorrow morning alone could not fit
    evening_max_kwh: float  # tonight's session at most


@dataclass
class Demand:
    price_per_kw: float
    window: np.ndarray  # bool per interval
    floor_kw: float = 0.0


@dataclass
class SiteDay:
    load_kw: np.ndarray  # forecast net of solar, per interval
    import_price: np.ndarray  # $/kWh per interval
    export_credit: np.ndarray  # $/kWh per interval
    step_hours: float
    batteries: list[Battery]
    demand: list[Demand] = field(default_factory=list)
    evs: list[Ev] = field(default_factory=list)
    storage_may_export: bool = True  # False (the tariff's storage integrity rule): only solar surplus is exported


@dataclass
class SitePlan:
    battery_kw: list[np.ndarray]  # per battery: + discharge / - charge, kW per interval
    energy_kwh: list[np.ndarray]  # per battery: state of energy at each interval's end
    import_kw: np.ndarray
    export_kw: np.ndarray
    cost: float
    value_per_kwh: list[np.ndarray]  # per battery: what a kWh stored at each interval's end is worth to the site's bill
    ev_kw: list[np.ndarray] = field(default_factory=list)  # per EV: charging kW per interval (>= 0)


class PlanFailed(Exception):
    pass


# Sparse constraint triplets of a block: (rows, cols, values, right-hand sides, number of rows).
Triplets = tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.float64], npt.NDArray[np.float64], int]


def _block(
    day: SiteDay,
) -> tuple[
    Triplets, Triplets, npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int8]
]:
    """The site's program as sparse triplets: (eq rows, cols, vals, rhs), (ub ...), cost, lower, upper, and which
    columns are binary (the meter's direction where export pays more than import)."""
    T, B, K, V, dt = len(day.load_kw), len(day.batteries), len(day.demand), len(day.evs), day.step_hours
    t = np.arange(T)
    n = 3 * B * T + 2 * T + K + V * T
    col_p = lambda v: 3 * B * T + 2 * T + K + v * T + t  # noqa: E731
    col_c = lambda b: b * T + t  # noqa: E731
    col_d = lambda b: (B + b) * T + t  # noqa: E731
    col_e = lambda b: (2 * B + b) * T + t  # noqa: E731
    col_g, col_x = 3 * B * T + t, 3 * B * T + T + t
    eq_r, eq_c, eq_v = [t, t], [col_g, col_x], [np.ones(T), -np.ones(T)]
    eq_b = [day.load_kw.astype(float)]
    lo, hi = np.zeros(n), np.full(n, np.inf)
    ub_r, ub_c, ub_v, ub_b = [], [], [], []
    ub_rows = 0
    for b, battery in enumerate(day.batteries):
        eff = max(battery.round_trip, 1e-3) ** 0.5
        eq_r += [t, t]
        eq_c += [col_c(b), col_d(b)]
        eq_v += [-np.ones(T), np.ones(T)]
        rows = T + b * T + t
        eq_r += [rows, rows, rows, rows[1:]]
        eq_c += [col_e(b), col_c(b), col_d(b), col_e(b)[:-1]]
        eq_v += [np.ones(T), np.full(T, -eff * dt), np.full(T, dt / eff), -np.ones(T - 1)]
        rhs = np.zeros(T)
        rhs[0] = battery.soc_kwh
        eq_b.append(rhs)
        lo[col_c(b)], hi[col_c(b)] = 0, battery.charge_kw
        lo[col_d(b)], hi[col_d(b)] = 0, battery.power_kw
        reachable = battery.soc_kwh + eff * dt * battery.charge_kw * (t + 1)
        lo[col_e(b)] = np.minimum(battery.reserve_kwh, reachable)  # never below the reserve once above it
        hi[col_e(b)] = battery.energy_kwh
        if battery.hold_full is not None and battery.hold_full.any():
            held = col_e(b)[battery.hold_full]
            lo[held] = np.maximum(lo[held], np.minimum(battery.energy_kwh, reachable[battery.hold_full]))
        end = min(max(battery.soc_kwh, battery.reserve_kwh), reachable[-1], battery.energy_kwh)
        lo[col_e(b)[-1]] = max(lo[col_e(b)[-1]], end)
    for k, demand in enumerate(day.demand):
        window = np.flatnonzero(demand.window)
        rows = ub_rows + np.arange(len(window))
        ub_r += [rows, rows]
        ub_c += [col_g[window], np.full(len(window), 3 * B * T + 2 * T + k)]
        ub_v += [np.ones(len(window)), -np.ones(len(window))]
        ub_b.append(np.zeros(len(window)))
        ub_rows += len(window)
        lo[3 * B * T + 2 * T + k] = demand.floor_kw
    for v, ev in enumerate(day.evs):
        eq_r.append(t)
        eq_c.append(col_p(v))
        eq_v.append(-np.ones(T))  # charging adds to the site's import
        hi[col_p(v)] = np.where(ev.morning | ev.evening, ev.power_kw, 0.0)
        for mask, owed in ((ev.morning, -ev.morning_kwh), (ev.evening, -ev.evening_kwh)):  # at least what is owed
            cols = col_p(v)[mask]
            ub_r.append(np.full(len(cols), ub_rows))
            ub_c.append(cols)
            ub_v.append(np.full(len(cols), -dt))
            ub_b.append(np.array([owed]))
            ub_rows += 1
        cols = col_p(v)[ev.evening]  # and tonight no more than the whole session
        ub_r.append(np.full(len(cols), ub_rows))
        ub_c.append(cols)
        ub_v.append(np.full(len(cols), dt))
        ub_b.append(np.array([ev.evening_max_kwh]))
        ub_rows += 1
    # The most the meter can see either way, and which way it turns where export pays more than import costs.
    max_import = np.maximum(day.load_kw, 0) + sum((b.charge_kw for b in day.batteries), 0.0)
    for ev in day.evs:
        max_import = max_import + np.where(ev.morning | ev.evening, ev.power_kw, 0.0)
    max_export = np.maximum(-day.load_kw, 0) + sum((b.power_kw for b in day.batteries), 0.0)
    hi[col_g], hi[col_x] = max_import, max_export
    surplus = np.maximum(-day.load_kw, 0)
    if not day.storage_may_export:  # batteries serve the site's load; only its solar surplus goes out
        hi[col_x] = np.minimum(hi[col_x], surplus)
    solar_only = [b for b, battery in enumerate(day.batteries) if battery.solar_only]
    if solar_only:  # what they charge together is at most the solar surplus
        rows = ub_rows + t
        for b in solar_only:
            ub_r.append(rows)
            ub_c.append(col_c(b))
            ub_v.append(np.ones(T))
        ub_b.append(surplus.astype(float))
        ub_rows += T
    turns = np.flatnonzero(day.export_credit > day.import_price)
    col_u = n + np.arange(len(turns))
    n += len(turns)
    lo, hi = np.concatenate([lo, np.zeros(len(turns))]), np.concatenate([hi, np.ones(len(turns))])
    if len(turns):
        rows = ub_rows + np.arange(len(turns))
        ub_r += [rows, rows, rows + len(turns), rows + len(turns)]
        ub_c += [col_g[turns], col_u, col_x[turns], col_u]
        ub_v += [np.ones(len(turns)), -max_import[turns], np.ones(len(turns)), max_export[turns]]
        ub_b += [np.zeros(len(turns)), max_export[turns]]
        ub_rows += 2 * len(turns)
    cost = np.zeros(n)
    cost[col_g] = dt * day.import_price
    cost[col_x] = -dt * day.export_credit
    cost[3 * B * T + 2 * T : 3 * B * T + 2 * T + K] = [d.price_per_kw for d in day.demand]
    integer = np.zeros(n, dtype=np.int8)
    integer[col_u] = 1
    cat = lambda parts, dtype=float: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
    return (
        (cat(eq_r, int), cat(eq_c, int), cat(eq_v), cat(eq_b), T + B * T),
        (cat(ub_r, int), cat(ub_c, int), cat(ub_v), cat(ub_b), ub_rows),
        cost,
        lo,
        hi,
        integer,
    )


def plan_batch(days: list[SiteDay]) -> list[SitePlan]:
    """Solve every site's day in one LP (block-diagonal); PlanFailed if HiGHS finds no optimum."""
    blocks = [_block(day) for day in days]
    eq: tuple[list[npt.NDArray[np.generic]], ...] = ([], [], [], [])  # rows, cols, values, right-hand sides
    ub: tuple[list[npt.NDArray[np.generic]], ...] = ([], [], [], [])
    costs: list[npt.NDArray[np.float64]] = []
    los: list[npt.NDArray[np.float64]] = []
    his: list[npt.NDArray[np.float64]] = []
    col_offsets: list[int] = []
    eq_rows, ub_rows, cols = 0, 0, 0
    integers: list[npt.NDArray[np.int8]] = []
    for (eq_r, eq_c, eq_v, eq_b, n_eq), (ub_r, ub_c, ub_v, ub_b, n_ub), cost, lo, hi, integer in blocks:
        n = len(cost)
        integers.append(integer)
        for part, value in zip(eq, (eq_r + eq_rows, eq_c + cols, eq_v, eq_b)):
            part.append(value)
        for part, value in zip(ub, (ub_r + ub_rows, ub_c + cols, ub_v, ub_b)):
            part.append(value)
        costs.append(cost)
        los.append(lo)
        his.append(hi)
        col_offsets.append(cols)
        eq_rows, ub_rows, cols = eq_rows + n_eq, ub_rows + n_ub, cols + n
    a_eq = coo_array(
        (np.concatenate(eq[2]), (np.concatenate(eq[0]), np.concatenate(eq[1]))), shape=(eq_rows, cols)
    ).tocsr()
    a_ub = (
        coo_array(
            (np.concatenate(ub[2]), (np.concatenate(ub[0]), np.concatenate(ub[1]))), shape=(ub_rows, cols)
        ).tocsr()
        if ub_rows
        else None
    )
    program: dict[str, Any] = {
        "A_ub": a_ub,
        "b_ub": np.concatenate(ub[3]) if ub_rows else None,
        "A_eq": a_eq,
        "b_eq": np.concatenate(eq[3]),
        "method": "highs",
    }
    objective, lower, upper = np.concatenate(costs), np.concatenate(los), np.concatenate(his)
    binary = np.concatenate(integers).astype(bool)
    if binary.any():  # the meter's direction first, then the LP with it fixed, for the dual prices
        result = linprog(objective, bounds=np.column_stack([lower, upper]), integrality=binary, **program)
        if result.status != 0:
            raise PlanFailed(result.message)
        lower, upper = lower.copy(), upper.copy()
        lower[binary] = upper[binary] = np.round(result.x[binary])
    result = linprog(objective, bounds=np.column_stack([lower, upper]), **program)
    if result.status != 0:
        raise PlanFailed(result.message)
    plans = []
    duals = result.eqlin.marginals
    row = 0
    for day, offset, ((_, _, _, _, n_eq), _, cost, _, _, _) in zip(days, col_offsets, blocks):
        x = result.x[offset : offset + len(cost)]
        T, B = len(day.load_kw), len(day.batteries)
        # The energy rows' duals: d(cost)/d(one more kWh in store at t), negated into a value ($/kWh).
        energy_duals = -duals[row + T : row + T + B * T]
        row += n_eq
        g, xp = x[3 * B * T : 3 * B * T + T], x[3 * B * T + T : 3 * B * T + 2 * T]
        plans.append(
            SitePlan(
                battery_kw=[x[(B + b) * T : (B + b + 1) * T] - x[b * T : (b + 1) * T] for b in range(B)],
                energy_kwh=[x[(2 * B + b) * T : (2 * B + b + 1) * T] for b in range(B)],
                import_kw=g,
                export_kw=xp,
                cost=float(cost @ x),
                value_per_kwh=[np.maximum(energy_duals[b * T : (b + 1) * T], 0.0) for b in range(B)],
                ev_kw=[
                    x[3 * B * T + 2 * T + len(day.demand) + v * T : 3 * B * T + 2 * T + len(day.demand) + (v + 1) * T]
                    for v in range(len(day.evs))
                ],
            )
        )
    return plans


def plan_each(days: list[SiteDay]) -> list[SitePlan | PlanFailed]:
    """plan_batch, except that a failed batch is solved again day by day: each day gets its plan, or the
    PlanFailed that is its own."""
    try:
        return list(plan_batch(days))
    except PlanFailed:
        pass
    out: list[SitePlan | PlanFailed] = []
    for day in days:
        try:
            out.append(plan_batch([day])[0])
        except PlanFailed as failed:
            out.append(failed)
    return out


def day_cost(day: SiteDay, battery_kw: np.ndarray, ev_kw: np.ndarray | None = None) -> float:
    """What the day costs the customer with the batteries' net output `battery_kw` (+ discharge) and the EVs'
    charging `ev_kw`, by the LP's own objective: energy at the import price, export credit, demand above the
    month's peak so far."""
    net = day.load_kw - battery_kw + (0.0 if ev_kw is None else ev_kw)
    imported, exported = np.maximum(net, 0), np.maximum(-net, 0)
    cost = day.step_hours * float(day.import_price @ imported - day.export_credit @ exported)
    for demand in day.demand:
        peak = float(imported[demand.window].max(initial=0.0))
        cost += demand.price_per_kw * max(peak, demand.floor_kw)
    return cost
