"""Retail tariffs as data: what a site's utility bill charges, version by version.

A tariff is identified by its utility and code (a site names its tariff in
`Site.retail_tariff`) and versioned by `effective_from`: a billing month is charged by
the version in effect on its first day, and a version taking effect inside the month bills
the days from then on (per-month charges prorated by days). Its definition, as JSON:

    {
      "utility": "PECO", "code": "RS-TOU", "name": "Residential time of use",
      "effective_from": "2026-01-01",
      "seasons": {"summer": [6, 7, 8, 9]},
      "energy": [
        {"name": "summer on-peak", "season": "summer", "days": "weekdays", "hours": [[14, 19]], "price_per_kwh": "0.3200"},
        {"name": "off-peak", "price_per_kwh": "0.1100"}
      ],
      "demand": [
        {"name": "facility demand", "price_per_kw": "4.00"},
        {"name": "summer on-peak demand", "season": "summer", "days": "weekdays", "hours": [[14, 19]], "price_per_kw": "9.50"}
      ],
      "fixed": [{"name": "customer charge", "per_month": "12.00"}],
      "export": {"credit_per_kwh": "0.0400"}
    }

A charge's window is any of `season` (a named month set) or `months`, `days` (all,
weekdays, weekends; the market's holidays count as weekend days) and `hours` (local
[from, to) whole hours, to up to 24); a missing part means "always". Each interval is
classified by its local start. Energy: the first matching charge prices the interval's
imported kWh; every month, day type and hour must be priced by some charge. Demand:
each charge bills the month's highest interval kW (average over the interval, import
only) among the intervals in its window. Fixed charges are per month. Export: exported
kWh are credited at `credit_per_kwh`, or at the interval's energy price with
`{"net_metering": true}`. `"storage_may_export": false` in export says a battery's energy may not be
exported for retail credit (a net-metering storage integrity rule: grid-charged energy must not earn export
credit); battery plans then discharge only into the site's own load. Prices are decimal strings.

Beyond that:
- tiers: an energy or demand charge may have `"tiers": [{"up_to": "500", "price_per_kwh": ...}, ...,
  {"price_per_kwh": ...}]` instead of a price (cumulative kWh, or kW, in the bill; `"tier_basis": "day"`
  sizes energy tiers per day of the bill);
- demand: `demand_interval_minutes` (5/15/30/60; default the meter's) over fixed clock blocks or a
  `"demand_averaging": "rolling"` window; a demand charge's `ratchet_pct` (and `ratchet_months`, 11)
  bills at least that share of its highest peak of those months before;
- fixed charges `per_month` or `per_day`; `"minimum": {"per_month": ...}` tops a smaller bill up to it;
- export: `credit_per_kwh`, or `periods` (charges with windows and `credit_per_kwh`), or net metering:
  `{"net_metering": true, "carry_forward": "none" | "kwh" | "dollars", "true_up_month": 12,
  "true_up_per_kwh": ..., "non_bypassable_per_kwh": ...}`: a month's credit never exceeds its energy
  charges (non-bypassable charges are never offset); what is left is carried forward as kWh per energy
  charge or as $, and at the true-up month surplus kWh are paid at true_up_per_kwh and the rest cleared;
- `holidays`: the tariff's own list of dates (weekend-priced), instead of the market's.

The reader is strict: a key the format does not have (a tier's `max_kwh`, a `minimum`, a
`ratchet_pct`) or a value of the wrong type (`"net_metering": "true"`) is refused, naming its
path, rather than dropped: a tariff is billed as written or not at all.

The same tariff as CSV (one row per charge; `utility, code, name, effective_from` repeat
on each row): `utility,code,name,effective_from,kind,charge,months,days,hours,price`
with kind energy / demand / fixed / export, months like `6-9` or `1,2,12`, hours like
`14-19` or `0-7;22-24`, and for export `price` the credit per kWh or `net_metering`.
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from aggregator.core.errors import DomainError, Problem

DAYS = ("all", "weekdays", "weekends")
TOP_KEYS = (
    "utility",
    "code",
    "name",
    "effective_from",
    "seasons",
    "holidays",
    "energy",
    "tier_basis",
    "demand",
    "demand_interval_minutes",
    "demand_averaging",
    "fixed",
    "minimum",
    "export",
)
WINDOW_KEYS = ("name", "season", "months", "days", "hours")
EXPORT_KEYS = (
    "storage_may_export",
    "credit_per_kwh",
    "periods",
    "net_metering",
    "carry_forward",
    "true_up_month",
    "true_up_per_kwh",
    "non_bypassable_per_kwh",
)


class TariffInvalid(DomainError):
    status = 400


@dataclass(frozen=True)
class Window:
    months: frozenset[int] = frozenset()
    days: str = "all"
    hours: tuple[tuple[int, int], ...] = ()

    def matches(self, month: int, weekend: bool, hour: int) -> bool:
        if self.months and month not in self.months:
            return False
        if (self.days == "weekdays" and weekend) or (self.days == "weekends" and not weekend):
            return False
        return not self.hours or any(start <= hour < end for start, end in self.hours)


@dataclass(frozen=True)
class Tier:
    """A block of a tiered charge: up to `up_to` kWh (or kW) in the bill period, None for the rest."""

    up_to: Decimal | None
    price: Decimal


@dataclass(frozen=True)
class Charge:
    name: str
    window: Window
    price: Decimal  # untiered price; with tiers, the first tier's (what net metering credits export at)
    tiers: tuple[Tier, ...] = ()
    ratchet_pct: Decimal | None = None  # demand: billing demand is at least this % of the highest ...
    ratchet_months: int = 11  # ... peak of the charge in this many months before


@dataclass(frozen=True)
class FixedCharge:
    name: str
    amount: Decimal
    per: str  # "month" or "day"


@dataclass(frozen=True)
class NetMetering:
    """Net metering's period: a month's export credit beyond its energy charges is carried forward (as kWh
    per energy charge, or as $) until the true-up month, when what is left is paid at `true_up_per_kwh`
    (or its $ forfeited, at 0). Non-bypassable charges ($/kWh imported) are never offset by export."""

    carry_forward: str = "none"  # "none": a month's credit is capped at its energy charges and lost
    true_up_month: int = 12
    true_up_per_kwh: Decimal = Decimal(0)
    non_bypassable_per_kwh: Decimal = Decimal(0)


@dataclass(frozen=True)
class TariffSpec:
    utility: str
    code: str
    name: str
    effective_from: date
    energy: tuple[Charge, ...]
    demand: tuple[Charge, ...] = ()
    fixed: tuple[FixedCharge, ...] = ()
    export_credit: Decimal | None = None
    export_periods: tuple[Charge, ...] = ()  # export credit by time-of-use period (price = credit per kWh)
    net_metering: NetMetering | None = None
    storage_may_export: bool = True  # False: a battery's energy earns no export credit (storage integrity)
    tier_basis: str = "month"  # tier sizes are per bill month, or per day of it ("day")
    demand_interval_minutes: int | None = None  # None: the meter's interval
    demand_averaging: str = "fixed"  # "fixed" clock blocks, or a "rolling" window stepping by the meter interval
    minimum_per_month: Decimal | None = None
    holidays: frozenset[date] | None = None  # the tariff's own; None: the market's
    definition: dict = field(default_factory=dict, compare=False)

    def energy_index(self, month: int, weekend: bool, hour: int) -> int:
        for n, charge in enumerate(self.energy):
            if charge.window.matches(month, weekend, hour):
                return n
        raise LookupError((month, weekend, hour))  # coverage is checked when the tariff is read


class _Reader:
    def __init__(self):
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str, code: str = "invalid") -> None:
        self.problems.append(Problem(code, message, path))

    def keys(self, data: dict, allowed: tuple[str, ...], path: str) -> None:
        """Refuse every key the format does not have: a dropped key would bill something else than the tariff."""
        for key in data:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, f"Unknown key {key!r}; the keys here are {', '.join(allowed)}.", "unknown_key")

    def text(self, data: dict, key: str, path: str, *, required=True) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            if required or value is not None:
                self.fail(path, "A non-empty string.", "required" if value is None else "invalid")
            return ""
        return value.strip()

    def price(self, data: dict, key: str, path: str) -> Decimal:
        value = data.get(key)
        try:
            amount = Decimal(str(value)) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount < 0 or amount > 10_000:
            self.fail(path, 'A price as a decimal string, e.g. "0.1234".', "required" if value is None else "invalid")
            return Decimal(0)
        return amount

    def number(self, data: dict, key: str, path: str, *, low: Decimal, high: Decimal) -> Decimal:
        value = data.get(key)
        try:
            amount = Decimal(str(value)) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or not low <= amount <= high:
            self.fail(path, f"A number from {low} to {high} (a decimal string or a whole number).")
            return low
        return amount

    def whole(self, data: dict, key: str, path: str, low: int, high: int, *, default: int) -> int:
        value = data.get(key, default)
        if type(value) is not int or not low <= value <= high:
            self.fail(path, f"A whole number from {low} to {high}.")
            return default
        return value

    def tiers(self, raw, path: str, price_key: str) -> tuple[Tier, ...]:
        if not isinstance(raw, list) or not raw:
            self.fail(path, 'A list of tiers: [{"up_to": "500", "price": ...}, ..., {"price": ...}].')
            return ()
        out: list[Tier] = []
        for i, tier in enumerate(raw):
            where = f"{path}[{i}]"
            if not isinstance(tier, dict):
                self.fail(where, "A tier is an object.")
                continue
            self.keys(tier, ("up_to", price_key), where)
            last = i == len(raw) - 1
            up_to = None
            if "up_to" in tier:
                up_to = self.number(tier, "up_to", f"{where}.up_to", low=Decimal(0), high=Decimal(10**9))
                if last:
                    self.fail(f"{where}.up_to", "The last tier has no limit: it prices the rest.")
                elif out and out[-1].up_to is not None and up_to <= out[-1].up_to:
                    self.fail(f"{where}.up_to", "Each tier's up_to is above the one before.")
            elif not last:
                self.fail(f"{where}.up_to", "Every tier but the last has an up_to.", "required")
            out.append(Tier(up_to, self.price(tier, price_key, f"{where}.{price_key}")))
        return tuple(out)

    def window(self, data: dict, path: str, seasons: dict[str, frozenset[int]]) -> Window:
        months: frozenset[int] = frozenset()
        if data.get("season") is not None:
            if not isinstance(data["season"], str) or data["season"] not in seasons:
                self.fail(f"{path}.season", f"One of the tariff's seasons: {', '.join(seasons) or 'none are defined'}.")
            months = seasons.get(data["season"], frozenset()) if isinstance(data["season"], str) else frozenset()
        if data.get("months") is not None:
            months = self.months(data["months"], f"{path}.months")
        days = data.get("days", "all")
        if not isinstance(days, str) or days not in DAYS:
            self.fail(f"{path}.days", f"One of {', '.join(DAYS)}.")
            days = "all"
        hours = []
        raw = data.get("hours") or []
        if not isinstance(raw, list):
            raw = [None]
        for i, span in enumerate(raw):
            if (
                not isinstance(span, list)
                or len(span) != 2
                or not all(isinstance(h, int) and not isinstance(h, bool) for h in span)
                or not 0 <= span[0] < span[1] <= 24
            ):
                self.fail(f"{path}.hours[{i}]", "[from, to): whole local hours, 0 <= from < to <= 24.")
                continue
            hours.append((span[0], span[1]))
        return Window(months=months, days=days, hours=tuple(hours))

    def months(self, value, path: str) -> frozenset[int]:
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= 12 for m in value)
        ):
            self.fail(path, "A list of months, 1 to 12.")
            return frozenset()
        return frozenset(value)


def _uncovered(charges: tuple[Charge, ...]) -> list[tuple[int, bool, int]]:
    """Every (month, weekend, hour) no charge's window holds: a tariff must price them all."""
    return [
        (m, w, h)
        for m in range(1, 13)
        for w in (False, True)
        for h in range(24)
        if not any(c.window.matches(m, w, h) for c in charges)
    ]


