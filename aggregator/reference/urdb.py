"""Tariffs from the OpenEI Utility Rate Database (URDB) JSON format, the one utilities' analysts already have.

`definitions_from_urdb(data)` turns a URDB rate (or a list of them, or the API's `{"items": [...]}`) into this
project's tariff definitions (aggregator.reference.tariffs), which `parse` then checks as any other:

- energyratestructure with energyweekdayschedule / energyweekendschedule (12 months x 24 hours of period
  indices): one energy charge per period and group of months with the same hours, weekdays and weekends
  apart where they differ; a tier's `rate + adj` is its price per kWh and `max` its cumulative limit
  (unit `kWh` per month, or `kWh daily` per day);
- demandratestructure with its schedules: time-of-use demand charges the same way; flatdemandstructure with
  flatdemandmonths: a demand charge over all hours of its months; demandwindow: the averaging minutes;
  demandratchetpercentage (the same every month): the ratchet over the 11 months before;
- fixedchargefirstmeter in $/month or $/day; mincharge in $/month; dgrules "Net Metering" (export at the
  energy price) or "Net Billing Instantaneous" / "Net Billing Hourly" (export at each period's `sell` rate).

What this format cannot bill as the rate says (tiers by kWh per kW, a ratchet that changes by month, coincident
demand, buy-all-sell-all, units other than these) is refused with the field named, never dropped.
"""

from datetime import UTC, datetime
from typing import Any

from aggregator.core.errors import Problem
from aggregator.reference.tariffs import TariffInvalid

# Descriptive fields a URDB rate carries that bill nothing.
_METADATA = {
    "label",
    "uri",
    "name",
    "utility",
    "eiaid",
    "sector",
    "description",
    "source",
    "sourceparent",
    "startdate",
    "enddate",
    "approved",
    "is_default",
    "country",
    "supercedes",
    "revisions",
    "servicetype",
    "voltagecategory",
    "phasewiring",
    "basicinformationcomments",
    "energycomments",
    "demandcomments",
    "fixedchargeunits",
    "minchargeunits",
    "demandunits",
    "demandrateunit",
    "flatdemandunit",
    "peakkwcapacitymin",
    "peakkwcapacitymax",
    "peakkwcapacityhistory",
    "peakkwhusagemin",
    "peakkwhusagemax",
    "peakkwhusagehistory",
    "voltageminimum",
    "voltagemaximum",
    "voltagedoublesidedrange",
    "energyattrs",
    "demandattrs",
    "fixedattrs",
    "dgrules",
    "fixedchargeeaaddl",
    "demandreactivepowercharge",
    "energyratestructure",
    "energyweekdayschedule",
    "energyweekendschedule",
    "demandratestructure",
    "demandweekdayschedule",
    "demandweekendschedule",
    "flatdemandstructure",
    "flatdemandmonths",
    "demandwindow",
    "demandratchetpercentage",
    "fixedchargefirstmeter",
    "mincharge",
    "lookbackrange",
    "lookbackpercent",
    "lookbackmonths",
    "latest_update",
    "service_type",
}
# Fields that would change the bill and this format cannot express: refused when they hold anything.
_REFUSED = {
    "coincidentratestructure": "coincident demand charges",
    "coincidentrateschedule": "coincident demand charges",
    "coincidentsched": "coincident demand charges",
    "fueladjustmentsmonthly": "monthly fuel adjustments",
    "lookbackpercent": "look-back demand minimums",
    "lookbackmonths": "look-back demand minimums",
    "lookbackrange": "look-back demand minimums",
    "fixedchargeeaaddl": "charges per additional meter",
    "demandreactivepowercharge": "reactive power charges",
}
MONTHS = range(12)


