"""What a virtual resource earns for an event, and what each customer is paid: pure functions over Decimal.

- Energy: sum over intervals of reduction MWh x the interval's price. A negative
  reduction (the site used more than its baseline) is 0 unless the program nets them.
- Performance factor: delivered kWh / committed kWh over the event, 4 decimals, capped at
  1 unless the program pays for over-delivery.
- Capacity: committed kW x rate ($/kW for the period) x performance factor.
- Shortfall penalty: when the factor is below 1, committed kW x (1 - factor) x penalty
  rate ($/kW).
- Customers: the program's sharing rule over what their sites delivered: a share of the
  resource's net revenue (split by delivered kWh), a rate per kWh delivered, or a fixed
  incentive per event for each customer who delivered anything; then the platform fee
  (a percentage) comes off each payout.
Rounding: see settlement.money (each line once, to the cent, half up).
"""

from dataclasses import dataclass
from decimal import Decimal

from settlement.money import cents, split

KWH_PER_MWH = Decimal(1000)
FACTOR = Decimal("0.0001")


def reduction_kwh(baseline_kwh: Decimal, actual_kwh: Decimal, *, net_negatives: bool) -> Decimal:
    reduction = Decimal(baseline_kwh) - Decimal(actual_kwh)
    return reduction if net_negatives or reduction > 0 else Decimal(0)


def energy_payment(reductions_kwh: list[Decimal], prices_per_mwh: list[Decimal]) -> Decimal:
    """Exact $ for the intervals' reductions at their prices (one price per reduction)."""
    if len(reductions_kwh) != len(prices_per_mwh):
        raise ValueError("one price per interval")
    return sum((Decimal(r) / KWH_PER_MWH * Decimal(p) for r, p in zip(reductions_kwh, prices_per_mwh)), Decimal(0))


def performance_factor(delivered_kwh: Decimal, committed_kwh: Decimal, *, cap_at_one: bool = True) -> Decimal:
    if committed_kwh <= 0:
        return Decimal(0)
    factor = max(Decimal(delivered_kwh), Decimal(0)) / Decimal(committed_kwh)
    if cap_at_one:
        factor = min(factor, Decimal(1))
    return factor.quantize(FACTOR)


def capacity_payment(committed_kw: Decimal, rate_per_kw: Decimal, factor: Decimal) -> Decimal:
    return Decimal(committed_kw) * Decimal(rate_per_kw) * Decimal(factor)


def shortfall_penalty(committed_kw: Decimal, penalty_per_kw: Decimal, factor: Decimal) -> Decimal:
    return Decimal(committed_kw) * Decimal(penalty_per_kw) * max(Decimal(1) - Decimal(factor), Decimal(0))


@dataclass(frozen=True)
class ResourceSettlement:
    energy: Decimal
    capacity: Decimal
    penalty: Decimal
    factor: Decimal

    @property
    def net(self) -> Decimal:
        return self.energy + self.capacity - self.penalty


def settle_resource(
    *,
    reductions_kwh: list[Decimal],
    prices_per_mwh: list[Decimal],
    committed_kw: Decimal,
    committed_kwh: Decimal,
    capacity_rate_per_kw: Decimal,
    penalty_per_kw: Decimal,
    cap_factor_at_one: bool = True,
) -> ResourceSettlement:
    """A resource's lines for one event, each rounded to the cent (reductions as netting already decided)."""
    factor = performance_factor(sum(reductions_kwh, Decimal(0)), committed_kwh, cap_at_one=cap_factor_at_one)
    return ResourceSettlement(
        energy=cents(energy_payment(reductions_kwh, prices_per_mwh)),
        capacity=cents(capacity_payment(committed_kw, capacity_rate_per_kw, factor)),
        penalty=cents(shortfall_penalty(committed_kw, penalty_per_kw, factor)),
        factor=factor,
    )


@dataclass(frozen=True)
class Payout:
    gross: Decimal
    fee: Decimal

    @property
    def net(self) -> Decimal:
        return self.gross - self.fee


def customer_payouts(
    *, rule: str, value: Decimal, delivered_kwh: dict, resource_net: Decimal, fee_pct: Decimal = Decimal(0)
) -> dict:
    """Customer -> Payout under the program's sharing rule.

    rule "revenue_share": `value` % of the resource's net revenue, split by delivered kWh
    (a resource that lost money pays its customers nothing); "per_kwh": `value` $ per kWh
    delivered; "per_event": `value` $ to each customer who delivered anything.
    """
    delivered = {k: max(Decimal(v), Decimal(0)) for k, v in delivered_kwh.items()}
    if rule == "revenue_share":
        pool = cents(max(Decimal(resource_net), Decimal(0)) * Decimal(value) / 100)
        gross = split(pool, delivered)
    elif rule == "per_kwh":
        gross = {k: cents(v * Decimal(value)) for k, v in delivered.items()}
    elif rule == "per_event":
        gross = {k: cents(Decimal(value)) if v > 0 else Decimal("0.00") for k, v in delivered.items()}
    else:
        raise ValueError(f"unknown sharing rule {rule!r}")
    return {k: Payout(gross=g, fee=cents(g * Decimal(fee_pct) / 100)) for k, g in gross.items()}