def parse(definition) -> TariffSpec:
    """The tariff of a JSON definition, or TariffInvalid naming every problem by its path."""
    r = _Reader()
    if not isinstance(definition, dict):
        raise TariffInvalid(Problem("invalid", "A tariff is a JSON object.", None))
    r.keys(definition, TOP_KEYS, "")
    utility, code, name = (r.text(definition, k, k) for k in ("utility", "code", "name"))
    try:
        effective_from = date.fromisoformat(definition.get("effective_from") or "")
    except (TypeError, ValueError):
        r.fail("effective_from", "A date, YYYY-MM-DD.")
        effective_from = date.min
    seasons: dict[str, frozenset[int]] = {}
    raw_seasons = definition.get("seasons") or {}
    if not isinstance(raw_seasons, dict):
        r.fail("seasons", 'An object of season name -> months, e.g. {"summer": [6, 7, 8, 9]}.')
        raw_seasons = {}
    for season, months in raw_seasons.items():
        seasons[season] = r.months(months, f"seasons.{season}")

    def charges(key: str, price_key: str, *, required: bool) -> tuple[Charge, ...]:
        items = definition.get(key)
        if items is None and not required:
            return ()
        if not isinstance(items, list) or (required and not items):
            r.fail(key, "A list of charges.", "required" if items is None else "invalid")
            return ()
        return charges_of(items, key, price_key)

    def charges_of(items, key: str, price_key: str) -> tuple[Charge, ...]:
        if not isinstance(items, list) or not items:
            r.fail(key, "A list of charges.")
            return ()
        out = []
        for i, item in enumerate(items):
            path = f"{key}[{i}]"
            if not isinstance(item, dict):
                r.fail(path, "A charge is an object.")
                continue
            extra = {"energy": ("tiers",), "demand": ("tiers", "ratchet_pct", "ratchet_months")}.get(key, ())
            r.keys(item, (*WINDOW_KEYS, price_key, *extra), path)
            tiers: tuple[Tier, ...] = ()
            if "tiers" in item:
                if price_key in item:
                    r.fail(f"{path}.{price_key}", "A tiered charge prices each tier: no price of its own.")
                tiers = r.tiers(item["tiers"], f"{path}.tiers", price_key)
                price = tiers[0].price if tiers else Decimal(0)
            else:
                price = r.price(item, price_key, f"{path}.{price_key}")
            ratchet_pct, ratchet_months = None, 11
            if item.get("ratchet_pct") is not None:
                ratchet_pct = r.number(item, "ratchet_pct", f"{path}.ratchet_pct", low=Decimal(0), high=Decimal(100))
                ratchet_months = r.whole(item, "ratchet_months", f"{path}.ratchet_months", 1, 36, default=11)
            elif "ratchet_months" in item:
                r.fail(f"{path}.ratchet_months", "Goes with ratchet_pct.")
            out.append(
                Charge(
                    r.text(item, "name", f"{path}.name"),
                    r.window(item, path, seasons),
                    price,
                    tiers=tiers,
                    ratchet_pct=ratchet_pct,
                    ratchet_months=ratchet_months,
                )
            )
        return tuple(out)

    energy = charges("energy", "price_per_kwh", required=True)
    demand = charges("demand", "price_per_kw", required=False)
    fixed = []
    raw_fixed = definition.get("fixed") or []
    if not isinstance(raw_fixed, list):
        r.fail("fixed", "A list of charges.")
        raw_fixed = []
    for i, item in enumerate(raw_fixed):
        if not isinstance(item, dict):
            r.fail(f"fixed[{i}]", "A charge is an object.")
            continue
        r.keys(item, ("name", "per_month", "per_day"), f"fixed[{i}]")
        per = "day" if "per_day" in item and "per_month" not in item else "month"
        if "per_day" in item and "per_month" in item:
            r.fail(f"fixed[{i}].per_day", "A fixed charge is per_month or per_day, not both.")
        fixed.append(
            FixedCharge(
                r.text(item, "name", f"fixed[{i}].name"),
                r.price(item, f"per_{per}", f"fixed[{i}].per_{per}"),
                per,
            )
        )
    export = definition.get("export") or {}
    export_credit: Decimal | None = None
    net_metering: NetMetering | None = None
    export_periods: tuple[Charge, ...] = ()
    if not isinstance(export, dict):
        r.fail("export", 'An object: {"credit_per_kwh": "0.04"} or {"net_metering": true}.')
    storage_may_export = True
    if isinstance(export, dict):
        storage_may_export = export.get("storage_may_export", True)
        if type(storage_may_export) is not bool:
            r.fail("export.storage_may_export", f"true or false (JSON), not {storage_may_export!r}.")
            storage_may_export = True
        r.keys(export, EXPORT_KEYS, "export")
        metering = export.get("net_metering", False)
        if type(metering) is not bool:
            r.fail("export.net_metering", f"true or false (JSON), not {metering!r}.")
        elif metering and ("credit_per_kwh" in export or "periods" in export):
            where = "credit_per_kwh" if "credit_per_kwh" in export else "periods"
            r.fail(f"export.{where}", "Net metering credits export at the energy price: no export rate of its own.")
        elif metering:
            carry = export.get("carry_forward", "none")
            if carry not in ("none", "kwh", "dollars"):
                r.fail("export.carry_forward", "One of none, kwh, dollars.")
            net_metering = NetMetering(
                carry_forward=carry if isinstance(carry, str) else "none",
                true_up_month=r.whole(export, "true_up_month", "export.true_up_month", 1, 12, default=12),
                true_up_per_kwh=r.price(export, "true_up_per_kwh", "export.true_up_per_kwh")
                if "true_up_per_kwh" in export
                else Decimal(0),
                non_bypassable_per_kwh=r.price(export, "non_bypassable_per_kwh", "export.non_bypassable_per_kwh")
                if "non_bypassable_per_kwh" in export
                else Decimal(0),
            )
        else:
            for key in ("carry_forward", "true_up_month", "true_up_per_kwh", "non_bypassable_per_kwh"):
                if key in export:
                    r.fail(f"export.{key}", "Goes with net_metering: true.")
            if "credit_per_kwh" in export and "periods" in export:
                r.fail("export.periods", "Export is credited at credit_per_kwh or by periods, not both.")
            elif "credit_per_kwh" in export:
                export_credit = r.price(export, "credit_per_kwh", "export.credit_per_kwh")
            elif "periods" in export:
                export_periods = charges_of(export["periods"], "export.periods", "credit_per_kwh")
    if energy and not r.problems:
        gaps = _uncovered(energy)
        if gaps:
            month, weekend, hour = gaps[0]
            r.fail(
                "energy",
                f"No energy charge prices month {month}, {'weekend' if weekend else 'weekday'} hours from "
                f"{hour}:00 ({len(gaps)} such hours); end the list with a charge without a window.",
                "uncovered",
            )
    if export_periods and not r.problems and _uncovered(export_periods):
        r.fail(
            "export.periods",
            "Every hour needs an export period; end the list with one without a window.",
            "uncovered",
        )
    tier_basis = definition.get("tier_basis", "month")
    if tier_basis not in ("month", "day"):
        r.fail("tier_basis", "One of month, day (tier sizes per bill month, or per day of it).")
    minutes = definition.get("demand_interval_minutes")
    if minutes is not None and (type(minutes) is not int or minutes not in (5, 15, 30, 60)):
        r.fail("demand_interval_minutes", "One of 5, 15, 30, 60 (minutes over which demand is averaged).")
        minutes = None
    averaging = definition.get("demand_averaging", "fixed")
    if averaging not in ("fixed", "rolling"):
        r.fail("demand_averaging", "One of fixed (clock blocks), rolling (a window stepping by the meter interval).")
    minimum = None
    if "minimum" in definition:
        raw_minimum = definition["minimum"]
        if not isinstance(raw_minimum, dict):
            r.fail("minimum", 'An object: {"per_month": "10.00"}.')
        else:
            r.keys(raw_minimum, ("per_month",), "minimum")
            minimum = r.price(raw_minimum, "per_month", "minimum.per_month")
    holidays = None
    if "holidays" in definition:
        raw = definition["holidays"]
        if not isinstance(raw, list):
            r.fail("holidays", "A list of dates, YYYY-MM-DD: the tariff's own holidays (instead of the market's).")
        else:
            found = set()
            for i, text in enumerate(raw):
                try:
                    found.add(date.fromisoformat(text))
                except (TypeError, ValueError):
                    r.fail(f"holidays[{i}]", "A date, YYYY-MM-DD.")
            holidays = frozenset(found)
    if r.problems:
        raise TariffInvalid(r.problems)
    return TariffSpec(
        utility=utility,
        code=code,
        name=name,
        effective_from=effective_from,
        energy=energy,
        demand=demand,
        fixed=tuple(fixed),
        export_credit=export_credit,
        export_periods=export_periods,
        net_metering=net_metering,
        storage_may_export=storage_may_export,
        tier_basis=tier_basis,
        demand_interval_minutes=minutes,
        demand_averaging=averaging,
        minimum_per_month=minimum,
        holidays=holidays,
        definition=definition,
    )


