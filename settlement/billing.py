"""A site's monthly utility bill from its interval data, and what its equipment saved.

The bill is computed interval by interval in Decimal from the site meter's readings (kWh,
positive = import) for the month in the site's time zone, by the tariff version in effect
on the month's first day (aggregator.reference.tariffs). Each line (an energy period, the export
credit, a demand charge, a fixed charge) is rounded once to the cent, half up, and the
total is the sum of the lines (settlement.money).

Savings compare the actual bill with counterfactual bills on the same intervals, with the
equipment's own metered contribution removed (device meters: positive = consumption,
so a charging battery adds to the site's import and solar output subtracts):
    without equipment   = site - battery - solar
    with solar only     = site - battery
and split into
    self-consumption    = bill(without equipment) - bill(with solar only)
    peak shaving        = demand charges(with solar only) - demand charges(actual)
    time-of-use shifting = energy and export lines(with solar only) - the same (actual)
    grid services       = the customer's settled payouts for the month's events, the site's
                          share by its delivered kWh (latest settlement version of each event)
so that the first three add up to bill(without equipment) - bill(actual).
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection

from aggregator.core.errors import DomainError, Problem
from aggregator.reference.holidays import holidays_between
from aggregator.reference.models import MeterKind, Tariff
from aggregator.reference.selectors import tariff_in_effect
from aggregator.reference.tariffs import Charge, TariffSpec, day_info
from enrollment.models import Device
from settlement.money import cents

ZERO = Decimal(0)
_SITE = """
SELECT start, interval_seconds, kwh FROM settlement_reading
WHERE meter_kind = %(kind)s AND meter_id = %(meter)s AND start >= %(start)s AND start < %(end)s ORDER BY start
"""
_EQUIPMENT = """
SELECT r.start, d.device_type, r.kwh FROM settlement_reading r JOIN enrollment_device d ON d.id = r.meter_id
WHERE r.meter_kind = %(kind)s AND r.meter_id = ANY(%(devices)s) AND r.start >= %(start)s AND r.start < %(end)s
  AND r.kwh IS NOT NULL
"""
_GRID_SERVICES = """
WITH runs AS (
    SELECT DISTINCT ON (r.event_id) r.id FROM settlement_settlementrun r
    JOIN dispatch_dispatchevent e ON e.id = r.event_id
    WHERE e.start >= %(start)s AND e.start < %(end)s
    ORDER BY r.event_id, r.version DESC
), shares AS (
    SELECT s.run_id,
           sum((SELECT coalesce(sum(x), 0) FROM unnest(s.reduction_kwh) x)) FILTER (WHERE s.site_id = %(site)s) AS mine,
           sum((SELECT coalesce(sum(x), 0) FROM unnest(s.reduction_kwh) x)) AS whole
    FROM settlement_sitesettlement s WHERE s.run_id IN (SELECT id FROM runs) AND s.customer_id = %(customer)s
    GROUP BY s.run_id
)
SELECT coalesce(sum(p.net * CASE WHEN sh.whole > 0 THEN coalesce(sh.mine, 0) / sh.whole ELSE 0 END), 0), count(*)
FROM settlement_customerpayout p JOIN shares sh ON sh.run_id = p.run_id
WHERE p.customer_id = %(customer)s
"""


class BillRefused(DomainError):
    status = 400


@dataclass
class Intervals:
    """A month's intervals: local classification, length, and the site's and equipment's kWh."""

    starts: list[datetime]
    seconds: list[int]
    info: list[tuple[int, bool, int]]
    site: list[Decimal | None]
    battery: list[Decimal]
    solar: list[Decimal]

    @property
    def missing(self) -> int:
        return sum(1 for v in self.site if v is None)


