"""Bills under the richer tariff format, hand-computed on hourly (or 15-minute) readings in New York:
tiers, per-day charges, minimums, demand windows and ratchets, net metering's carry-forward and true-up with
non-bypassable charges, export by time-of-use period with the tariff's own holidays, a mid-month change."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from aggregator.reference import services as reference_services
from settlement import billing
from tests.factories import SiteFactory
from tests.settlement.test_billing import store

NY = ZoneInfo("America/New_York")


def tariff(**parts):
    return {"utility": "RICHCO", "code": "R", "name": "Rich", "effective_from": "2025-01-01"} | parts


@pytest.fixture
def site(db):
    return SiteFactory(utility="RICHCO", retail_tariff="R", time_zone="America/New_York")


def month_hours(year, month, minutes=60):
    at = datetime(year, month, 1, tzinfo=NY).astimezone(UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=NY).astimezone(UTC)
    while at < end:
        yield at
        at += timedelta(minutes=minutes)


def readings(site, year, month, kwh, minutes=60):
    """kwh(local start) per interval of the month."""
    rows = [(at.astimezone(NY), kwh(at.astimezone(NY)), {"site": site.pk}) for at in month_hours(year, month, minutes)]
    if minutes == 60:
        store(rows, sites=frozenset({site.pk}))
        return
    from aggregator.reference import readings as meter

    batch = [{"start": at.isoformat(), "interval_seconds": minutes * 60, "kwh": v, **e} for at, v, e in rows]
    lines, _ = meter.parse(batch, meters=meter.Meters(devices={}, default_device=None), sites=frozenset({site.pk}))
    meter.store(lines=lines, starts=lambda: enumerate(r["start"] for r in batch))


def amounts(bill):
    return {line["name"]: D(str(line["amount"])) for line in bill["actual"]["lines"]}


def test_energy_tiers_a_per_day_fixed_charge_and_the_minimum_bill(site):
    """June 2026, 720 hours at 1 kWh: 500 at $0.10 = 50.00 and 220 at $0.15 = 33.00; $0.50 a day x 30 = 15.00;
    98.00 is below the $100 minimum: a minimum charge of 2.00 makes it 100.00."""
    reference_services.save_tariffs(
        [
            tariff(
                energy=[
                    {
                        "name": "all hours",
                        "tiers": [
                            {"up_to": "500", "price_per_kwh": "0.10"},
                            {"up_to": "1000", "price_per_kwh": "0.15"},
                            {"price_per_kwh": "0.20"},
                        ],
                    }
                ],
                fixed=[{"name": "daily charge", "per_day": "0.50"}],
                minimum={"per_month": "100.00"},
            )
        ]
    )
    readings(site, 2026, 6, lambda local: 1)
    bill = billing.monthly(site, 2026, 6)
    assert amounts(bill) == {
        "all hours (tier 1)": D("50.00"),
        "all hours (tier 2)": D("33.00"),
        "daily charge": D("15.00"),
        "minimum charge": D("2.00"),
    }
    assert bill["actual"]["total"] == D("100.00")


def test_tiers_sized_per_day_on_the_25_hour_month(site):
    """November 2025 has 721 hours (2 November repeats 01:00) and 30 days. Tiers of 10 and 20 kWh a day:
    300 at $0.10 = 30.00, 300 at $0.15 = 45.00, the other 121 at $0.20 = 24.20."""
    tiers = [
        {"up_to": "10", "price_per_kwh": "0.10"},
        {"up_to": "20", "price_per_kwh": "0.15"},
        {"price_per_kwh": "0.20"},
    ]
    reference_services.save_tariffs([tariff(tier_basis="day", energy=[{"name": "all hours", "tiers": tiers}])])
    readings(site, 2025, 11, lambda local: 1)
    bill = billing.monthly(site, 2025, 11)
    assert amounts(bill) == {
        "all hours (tier 1)": D("30.00"),
        "all hours (tier 2)": D("45.00"),
        "all hours (tier 3)": D("24.20"),
    }


@pytest.mark.parametrize(("averaging", "peak"), [("fixed", D(8)), ("rolling", D(12)), (None, D(12))])
def test_demand_over_the_tariffs_interval_fixed_or_rolling(site, averaging, peak):
    """15-minute readings, 0.25 kWh each but 1, 3, 3, 1 kWh from 18:00 on 10 June 2026. Over fixed 30-minute
    blocks the peak is (1 + 3) / 0.5 h = 8 kW; over a rolling 30 minutes (3 + 3) / 0.5 = 12 kW; over the
    meter's own 15 minutes 3 / 0.25 = 12 kW. At $10/kW."""
    extra = {"demand_interval_minutes": 30, "demand_averaging": averaging} if averaging else {}
    reference_services.save_tariffs(
        [
            tariff(
                energy=[{"name": "all", "price_per_kwh": "0"}],
                demand=[{"name": "demand", "price_per_kw": "10"}],
                **extra,
            )
        ]
    )
    spike = {datetime(2026, 6, 10, 18, m, tzinfo=NY): v for m, v in ((0, 1), (15, 3), (30, 3), (45, 1))}
    readings(site, 2026, 6, lambda local: spike.get(local, 0.25), minutes=15)
    line = next(line for line in billing.monthly(site, 2026, 6)["actual"]["lines"] if line["kind"] == "demand")
    assert D(str(line["quantity"])) == peak and D(str(line["amount"])) == peak * 10