class _Converter:
    def __init__(self, data: dict, index: int):
        self.data, self.problems, self.prefix = data, [], f"[{index}]."

    def fail(self, field: str, message: str) -> None:
        self.problems.append(Problem("urdb_unsupported", message, self.prefix + field))

    def present(self, key: str) -> bool:
        value = self.data.get(key)
        return value not in (None, "", [], {}, 0)

    def matrix(self, key: str) -> list[list[int]] | None:
        value = self.data.get(key)
        if (
            not isinstance(value, list)
            or len(value) != 12
            or not all(isinstance(row, list) and len(row) == 24 for row in value)
            or not all(type(p) is int and p >= 0 for row in value for p in row)
        ):
            self.fail(key, "12 rows (January to December) of 24 period indices.")
            return None
        return value

    def tiers(self, key: str, period: int, tiers: Any, price_key: str, unit: str) -> tuple[list[dict], str | None]:
        """This format's tiers of one period, and the tier basis its unit implies (month or day)."""
        where = f"{key}[{period}]"
        if not isinstance(tiers, list) or not tiers:
            self.fail(where, "A list of tiers.")
            return [], None
        out, basis = [], None
        for n, tier in enumerate(tiers):
            if not isinstance(tier, dict) or not isinstance(tier.get("rate", 0), int | float):
                self.fail(f"{where}[{n}]", "A tier is an object with a numeric rate.")
                continue
            price = round(float(tier.get("rate", 0)) + float(tier.get("adj", 0) or 0), 6)
            entry = {price_key: f"{price:.6f}"}
            if "max" in tier and tier["max"] is not None and n < len(tiers) - 1:
                entry["up_to"] = str(tier["max"])
            elif n < len(tiers) - 1:
                self.fail(f"{where}[{n}].max", "Every tier but the last has a max.")
            tier_unit = tier.get("unit", unit)
            if unit == "kWh":
                if tier_unit in ("kWh", None):
                    basis = basis or "month"
                elif tier_unit == "kWh daily":
                    basis = "day"
                else:
                    self.fail(f"{where}[{n}].unit", f"Tiers in {tier_unit!r} (e.g. kWh per kW) cannot be billed here.")
            elif tier_unit not in (unit, None):
                self.fail(f"{where}[{n}].unit", f"Demand tiers in {unit}, not {tier_unit!r}.")
            out.append(entry)
        if len(out) == 1:
            out = [{price_key: out[0][price_key]}]
        return out, basis

    def windows(self, weekday: list[list[int]], weekend: list[list[int]], period: int) -> list[dict]:
        """The period's windows: groups of months with the same hours, weekdays and weekends together or apart."""

        def spans(hours: list[int]) -> list[list[int]]:
            out: list[list[int]] = []
            for h in hours:
                if out and out[-1][1] == h:
                    out[-1][1] = h + 1
                else:
                    out.append([h, h + 1])
            return out

        groups: dict[tuple, list[int]] = {}
        for m in MONTHS:
            days = tuple(h for h in range(24) if weekday[m][h] == period)
            ends = tuple(h for h in range(24) if weekend[m][h] == period)
            if days or ends:
                groups.setdefault((days, ends), []).append(m + 1)
        out = []
        for (days, ends), months in groups.items():
            base = {"months": months}
            if days == ends:
                out.append(base | ({"hours": spans(list(days))} if len(days) < 24 else {}))
                continue
            for kind, hours in (("weekdays", days), ("weekends", ends)):
                if hours:
                    out.append(base | {"days": kind} | ({"hours": spans(list(hours))} if len(hours) < 24 else {}))
        return out


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _describe(window: dict) -> str:
    """' (Jun-Sep, weekdays)': a charge's months and days, to tell a period's charges apart on a bill."""
    runs: list[list[int]] = []
    for m in window.get("months", []):
        if runs and runs[-1][1] == m - 1:
            runs[-1][1] = m
        else:
            runs.append([m, m])
    months = ", ".join(
        _MONTH_NAMES[a - 1] if a == b else f"{_MONTH_NAMES[a - 1]}-{_MONTH_NAMES[b - 1]}" for a, b in runs
    )
    return f" ({months}{', ' + window['days'] if 'days' in window else ''})"