def month_window(year: int, month: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    first = datetime(year, month, 1, tzinfo=zone)
    following = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return first, following


def tariff_for(site, first_day: date) -> TariffSpec:
    spec = tariff_in_effect(utility=site.utility, code=site.retail_tariff, day=first_day)
    if spec is None:
        raise BillRefused(
            Problem(
                "no_tariff",
                f"No version of tariff {site.utility}/{site.retail_tariff or '(none)'} is in "
                f"effect on {first_day}; load it (manage.py import_tariffs) or set the site's retail_tariff.",
                "month",
            )
        )
    return spec


def load(site, year: int, month: int) -> Intervals:
    """The site meter's intervals of the month, with the battery's and solar's metered kWh summed into each
    (a device meter read more often than the site's adds its readings inside the site interval)."""

    zone = ZoneInfo(site.time_zone)
    start, end = month_window(year, month, zone)
    devices = list(
        Device.objects.filter(site=site, device_type__in=["battery", "solar_pv"]).values_list("pk", flat=True)
    )
    window = {"start": start, "end": end}
    with connection.cursor() as cursor:
        cursor.execute(_SITE, {**window, "kind": MeterKind.SITE, "meter": site.pk})
        rows = cursor.fetchall()
        equipment = []
        if devices and rows:
            cursor.execute(_EQUIPMENT, {**window, "kind": MeterKind.DEVICE, "devices": devices})
            equipment = cursor.fetchall()
    starts = [r[0] for r in rows]
    battery, solar = [ZERO] * len(rows), [ZERO] * len(rows)
    if equipment:
        position = {at: n for n, at in enumerate(starts)}
        step = timedelta(seconds=rows[0][1])
        origin = starts[0]
        for at, kind, kwh in equipment:
            n = position.get(at)
            if n is None:  # inside a site interval: find the one that holds it
                n = position.get(origin + step * ((at - origin) // step))
            if n is not None:
                series = battery if kind == "battery" else solar
                series[n] += kwh
    holidays = set(holidays_between(market=site.market.code, first=start.date(), last=end.date()))
    return Intervals(
        starts=starts,
        seconds=[r[1] for r in rows],
        info=[day_info(at.astimezone(zone), holidays) for at in starts],
        site=[r[2] for r in rows],
        battery=battery,
        solar=solar,
    )


@dataclass
class Carry:
    """Net metering's credit carried from month to month: kWh per energy charge, or $."""

    kwh: dict[int, Decimal] = field(default_factory=dict)
    dollars: Decimal = ZERO


def _tiered(quantity: Decimal, charge: Charge, scale: Decimal) -> list[tuple[str, Decimal, Decimal]]:
    """(label, quantity, rate) per tier the quantity reaches; tier sizes scaled (days of the bill for per-day tiers)."""
    if not charge.tiers:
        return [("", quantity, charge.price)]
    out, below = [], ZERO
    for n, tier in enumerate(charge.tiers):
        limit = None if tier.up_to is None else tier.up_to * scale
        part = quantity - below if limit is None else min(quantity, limit) - below
        if part > 0:
            out.append((f" (tier {n + 1})", part, tier.price))
        if limit is None or quantity <= limit:
            break
        below = limit
    return out


def demand_series(spec: TariffSpec, intervals: Intervals, kwh: list[Decimal]) -> list[tuple[Decimal, int]]:
    """(kW, index of the interval whose clock the value is judged by) over the tariff's demand interval: the meter's
    own, fixed clock blocks of demand_interval_minutes, or a rolling window of them (judged by its last interval)."""
    if not kwh:
        return []
    step = intervals.seconds[0]
    window = (spec.demand_interval_minutes or step // 60) * 60
    if window < step:
        raise BillRefused(
            Problem(
                "meter_too_coarse",
                f"The tariff bills demand over {window // 60} minutes; the site's meter reads every {step // 60}.",
                "month",
            )
        )
    if window == step:
        return [(value * 3600 / step, n) for n, value in enumerate(kwh)]
    hours = Decimal(window) / 3600
    if spec.demand_averaging == "rolling":
        k = window // step
        out, total = [], ZERO
        for n, value in enumerate(kwh):
            total += value
            if n >= k:
                total -= kwh[n - k]
            if n >= k - 1:
                out.append((total / hours, n))
        return out
    blocks: dict[int, list[int]] = {}
    for n, at in enumerate(intervals.starts):
        epoch = int(at.timestamp())
        blocks.setdefault(epoch - epoch % window, []).append(n)
    return [(sum((kwh[n] for n in members), ZERO) / hours, members[0]) for members in blocks.values()]


def demand_peaks(spec: TariffSpec, intervals: Intervals, kwh: list[Decimal]) -> list[tuple[Decimal, int | None]]:
    """Each demand charge's highest kW in its window this month (import only), and where."""
    series = demand_series(spec, intervals, kwh)
    peaks = []
    for charge in spec.demand:
        peak, at = ZERO, None
        for kw, n in series:
            if kw > peak and charge.window.matches(*intervals.info[n]):
                peak, at = kw, n
        peaks.append((peak.quantize(Decimal("0.001")), at))
    return peaks


def compute(
    spec: TariffSpec,
    intervals: Intervals,
    kwh: list[Decimal],
    zone: ZoneInfo,
    *,
    days: int | None = None,
    share: Decimal = Decimal(1),
    carry: Carry | None = None,
    history_peaks: list[Decimal] | None = None,
    true_up: bool = False,
) -> dict:
    """The bill's lines for one series of net kWh (positive = import) over the month's intervals.

    `days`: the bill's local days (per-day charges and tiers); `share`: the part of the month this tariff version
    bills (per-month charges prorated); `carry`: net metering credit carried in (the result's `carry` is what goes
    on); `history_peaks`: each demand charge's highest peak in its ratchet months before; `true_up`: this month
    settles net metering's carried credit."""
    days = days if days is not None else len({at.astimezone(zone).date() for at in intervals.starts}) or 1
    energy_index = spec.energy_index
    classes = [energy_index(*info) for info in intervals.info]
    imported = [ZERO] * len(spec.energy)
    exported = [ZERO] * len(spec.energy)
    export_at: list[int] = []
    for n, (cls, value) in enumerate(zip(classes, kwh)):
        if value > 0:
            imported[cls] += value
        elif value < 0:
            exported[cls] -= value
            export_at.append(n)
    metering = spec.net_metering
    carry_in = carry or Carry()
    carry_out = Carry()
    billable = list(imported)
    if metering is not None and metering.carry_forward == "kwh":
        for cls in range(len(spec.energy)):
            available = exported[cls] + carry_in.kwh.get(cls, ZERO)
            billable[cls] = max(imported[cls] - available, ZERO)
            left = available - imported[cls]
            if left > 0:
                carry_out.kwh[cls] = left
    scale = Decimal(days) if spec.tier_basis == "day" else Decimal(1)
    lines = []
    for n, charge in enumerate(spec.energy):
        for label, quantity, rate in _tiered(billable[n], charge, scale):
            if quantity:
                lines.append(
                    {
                        "kind": "energy",
                        "name": charge.name + label,
                        "quantity": quantity,
                        "unit": "kWh",
                        "rate": rate,
                        "amount": cents(quantity * rate),
                    }
                )
    sent = sum(exported, ZERO)
    if metering is not None and metering.carry_forward != "kwh":
        energy_total = sum((line["amount"] for line in lines), ZERO)
        credit = sum((exported[n] * c.price for n, c in enumerate(spec.energy)), ZERO) + carry_in.dollars
        applied = min(cents(credit), energy_total)  # never below the month's non-bypassable charges
        if metering.carry_forward == "dollars":
            carry_out.dollars = cents(credit) - applied
        if applied:
            lines.append(
                {
                    "kind": "export",
                    "name": "export credit (net metering)",
                    "quantity": sent,
                    "unit": "kWh",
                    "rate": None,
                    "amount": -applied,
                }
            )
    elif metering is None and sent and spec.export_periods:
        by_period = [ZERO] * len(spec.export_periods)
        for n in export_at:
            period = next(i for i, c in enumerate(spec.export_periods) if c.window.matches(*intervals.info[n]))
            by_period[period] -= kwh[n]
        lines += [
            {
                "kind": "export",
                "name": f"export credit, {c.name}",
                "quantity": by_period[i],
                "unit": "kWh",
                "rate": c.price,
                "amount": -cents(by_period[i] * c.price),
            }
            for i, c in enumerate(spec.export_periods)
            if by_period[i]
        ]
    elif metering is None and sent and spec.export_credit is not None:
        lines.append(
            {
                "kind": "export",
                "name": "export credit",
                "quantity": sent,
                "unit": "kWh",
                "rate": spec.export_credit,
                "amount": -cents(sent * spec.export_credit),
            }
        )
    if metering is not None and metering.non_bypassable_per_kwh:
        gross = sum(imported, ZERO)
        lines.append(
            {
                "kind": "non_bypassable",
                "name": "non-bypassable charges",
                "quantity": gross,
                "unit": "kWh",
                "rate": metering.non_bypassable_per_kwh,
                "amount": cents(gross * metering.non_bypassable_per_kwh),
            }
        )
    if metering is not None and true_up:
        left_kwh = sum(carry_out.kwh.values(), ZERO)
        if left_kwh and metering.true_up_per_kwh:
            lines.append(
                {
                    "kind": "true_up",
                    "name": "annual true-up: surplus kWh paid",
                    "quantity": left_kwh,
                    "unit": "kWh",
                    "rate": metering.true_up_per_kwh,
                    "amount": -cents(left_kwh * metering.true_up_per_kwh),
                }
            )
        carry_out = Carry()  # the true-up settles what was carried
    for n, (charge, (peak, at)) in enumerate(zip(spec.demand, demand_peaks(spec, intervals, kwh))):
        billing_demand, ratcheted = peak, False
        if charge.ratchet_pct is not None and history_peaks:
            floor = (history_peaks[n] * charge.ratchet_pct / 100).quantize(Decimal("0.001"))
            if floor > peak:
                billing_demand, ratcheted = floor, True
        for label, quantity, rate in _tiered(billing_demand, charge, Decimal(1)):
            lines.append(
                {
                    "kind": "demand",
                    "name": charge.name + label + (" (ratchet)" if ratcheted else ""),
                    "quantity": quantity,
                    "unit": "kW",
                    "rate": rate,
                    "amount": cents(quantity * rate * share),
                    "at": intervals.starts[at].astimezone(zone).isoformat() if at is not None else None,
                    "peak_kw": peak,
                }
            )
    for fixed in spec.fixed:
        count = Decimal(days) if fixed.per == "day" else share
        lines.append(
            {
                "kind": "fixed",
                "name": fixed.name,
                "quantity": count,
                "unit": fixed.per,
                "rate": fixed.amount,
                "amount": cents(fixed.amount * count),
            }
        )
    subtotal = sum((line["amount"] for line in lines), ZERO)
    if spec.minimum_per_month is not None and subtotal < cents(spec.minimum_per_month * share):
        lines.append(
            {
                "kind": "minimum",
                "name": "minimum charge",
                "quantity": share,
                "unit": "month",
                "rate": spec.minimum_per_month,
                "amount": cents(spec.minimum_per_month * share) - subtotal,
            }
        )
    kinds = ("energy", "export", "demand", "fixed", "non_bypassable", "true_up", "minimum")
    totals = {kind: sum((line["amount"] for line in lines if line["kind"] == kind), ZERO) for kind in kinds}
    return {
        "lines": lines,
        "totals": totals,
        "total": sum(totals.values(), ZERO),
        "imported_kwh": sum(imported, ZERO),
        "exported_kwh": sent,
        "carry": carry_out,
    }


def grid_services(site, start: datetime, end: datetime) -> tuple[Decimal, int]:
    with connection.cursor() as cursor:
        cursor.execute(_GRID_SERVICES, {"start": start, "end": end, "site": site.pk, "customer": site.customer_id})
        amount, events = cursor.fetchone()
    return cents(amount), events


def _versions(site, first: date, last: date) -> list[tuple[TariffSpec, date, date]]:
    """The tariff versions that bill the month, with the local days each bills: the one in effect on the first
    day, then each that takes effect inside the month (a mid-month change is prorated by days)."""
    opening = tariff_for(site, first)
    changes = [
        row.spec()
        for row in Tariff.objects.filter(
            utility=site.utility, code=site.retail_tariff, effective_from__gt=first, effective_from__lte=last
        ).order_by("effective_from")
    ]
    specs = [opening, *changes]
    starts = [first, *(spec.effective_from for spec in changes)]
    ends = [*(day - timedelta(days=1) for day in starts[1:]), last]
    return list(zip(specs, starts, ends, strict=True))


def _part(
    intervals: Intervals, spec: TariffSpec, zone: ZoneInfo, first: date, last: date
) -> tuple[Intervals, list[int]]:
    """The intervals of local days first..last, classified by the tariff's own holidays where it has them."""
    keep = [n for n, at in enumerate(intervals.starts) if first <= at.astimezone(zone).date() <= last]
    starts = [intervals.starts[n] for n in keep]
    info = (
        [day_info(at.astimezone(zone), set(spec.holidays)) for at in starts]
        if spec.holidays is not None
        else [intervals.info[n] for n in keep]
    )
    part = Intervals(
        starts=starts,
        seconds=[intervals.seconds[n] for n in keep],
        info=info,
        site=[intervals.site[n] for n in keep],
        battery=[intervals.battery[n] for n in keep],
        solar=[intervals.solar[n] for n in keep],
    )
    return part, keep


def _series(intervals: Intervals) -> dict[str, list[Decimal]]:
    """Net kWh per interval: as metered, with the battery's contribution removed, and with both removed."""
    site_kwh = [v if v is not None else ZERO for v in intervals.site]
    solar_only = [s - b for s, b in zip(site_kwh, intervals.battery)]
    return {
        "actual": site_kwh,
        "with_solar_only": solar_only,
        "without_equipment": [s - sol for s, sol in zip(solar_only, intervals.solar)],
    }


def _previous(year: int, month: int, back: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) - back
    return index // 12, index % 12 + 1


def _history(site, spec: TariffSpec, year: int, month: int, zone: ZoneInfo) -> dict[str, tuple[list[Decimal], Carry]]:
    """Per series, what earlier months leave this one: each demand charge's highest peak in its ratchet months,
    and net metering's credit carried since the last true-up."""
    names = ("actual", "with_solar_only", "without_equipment")
    ratchet = max((c.ratchet_months for c in spec.demand if c.ratchet_pct is not None), default=0)
    metering = spec.net_metering
    chain = 0
    if metering is not None and metering.carry_forward != "none":
        chain = (month - metering.true_up_month - 1) % 12  # months since the true-up month, before this one
    peaks = {name: [ZERO] * len(spec.demand) for name in names}
    carry = {name: Carry() for name in names}
    for back in range(max(ratchet, chain), 0, -1):
        y, m = _previous(year, month, back)
        intervals = load(site, y, m)
        if not intervals.starts:
            continue
        first, following = month_window(y, m, zone)
        own = tariff_in_effect(utility=site.utility, code=site.retail_tariff, day=first.date()) or spec
        for name, kwh in _series(intervals).items():
            if back <= ratchet:
                for n, (peak, _) in enumerate(
                    demand_peaks(spec, _part(intervals, spec, zone, first.date(), following.date())[0], kwh)
                ):
                    peaks[name][n] = max(peaks[name][n], peak)
            if back <= chain and own.net_metering is not None:
                part, keep = _part(intervals, own, zone, first.date(), following.date())
                carry[name] = compute(own, part, [kwh[n] for n in keep], zone, carry=carry[name])["carry"]
    return {name: (peaks[name], carry[name]) for name in names}


def _bill(parts, intervals: Intervals, kwh: list[Decimal], zone: ZoneInfo, history, month: int, days_in_month: int):
    peaks, carry = history
    lines, totals, imported, exported = [], {}, ZERO, ZERO
    for n, (spec, first, last) in enumerate(parts):
        part, keep = _part(intervals, spec, zone, first, last)
        days = (last - first).days + 1
        metering = spec.net_metering
        bill = compute(
            spec,
            part,
            [kwh[i] for i in keep],
            zone,
            days=days,
            share=Decimal(days) / days_in_month,
            carry=carry,
            history_peaks=peaks if len(peaks) == len(spec.demand) else None,
            true_up=metering is not None and metering.true_up_month == month and n == len(parts) - 1,
        )
        carry = bill["carry"]
        for line in bill["lines"]:
            if len(parts) > 1:
                line = {**line, "name": f"{line['name']} ({first.isoformat()} to {last.isoformat()})"}
            lines.append(line)
        for kind, amount in bill["totals"].items():
            totals[kind] = totals.get(kind, ZERO) + amount
        imported += bill["imported_kwh"]
        exported += bill["exported_kwh"]
    carried = {"kwh": sum(carry.kwh.values(), ZERO), "dollars": carry.dollars}
    return {
        "lines": lines,
        "totals": totals,
        "total": sum(totals.values(), ZERO),
        "imported_kwh": imported,
        "exported_kwh": exported,
        "carried_forward": carried,
    }


def monthly(site, year: int, month: int) -> dict:
    """The month's actual bill, its counterfactuals and the savings split (see the module docstring)."""
    if not 1 <= month <= 12 or not 2000 <= year <= 2100:
        raise BillRefused(Problem("invalid", "A month as YYYY-MM.", "month"))
    zone = ZoneInfo(site.time_zone)
    start, end = month_window(year, month, zone)
    last_day = (end - timedelta(days=1)).date()
    parts = _versions(site, start.date(), last_day)
    intervals = load(site, year, month)
    history = _history(site, parts[-1][0], year, month, zone)
    days_in_month = last_day.day
    bills = {
        name: _bill(parts, intervals, kwh, zone, history[name], month, days_in_month)
        for name, kwh in _series(intervals).items()
    }
    actual, with_solar, none = bills["actual"], bills["with_solar_only"], bills["without_equipment"]

    def energy_and_export(bill):
        return bill["totals"]["energy"] + bill["totals"]["export"]

    earnings, events = grid_services(site, start, end)
    savings = {
        "self_consumption": none["total"] - with_solar["total"],
        "peak_shaving": with_solar["totals"]["demand"] - actual["totals"]["demand"],
        "time_of_use_shifting": energy_and_export(with_solar) - energy_and_export(actual),
        "grid_services": earnings,
    }
    savings["total"] = sum(savings.values(), ZERO)
    spec = parts[0][0]
    return {
        "site": site.pk,
        "month": f"{year:04d}-{month:02d}",
        "time_zone": site.time_zone,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "tariff": {
            "utility": spec.utility,
            "code": spec.code,
            "name": spec.name,
            "effective_from": spec.effective_from.isoformat(),
        },
        "tariff_versions": [
            {"effective_from": p.effective_from.isoformat(), "from": a.isoformat(), "to": b.isoformat()}
            for p, a, b in parts
        ],
        "intervals": len(intervals.starts),
        "missing_intervals": intervals.missing,
        "expected_intervals": _expected(intervals, start, end),
        "actual": actual,
        "with_solar_only": with_solar,
        "without_equipment": none,
        "savings": savings,
        "settled_events": events,
    }


def _expected(intervals: Intervals, start: datetime, end: datetime) -> int | None:
    """How many intervals a complete month has, at the site meter's interval length (None with no data)."""
    if not intervals.seconds:
        return None
    # Aware datetimes in one zone subtract as wall times; in UTC a DST month keeps its 23- or 25-hour day.
    return int((end.astimezone(UTC) - start.astimezone(UTC)) / timedelta(seconds=intervals.seconds[0]))