def test_a_demand_ratchet_bills_80_percent_of_the_highest_peak_of_the_last_11_months(site):
    """May 2026 peaked at 20 kW; June 2026 peaks at 10: billing demand is 80% x 20 = 16 kW x $5 = 80.00."""
    reference_services.save_tariffs(
        [
            tariff(
                energy=[{"name": "all", "price_per_kwh": "0"}],
                demand=[{"name": "billing demand", "price_per_kw": "5", "ratchet_pct": "80", "ratchet_months": 11}],
            )
        ]
    )
    readings(site, 2026, 5, lambda local: 20 if (local.day, local.hour) == (12, 15) else 1)
    readings(site, 2026, 6, lambda local: 10 if (local.day, local.hour) == (3, 15) else 1)
    (line,) = [line for line in billing.monthly(site, 2026, 6)["actual"]["lines"] if line["kind"] == "demand"]
    assert line["name"] == "billing demand (ratchet)" and D(str(line["peak_kw"])) == 10
    assert (D(str(line["quantity"])), D(str(line["amount"]))) == (D(16), D("80.00"))


NET_METERING = {
    "energy": [{"name": "all", "price_per_kwh": "0.20"}],
    "fixed": [{"name": "customer charge", "per_month": "10.00"}],
}


def solar_month(site, year, month, *, imports, exports):
    """`imports` kWh over the month's first hours, `exports` kWh exported over the next ones (1 kWh each), 0 otherwise."""
    hours = list(month_hours(year, month))
    values = dict.fromkeys(hours[:imports], 1) | dict.fromkeys(hours[imports : imports + exports], -1)
    readings(site, year, month, lambda local: values.get(local.astimezone(UTC), 0))


def test_net_metering_carries_kwh_forward_to_the_true_up_and_never_offsets_non_bypassable_charges(site):
    """True-up in November. October 2025: 100 kWh in, 150 out: nothing billed for energy, 50 kWh carried;
    non-bypassable 100 x $0.02 = 2.00. November: 100 in, 180 out: 100 - (180 + 50) < 0, so 130 kWh are left at
    the true-up and paid at $0.03 = 3.90; non-bypassable 2.00; customer charge 10.00: 8.10."""
    export = {
        "net_metering": True,
        "carry_forward": "kwh",
        "true_up_month": 11,
        "true_up_per_kwh": "0.03",
        "non_bypassable_per_kwh": "0.02",
    }
    reference_services.save_tariffs([tariff(**NET_METERING, export=export)])
    solar_month(site, 2025, 10, imports=100, exports=150)
    solar_month(site, 2025, 11, imports=100, exports=180)

    october = billing.monthly(site, 2025, 10)["actual"]
    assert october["carried_forward"]["kwh"] == D(50) and october["total"] == D("12.00")
    november = billing.monthly(site, 2025, 11)["actual"]
    assert amounts({"actual": november}) == {
        "non-bypassable charges": D("2.00"),
        "annual true-up: surplus kWh paid": D("-3.90"),
        "customer charge": D("10.00"),
    }
    assert november["total"] == D("8.10") and november["carried_forward"]["kwh"] == 0


