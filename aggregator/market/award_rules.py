"""What an award may be, checked against the offer it answers, and what it asks of the resource as a schedule.

Plain values in, Problems out (no ORM): aggregator.market.awards feeds it the offer's intervals and the market's
rules. An awarded interval must be one of the offer's intervals (its start on the offer's grid, its end one
interval later); its kW at most what was offered there (and, unless zero, at least the offer's minimum); its price
at or above the offer curve's price at that quantity (a market clears an offer only at or above its price), within
the market's floor and cap, and, where the net-benefits test applies, at or above the month's threshold.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from aggregator.core.errors import Problem

KW = Decimal("0.001")
PRICE = Decimal("0.0001")


@dataclass(frozen=True)
class Offered:
    """One interval of the offer: its operating limits and its curve [(incremental kW, $/MWh), ...]."""

    min_kw: Decimal
    max_kw: Decimal
    segments: tuple[tuple[Decimal, Decimal], ...]


@dataclass(frozen=True)
class Awarded:
    start: datetime
    end: datetime
    kw: Decimal
    price_per_mwh: Decimal


@dataclass(frozen=True)
class Piece:
    """A stretch of a schedule at one kW: an event interval to be."""

    start: datetime
    end: datetime
    kw: Decimal


def curve_price_at(segments: tuple[tuple[Decimal, Decimal], ...], kw: Decimal) -> Decimal | None:
    """The offer curve's price at quantity `kw`: the price of the segment its last kW falls in (segments are
    incremental, in price order). None where the curve offers less than `kw`, or for zero."""
    if kw <= 0:
        return None
    total = Decimal(0)
    for quantity, price in segments:
        total += quantity
        if kw <= total:
            return price
    return None


def offered_kw(offered: Offered) -> Decimal:
    """All the interval offers: its maximum, or its curve's total where the curve stops short of it."""
    return min(offered.max_kw, sum((q for q, _ in offered.segments), Decimal(0)))


def interval_problems(
    *,
    index: int,
    awarded: Awarded,
    offered: Offered | None,
    interval: timedelta,
    floor: Decimal,
    cap: Decimal,
    net_benefits_price: Decimal | None,
) -> list[Problem]:
    """Why awarded interval `index` cannot stand against its offered interval (None: the offer has none there)."""
    at = f"intervals[{index}]"
    if offered is None:
        return [
            Problem(
                "not_offered",
                f"The offer has no interval starting {awarded.start.isoformat()}: an award's intervals are the offer's.",
                f"{at}.start",
            )
        ]
    problems = []
    if awarded.end - awarded.start != interval:
        problems.append(
            Problem(
                "off_grid",
                f"An interval of this offer lasts {interval.total_seconds() / 60:g} minutes; "
                f"it ends at {(awarded.start + interval).isoformat()}.",
                f"{at}.end",
            )
        )
    most = offered_kw(offered)
    if awarded.kw > most:
        problems.append(
            Problem("above_offer", f"{awarded.kw:f} kW is more than the {most:f} kW offered here.", f"{at}.kw")
        )
    elif 0 < awarded.kw < offered.min_kw:
        problems.append(
            Problem(
                "below_minimum",
                f"{awarded.kw:f} kW is below the offer's minimum of {offered.min_kw:f} kW (award 0 or at least that).",
                f"{at}.kw",
            )
        )
    price = awarded.price_per_mwh
    if not floor <= price <= cap:
        problems.append(
            Problem(
                "out_of_range",
                f"{price:f} $/MWh is outside the market's offer price range, {floor:f} to {cap:f}.",
                f"{at}.price_per_mwh",
            )
        )
    curve = curve_price_at(offered.segments, awarded.kw) if awarded.kw <= most else None
    if curve is not None and price < curve:
        problems.append(
            Problem(
                "below_offer_price",
                f"{price:f} $/MWh is below the offer's {curve:f} $/MWh for {awarded.kw:f} kW: "
                "a market never clears an offer below its price.",
                f"{at}.price_per_mwh",
            )
        )
    if net_benefits_price is not None and awarded.kw > 0 and price < net_benefits_price:
        problems.append(
            Problem(
                "below_net_benefits_price",
                f"{price:f} $/MWh is below the month's net-benefits price of {net_benefits_price:f} $/MWh: "
                "demand response is not dispatched below it (FERC Order 745).",
                f"{at}.price_per_mwh",
            )
        )
    return problems


def schedule(awarded: list[Awarded], *, keep_zeros: bool = False, step: timedelta | None = None) -> list[Piece]:
    """The award as an event's intervals, in order and contiguous, a gap between awarded intervals held at 0 kW
    (in intervals of `step` from the gap's start, the market's grid, if given).

    A day-ahead award runs from its first interval with kW to its last (empty when nothing is awarded); a
    real-time one (`keep_zeros`) keeps its intervals of 0 kW at the edges too, since there it means "stop"."""
    pieces = sorted((Piece(a.start, a.end, a.kw) for a in awarded if keep_zeros or a.kw > 0), key=lambda p: p.start)
    return _trim(_filled(pieces, step)) if not keep_zeros else _filled(pieces, step)


def overlay(
    base: list[Piece], over: list[Piece], *, not_before: datetime, step: timedelta | None = None
) -> list[Piece]:
    """`base` (a schedule being followed) with `over` (a real-time instruction) in its place where they meet, from
    `not_before` on: contiguous, a gap between the two held at 0 kW, a piece running across `not_before` cut there,
    no 0 kW at either end. What an event replacing `base`'s asks (empty: nothing is left to deliver)."""
    if over:
        first, last = over[0].start, over[-1].end
        kept = [p for p in base if p.end <= first or p.start >= last]
        for p in base:  # a base piece the real-time window cuts through keeps its parts outside the window
            if p.start < first < p.end:
                kept.append(Piece(p.start, first, p.kw))
            if p.start < last < p.end:
                kept.append(Piece(last, p.end, p.kw))
        base = _filled(sorted(kept + list(over), key=lambda p: p.start), step)
    clipped = [Piece(max(p.start, not_before), p.end, p.kw) for p in base if p.end > not_before]
    return _trim(clipped)


def _filled(pieces: list[Piece], step: timedelta | None = None) -> list[Piece]:
    out: list[Piece] = []
    for piece in pieces:
        at = out[-1].end if out else piece.start
        while at < piece.start:
            until = min(at + step, piece.start) if step else piece.start
            out.append(Piece(at, until, Decimal(0)))
            at = until
        out.append(piece)
    return out


def _trim(pieces: list[Piece]) -> list[Piece]:
    first = next((i for i, p in enumerate(pieces) if p.kw > 0), len(pieces))
    last = next((i for i in range(len(pieces) - 1, -1, -1) if pieces[i].kw > 0), -1)
    return pieces[first : last + 1]
