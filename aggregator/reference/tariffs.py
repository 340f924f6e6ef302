"""Retail tariffs as data: what a site's utility bill charges, version by version.

A tariff is identified by its utility and code (a site names its tariff in
`Site.retail_tariff`) and versioned by `effective_from`: a billing month is charged by
the version in effect on its first day. Its definition, as JSON:

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
`{"net_metering": true}`. Prices are decimal strings.

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
TOP_KEYS = ("utility", "code", "name", "effective_from", "seasons", "energy", "demand", "fixed", "export")
WINDOW_KEYS = ("name", "season", "months", "days", "hours")


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
class Charge:
    name: str
    window: Window
    price: Decimal


@dataclass(frozen=True)
class TariffSpec:
    utility: str
    code: str
    name: str
    effective_from: date
    energy: tuple[Charge, ...]
    demand: tuple[Charge, ...] = ()
    fixed: tuple[tuple[str, Decimal], ...] = ()
    export_credit: Decimal | None = None
    net_metering: bool = False
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
        out = []
        for i, item in enumerate(items):
            path = f"{key}[{i}]"
            if not isinstance(item, dict):
                r.fail(path, "A charge is an object.")
                continue
            r.keys(item, (*WINDOW_KEYS, price_key), path)
            out.append(
                Charge(
                    r.text(item, "name", f"{path}.name"),
                    r.window(item, path, seasons),
                    r.price(item, price_key, f"{path}.{price_key}"),
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
        r.keys(item, ("name", "per_month"), f"fixed[{i}]")
        fixed.append((r.text(item, "name", f"fixed[{i}].name"), r.price(item, "per_month", f"fixed[{i}].per_month")))
    export = definition.get("export") or {}
    export_credit, net_metering = None, False
    if not isinstance(export, dict):
        r.fail("export", 'An object: {"credit_per_kwh": "0.04"} or {"net_metering": true}.')
    else:
        r.keys(export, ("credit_per_kwh", "net_metering"), "export")
        metering = export.get("net_metering", False)
        if type(metering) is not bool:
            r.fail("export.net_metering", f"true or false (JSON), not {metering!r}.")
        elif metering and "credit_per_kwh" in export:
            r.fail("export.credit_per_kwh", "Net metering credits export at the energy price: no credit_per_kwh.")
        elif metering:
            net_metering = True
        elif "credit_per_kwh" in export:
            export_credit = r.price(export, "credit_per_kwh", "export.credit_per_kwh")
    if energy and not r.problems:
        gaps = [
            (m, w, h)
            for m in range(1, 13)
            for w in (False, True)
            for h in range(24)
            if not any(c.window.matches(m, w, h) for c in energy)
        ]
        if gaps:
            month, weekend, hour = gaps[0]
            r.fail(
                "energy",
                f"No energy charge prices month {month}, {'weekend' if weekend else 'weekday'} hours from "
                f"{hour}:00 ({len(gaps)} such hours); end the list with a charge without a window.",
                "uncovered",
            )
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
        net_metering=net_metering,
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