def test_net_metering_in_dollars_caps_each_month_at_its_energy_charges(site):
    """Carry in $: October 2025 imports 100 kWh ($20.00) and exports 150 ($30.00): the credit is 20.00 and $10.00
    goes on to November, which imports 100 ($20.00) and exports 20 ($4.00): credit 4 + 10 = 14.00."""
    reference_services.save_tariffs([tariff(**NET_METERING, export={"net_metering": True, "carry_forward": "dollars"})])
    solar_month(site, 2025, 10, imports=100, exports=150)
    solar_month(site, 2025, 11, imports=100, exports=20)
    october = billing.monthly(site, 2025, 10)["actual"]
    assert october["totals"]["export"] == D("-20.00") and october["carried_forward"]["dollars"] == D("10.00")
    november = billing.monthly(site, 2025, 11)["actual"]
    assert november["totals"]["export"] == D("-14.00") and november["total"] == D("16.00")


def test_export_by_time_of_use_period_and_the_tariffs_own_holidays(site):
    """Export credited $0.30 on weekday evenings (17-20) and $0.05 otherwise. 2 kWh exported at 18:00 on Mon
    10 November 2025 and on Tue 11 November (Veterans Day: the market's calendar has no holiday, the tariff's
    does): 2 x 0.30 + 2 x 0.05 = 0.70 credited."""
    reference_services.save_tariffs(
        [
            tariff(
                holidays=["2025-11-11"],
                energy=[{"name": "all", "price_per_kwh": "0.10"}],
                export={
                    "periods": [
                        {"name": "evening", "days": "weekdays", "hours": [[17, 20]], "credit_per_kwh": "0.30"},
                        {"name": "other hours", "credit_per_kwh": "0.05"},
                    ]
                },
            )
        ]
    )
    sent = {datetime(2025, 11, 10, 18, tzinfo=NY): -2, datetime(2025, 11, 11, 18, tzinfo=NY): -2}
    readings(site, 2025, 11, lambda local: sent.get(local, 0))
    bill = billing.monthly(site, 2025, 11)
    assert amounts(bill) == {"export credit, evening": D("-0.60"), "export credit, other hours": D("-0.10")}


def test_a_mid_month_tariff_change_is_prorated_by_days(site):
    """Version A ($0.10/kWh, $30/month) to 15 November 2025, version B ($0.20/kWh, $30/month) from the 16th.
    1 kWh an hour: A bills 1-15 November, 361 hours (the 2nd has 25) = 36.10 and 15/30 of $30 = 15.00; B the
    other 360 hours = 72.00 and 15.00."""
    fixed = [{"name": "customer charge", "per_month": "30.00"}]
    reference_services.save_tariffs(
        [
            tariff(energy=[{"name": "energy", "price_per_kwh": "0.10"}], fixed=fixed),
            tariff(effective_from="2025-11-16", energy=[{"name": "energy", "price_per_kwh": "0.20"}], fixed=fixed),
        ]
    )
    readings(site, 2025, 11, lambda local: 1)
    bill = billing.monthly(site, 2025, 11)
    assert amounts(bill) == {
        "energy (2025-11-01 to 2025-11-15)": D("36.10"),
        "customer charge (2025-11-01 to 2025-11-15)": D("15.00"),
        "energy (2025-11-16 to 2025-11-30)": D("72.00"),
        "customer charge (2025-11-16 to 2025-11-30)": D("15.00"),
    }
    assert [v["from"] for v in bill["tariff_versions"]] == ["2025-11-01", "2025-11-16"]
