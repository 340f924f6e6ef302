"""Money: Decimal dollars, and the one rounding rule.

Amounts are computed exactly in Decimal from interval energy (kWh) and prices ($/MWh,
$/kW); nothing is rounded per interval. A statement line (one payment, penalty, fee or
payout) is rounded once, to the cent, half up, and totals are sums of rounded lines, so
every statement adds up as printed. Half up rather than half even: people check their
statements line by line by hand and expect half up; the bias is at most half a cent per
line. Where one rounded amount is split among many (a resource's revenue among its
customers), `split` hands out the leftover cents by largest remainder so the parts add
up to the whole exactly.
"""

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

CURRENCY = "USD"
CENT = Decimal("0.01")


def cents(amount: Decimal) -> Decimal:
    """The amount as a statement line: rounded to the cent, half up."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def split(total: Decimal, weights: dict) -> dict:
    """`total` (already in cents) shared by weight, each part in cents, the parts summing to `total` exactly.

    Parts are floored to the cent, then the cents left over go one each to the largest
    remainders (ties to the first key in order), so no cent is created or lost.
    """
    total = cents(total)
    positive = {k: Decimal(w) for k, w in weights.items() if Decimal(w) > 0}
    whole = sum(positive.values(), Decimal(0))
    if not positive or whole == 0:
        return {k: Decimal("0.00") for k in weights}
    exact = {k: total * w / whole for k, w in positive.items()}
    parts = {k: v.quantize(CENT, rounding=ROUND_DOWN) for k, v in exact.items()}
    left = int((total - sum(parts.values(), Decimal(0))) / CENT)
    for k in sorted(exact, key=lambda k: exact[k] - parts[k], reverse=True)[:left]:
        parts[k] += CENT
    return {k: parts.get(k, Decimal("0.00")) for k in weights}