def _spans(text: str, path: str, r: _Reader) -> list[list[int]]:
    spans = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        try:
            start, end = (int(x) for x in part.split("-"))
        except ValueError:
            r.fail(path, 'Hours like "14-19" or "0-7;22-24".')
            continue
        spans.append([start, end])
    return spans


def _months(text: str, path: str, r: _Reader) -> list[int]:
    months = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            if "-" in part:
                first, last = (int(x) for x in part.split("-"))
                months += list(range(first, last + 1))
            else:
                months.append(int(part))
        except ValueError:
            r.fail(path, 'Months like "6-9" or "1,2,12".')
    return months


CSV_COLUMNS = ["utility", "code", "name", "effective_from", "kind", "charge", "months", "days", "hours", "price"]


def definitions_from_csv(text: str) -> list[dict]:
    """JSON definitions (one per utility, code and effective date) from the CSV form; parse() then checks each."""
    r = _Reader()
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or set(CSV_COLUMNS) - set(rows[0]):
        raise TariffInvalid(Problem("columns", f"The header is {','.join(CSV_COLUMNS)}.", "header"))
    tariffs: dict[tuple, dict] = {}
    for line, row in enumerate(rows, start=2):
        key = (row["utility"].strip(), row["code"].strip(), row["effective_from"].strip())
        tariff = tariffs.setdefault(
            key,
            {
                "utility": key[0],
                "code": key[1],
                "name": row["name"].strip(),
                "effective_from": key[2],
                "energy": [],
                "demand": [],
                "fixed": [],
            },
        )
        kind, path = row["kind"].strip(), f"line {line}"
        charge: dict = {"name": row["charge"].strip()}
        if row["months"].strip():
            charge["months"] = _months(row["months"], f"{path}.months", r)
        if row["days"].strip():
            charge["days"] = row["days"].strip()
        if row["hours"].strip():
            charge["hours"] = _spans(row["hours"], f"{path}.hours", r)
        price = row["price"].strip()
        if kind == "energy":
            tariff["energy"].append({**charge, "price_per_kwh": price})
        elif kind == "demand":
            tariff["demand"].append({**charge, "price_per_kw": price})
        elif kind == "fixed":
            tariff["fixed"].append({"name": charge["name"], "per_month": price})
        elif kind == "export":
            tariff["export"] = {"net_metering": True} if price == "net_metering" else {"credit_per_kwh": price}
        else:
            r.fail(f"{path}.kind", "One of energy, demand, fixed, export.")
    if r.problems:
        raise TariffInvalid(r.problems)
    return list(tariffs.values())


def day_info(local: datetime, holidays: set[date]) -> tuple[int, bool, int]:
    """(month, weekend-or-holiday, hour) of a local time: what a window looks at."""
    return local.month, local.weekday() >= 5 or local.date() in holidays, local.hour