def _convert(data: dict, index: int, utility: str | None, code: str | None) -> tuple[dict | None, list[Problem]]:
    c = _Converter(data, index)
    for key, what in _REFUSED.items():
        if c.present(key):
            c.fail(key, f"This tariff format cannot bill {what}.")
    for key in data:
        if key not in _METADATA and key not in _REFUSED and data[key] not in (None, "", [], {}):
            c.fail(key, f"Unknown URDB field {key!r}: refused rather than ignored.")
    definition: dict = {
        "utility": utility or data.get("utility") or "",
        "code": code or data.get("label") or "",
        "name": (data.get("name") or data.get("label") or "")[:200],
    }
    start = data.get("startdate")
    if isinstance(start, int | float):
        definition["effective_from"] = datetime.fromtimestamp(start, UTC).date().isoformat()
    else:
        c.fail("startdate", "The rate's start date (epoch seconds) is its effective date.")
    dg = data.get("dgrules") or ""
    sell_wanted = dg in ("Net Billing Instantaneous", "Net Billing Hourly")
    if dg and dg not in ("Net Metering", "Net Billing Instantaneous", "Net Billing Hourly"):
        c.fail("dgrules", f"{dg!r} cannot be billed here (net metering and net billing can).")

    energy, export_periods, basis = [], [], set()
    structure = data.get("energyratestructure")
    if structure:
        weekday, weekend = c.matrix("energyweekdayschedule"), c.matrix("energyweekendschedule")
        if weekday and weekend and isinstance(structure, list):
            for period, tiers in enumerate(structure):
                prices, period_basis = c.tiers("energyratestructure", period, tiers, "price_per_kwh", "kWh")
                if period_basis:
                    basis.add(period_basis)
                windows = c.windows(weekday, weekend, period)
                if len(prices) > 1 and any("days" in w for w in windows):
                    c.fail(
                        f"energyratestructure[{period}]",
                        "A tiered period that differs between weekdays and weekends cannot be billed here.",
                    )
                for window in windows:
                    name = f"period {period + 1}" + (_describe(window) if len(windows) > 1 else "")
                    charge = {"name": name, **window}
                    energy.append(charge | ({"tiers": prices} if len(prices) > 1 else prices[0] if prices else {}))
                    if sell_wanted:
                        sell = (
                            tiers[0].get("sell")
                            if isinstance(tiers, list) and tiers and isinstance(tiers[0], dict)
                            else None
                        )
                        if not isinstance(sell, int | float):
                            c.fail(
                                f"energyratestructure[{period}][0].sell", "Net billing needs each period's sell rate."
                            )
                        else:
                            export_periods.append({"name": name, **window, "credit_per_kwh": f"{float(sell):.6f}"})
    else:
        c.fail("energyratestructure", "A rate needs its energy charges.")
    if len(basis) > 1:
        c.fail("energyratestructure", "Tiers per month and per day in one rate cannot be billed here.")
    definition["energy"] = energy
    if basis == {"day"}:
        definition["tier_basis"] = "day"

    demand = []
    ratchets = data.get("demandratchetpercentage")
    ratchet = None
    if ratchets not in (None, []):
        if not isinstance(ratchets, list) or len(ratchets) != 12 or len({float(r) for r in ratchets}) != 1:
            c.fail("demandratchetpercentage", "A ratchet that changes by month cannot be billed here.")
        elif float(ratchets[0]) > 0:
            ratchet = float(ratchets[0])
            ratchet = ratchet * 100 if ratchet <= 1 else ratchet
    if data.get("demandratestructure"):
        weekday, weekend = c.matrix("demandweekdayschedule"), c.matrix("demandweekendschedule")
        if weekday and weekend:
            for period, tiers in enumerate(data["demandratestructure"]):
                prices, _ = c.tiers("demandratestructure", period, tiers, "price_per_kw", "kW")
                windows = c.windows(weekday, weekend, period)
                for window in windows:
                    name = f"demand period {period + 1}" + (_describe(window) if len(windows) > 1 else "")
                    demand.append(
                        {"name": name, **window}
                        | ({"tiers": prices} if len(prices) > 1 else prices[0] if prices else {})
                    )
    if data.get("flatdemandstructure"):
        months = data.get("flatdemandmonths")
        if not isinstance(months, list) or len(months) != 12 or not all(type(p) is int for p in months):
            c.fail("flatdemandmonths", "12 period indices, January to December.")
        else:
            for period, tiers in enumerate(data["flatdemandstructure"]):
                prices, _ = c.tiers("flatdemandstructure", period, tiers, "price_per_kw", "kW")
                in_months = [m + 1 for m in MONTHS if months[m] == period]
                if in_months and prices:
                    window = {"months": in_months} if len(in_months) < 12 else {}
                    demand.append(
                        {"name": f"flat demand {period + 1}", **window}
                        | ({"tiers": prices} if len(prices) > 1 else prices[0])
                    )
    if ratchet is not None:
        for charge in demand:
            charge["ratchet_pct"] = f"{ratchet:g}"
    if demand:
        definition["demand"] = demand
    if data.get("demandwindow"):
        definition["demand_interval_minutes"] = data["demandwindow"]
    if data.get("fixedchargefirstmeter"):
        units = data.get("fixedchargeunits") or "$/month"
        per = {"$/month": "per_month", "$/day": "per_day"}.get(units)
        if per is None:
            c.fail("fixedchargeunits", f"Fixed charges in {units!r} cannot be billed here ($/month or $/day can).")
        else:
            definition["fixed"] = [{"name": "fixed charge", per: f"{float(data['fixedchargefirstmeter']):.6f}"}]
    if data.get("mincharge"):
        units = data.get("minchargeunits") or "$/month"
        if units != "$/month":
            c.fail("minchargeunits", f"Minimum charges in {units!r} cannot be billed here ($/month can).")
        else:
            definition["minimum"] = {"per_month": f"{float(data['mincharge']):.6f}"}
    if dg == "Net Metering":
        definition["export"] = {"net_metering": True}
    elif sell_wanted and export_periods:
        definition["export"] = {"periods": export_periods}
    return (None if c.problems else definition), c.problems


def definitions_from_urdb(data: Any, *, utility: str | None = None, code: str | None = None) -> list[dict]:
    """This project's tariff definitions from URDB JSON (one rate, a list, or {"items": [...]}), or TariffInvalid
    naming every field that cannot be expressed. `utility` and `code` name the tariff as sites do."""
    items = data.get("items") if isinstance(data, dict) and "items" in data else data
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise TariffInvalid(Problem("invalid", 'URDB JSON: a rate object, a list of them or {"items": [...]}.', None))
    if code is not None and len(items) > 1:
        raise TariffInvalid(Problem("invalid", "--code names one rate; the file holds several.", "code"))
    out, problems = [], []
    for index, item in enumerate(items):
        definition, found = _convert(item, index, utility, code)
        problems += found
        if definition is not None:
            out.append(definition)
    if problems:
        raise TariffInvalid(problems)
    return out
