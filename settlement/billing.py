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

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection

from aggregator.core.errors import DomainError, Problem
from aggregator.reference.holidays import holidays_between
from aggregator.reference.models import MeterKind
from aggregator.reference.selectors import tariff_in_effect
from aggregator.reference.tariffs import TariffSpec, day_info
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


def compute(spec: TariffSpec, intervals: Intervals, kwh: list[Decimal], zone: ZoneInfo) -> dict:
    """The bill's lines for one series of net kWh (positive = import) over the month's intervals."""
    energy_index = spec.energy_index
    classes = [energy_index(*info) for info in intervals.info]
    imported = [ZERO] * len(spec.energy)
    exported = [ZERO] * len(spec.energy)
    for cls, value in zip(classes, kwh):
        if value > 0:
            imported[cls] += value
        elif value < 0:
            exported[cls] -= value
    lines = [
        {
            "kind": "energy",
            "name": charge.name,
            "quantity": imported[n],
            "unit": "kWh",
            "rate": charge.price,
            "amount": cents(imported[n] * charge.price),
        }
        for n, charge in enumerate(spec.energy)
        if imported[n]
    ]
    sent = sum(exported, ZERO)
    if sent:
        if spec.net_metering:
            credit = sum((exported[n] * c.price for n, c in enumerate(spec.energy)), ZERO)
            lines.append(
                {
                    "kind": "export",
                    "name": "export credit (net metering)",
                    "quantity": sent,
                    "unit": "kWh",
                    "rate": None,
                    "amount": -cents(credit),
                }
            )
        elif spec.export_credit is not None:
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
    for charge in spec.demand:
        peak, at = ZERO, None
        window = charge.window
        for n, value in enumerate(kwh):
            if value > 0 and window.matches(*intervals.info[n]):
                kw = value * 3600 / intervals.seconds[n]
                if kw > peak:
                    peak, at = kw, intervals.starts[n]
        lines.append(
            {
                "kind": "demand",
                "name": charge.name,
                "quantity": peak.quantize(Decimal("0.001")),
                "unit": "kW",
                "rate": charge.price,
                "amount": cents(peak.quantize(Decimal("0.001")) * charge.price),
                "at": at.astimezone(zone).isoformat() if at else None,
            }
        )
    lines += [
        {
            "kind": "fixed",
            "name": name,
            "quantity": Decimal(1),
            "unit": "month",
            "rate": amount,
            "amount": cents(amount),
        }
        for name, amount in spec.fixed
    ]
    totals = {
        kind: sum((line["amount"] for line in lines if line["kind"] == kind), ZERO)
        for kind in ("energy", "export", "demand", "fixed")
    }
    return {
        "lines": lines,
        "totals": totals,
        "total": sum(totals.values(), ZERO),
        "imported_kwh": sum(imported, ZERO),
        "exported_kwh": sent,
    }


def grid_services(site, start: datetime, end: datetime) -> tuple[Decimal, int]:
    with connection.cursor() as cursor:
        cursor.execute(_GRID_SERVICES, {"start": start, "end": end, "site": site.pk, "customer": site.customer_id})
        amount, events = cursor.fetchone()
    return cents(amount), events


def monthly(site, year: int, month: int) -> dict:
    """The month's actual bill, its counterfactuals and the savings split (see the module docstring)."""
    if not 1 <= month <= 12 or not 2000 <= year <= 2100:
        raise BillRefused(Problem("invalid", "A month as YYYY-MM.", "month"))
    zone = ZoneInfo(site.time_zone)
    start, end = month_window(year, month, zone)
    spec = tariff_for(site, start.date())
    intervals = load(site, year, month)
    site_kwh = [v if v is not None else ZERO for v in intervals.site]
    solar_only = [s - b for s, b in zip(site_kwh, intervals.battery)]
    without = [s - sol for s, sol in zip(solar_only, intervals.solar)]
    actual = compute(spec, intervals, site_kwh, zone)
    with_solar = compute(spec, intervals, solar_only, zone)
    none = compute(spec, intervals, without, zone)

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
