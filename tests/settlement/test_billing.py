"""Retail tariffs and bills: a hand-computed bill for November 2025 in New York (the autumn DST month,
Thanksgiving a holiday), its counterfactuals without the battery and solar, and the savings split."""

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from aggregator.reference import readings as meter
from aggregator.reference import services as reference_services
from aggregator.reference import tariffs
from aggregator.reference.models import Tariff
from tests.factories import DeviceFactory, SiteFactory

NY = ZoneInfo("America/New_York")
TARIFF = {
    "utility": "TESTCO",
    "code": "TOU-1",
    "name": "Winter time of use",
    "effective_from": "2025-01-01",
    "seasons": {"winter": [11, 12, 1, 2]},
    "energy": [
        {
            "name": "winter on-peak",
            "season": "winter",
            "days": "weekdays",
            "hours": [[17, 20]],
            "price_per_kwh": "0.30",
        },
        {"name": "off-peak", "price_per_kwh": "0.10"},
    ],
    "demand": [
        {"name": "facility demand", "price_per_kw": "5.00"},
        {
            "name": "on-peak demand",
            "season": "winter",
            "days": "weekdays",
            "hours": [[17, 20]],
            "price_per_kw": "10.00",
        },
    ],
    "fixed": [{"name": "customer charge", "per_month": "12.00"}],
    "export": {"credit_per_kwh": "0.04"},
}


def hours_of_november_2025():
    """Every local hour of the month, as UTC steps: 721 of them (2 November has 25 hours)."""
    at, end = datetime(2025, 11, 1, tzinfo=NY).astimezone(ZoneInfo("UTC")), datetime(2025, 12, 1, tzinfo=NY)
    while at < end:
        yield at.astimezone(NY)
        at += timedelta(hours=1)


def on_peak(local: datetime) -> bool:
    return local.weekday() < 5 and local.day != 27 and 17 <= local.hour < 20  # 27 November: Thanksgiving


def store(rows, *, sites=None, devices=None):
    readings = [{"start": at.isoformat(), "interval_seconds": 3600, "kwh": kwh, **extra} for at, kwh, extra in rows]
    lines, _ = meter.parse(readings, meters=meter.Meters(devices=devices or {}, default_device=None), sites=sites)
    meter.store(lines=lines, starts=lambda: enumerate(r["start"] for r in readings))


@pytest.fixture
def site(db):
    reference_services.save_tariffs([TARIFF])
    site = SiteFactory(utility="TESTCO", retail_tariff="TOU-1", time_zone="America/New_York")
    battery = DeviceFactory(site=site, device_type="battery")
    solar = DeviceFactory(site=site, device_type="solar_pv", charge_kw=None, energy_kwh=None, backup_reserve_pct=None)
    special = {
        datetime(2025, 11, 11, 18, tzinfo=NY): 6,
        datetime(2025, 11, 11, 2, tzinfo=NY): 5,
        datetime(2025, 11, 15, 12, tzinfo=NY): -3,
        datetime(2025, 11, 22, 3, tzinfo=NY): 9,
    }
    hours = list(hours_of_november_2025())
    assert len(hours) == 721
    store(
        [(at, special.get(at, 2 if on_peak(at) else 1), {"site": site.pk}) for at in hours], sites=frozenset({site.pk})
    )
    devices = {battery.pk: (site.pk, "battery", True), solar.pk: (site.pk, "solar_pv", False)}
    store(
        [
            (datetime(2025, 11, 11, 2, tzinfo=NY), 4, {"device": battery.pk}),  # charged overnight
            (datetime(2025, 11, 11, 18, tzinfo=NY), -4, {"device": battery.pk}),  # discharged at the peak
            (datetime(2025, 11, 15, 12, tzinfo=NY), -5, {"device": solar.pk}),
        ],
        devices=devices,
    )
    return site


def amounts(bill):
    return {line["name"]: line["amount"] for line in bill["lines"]}


def test_a_hand_computed_bill_in_the_dst_month_and_what_the_equipment_saved(site, api_as):
    response = api_as("analyst").get(f"/api/v1/sites/{site.pk}/bill/", {"month": "2025-11"})
    assert response.status_code == 200, response.content
    bill = response.json()
    assert (bill["intervals"], bill["expected_intervals"], bill["missing_intervals"]) == (721, 721, 0)
    # On-peak: 19 weekdays (Thanksgiving is a holiday) x 3 hours = 57 intervals, 56 x 2 kWh + 6 kWh = 118 kWh.
    # Off-peak: 721 - 57 = 664 intervals: 661 x 1 + 9 + 5 kWh imported = 675 kWh, and 3 kWh exported.
    assert amounts(bill["actual"]) == {
        "winter on-peak": "35.40",  # 118 x 0.30
        "off-peak": "67.50",  # 675 x 0.10
        "export credit": "-0.12",  # 3 x 0.04
        "facility demand": "45.00",  # 9 kW (22 Nov 03:00) x 5.00
        "on-peak demand": "60.00",  # 6 kW (11 Nov 18:00) x 10.00
        "customer charge": "12.00",
    }
    assert bill["actual"]["total"] == "219.78"
    facility = next(line for line in bill["actual"]["lines"] if line["name"] == "facility demand")
    assert (facility["quantity"], facility["at"]) == ("9.000", "2025-11-22T03:00:00-05:00")
    # Without the battery: 11 Nov 02:00 is 1 kWh and 18:00 is 10 kWh; without solar too, 15 Nov 12:00 imports 2 kWh.
    assert amounts(bill["with_solar_only"]) == {
        "winter on-peak": "36.60",
        "off-peak": "67.10",
        "export credit": "-0.12",
        "facility demand": "50.00",
        "on-peak demand": "100.00",
        "customer charge": "12.00",
    }
    assert bill["with_solar_only"]["total"] == "265.58"
    assert bill["without_equipment"]["total"] == "265.90"
    assert bill["savings"] == {
        "self_consumption": "0.32",
        "peak_shaving": "45.00",
        "time_of_use_shifting": "0.80",
        "grid_services": "0.00",
        "total": "46.12",
    }


def test_no_tariff_or_a_bad_month_is_a_clear_error(site, api_as):
    client = api_as("analyst")
    bad = client.get(f"/api/v1/sites/{site.pk}/bill/", {"month": "November"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "month"
    early = client.get(f"/api/v1/sites/{site.pk}/bill/", {"month": "2024-11"})
    assert early.status_code == 400 and early.json()["errors"][0]["code"] == "no_tariff"


def test_a_new_version_applies_from_its_first_month(site, api_as):
    reference_services.save_tariffs(
        [{**TARIFF, "effective_from": "2025-11-01", "fixed": [{"name": "customer charge", "per_month": "15.00"}]}]
    )
    bill = api_as("analyst").get(f"/api/v1/sites/{site.pk}/bill/", {"month": "2025-11"}).json()
    assert amounts(bill["actual"])["customer charge"] == "15.00" and bill["tariff"]["effective_from"] == "2025-11-01"


@pytest.mark.django_db
def test_tariff_files_are_checked_whole_and_load_as_json_or_csv(tmp_path):
    uncovered = {**TARIFF, "energy": [TARIFF["energy"][0]]}
    with pytest.raises(tariffs.TariffInvalid) as refused:
        reference_services.save_tariffs(
            [TARIFF, uncovered, {**TARIFF, "code": "X", "energy": [{"name": "e", "price_per_kwh": "cheap"}]}]
        )
    fields = [p.field for p in refused.value.problems]
    assert fields == ["tariffs[1].energy", "tariffs[2].energy[0].price_per_kwh"]
    assert not Tariff.objects.exists()

    path = tmp_path / "tariff.csv"
    path.write_text(
        "utility,code,name,effective_from,kind,charge,months,days,hours,price\n"
        'TESTCO,TOU-1,Winter time of use,2025-01-01,energy,winter on-peak,"11,12,1-2",weekdays,17-20,0.30\n'
        "TESTCO,TOU-1,Winter time of use,2025-01-01,energy,off-peak,,,,0.10\n"
        "TESTCO,TOU-1,Winter time of use,2025-01-01,demand,facility demand,,,,5.00\n"
        "TESTCO,TOU-1,Winter time of use,2025-01-01,demand,on-peak demand,11-2,weekdays,17-20,10.00\n"
        "TESTCO,TOU-1,Winter time of use,2025-01-01,fixed,customer charge,,,,12.00\n"
        "TESTCO,TOU-1,Winter time of use,2025-01-01,export,export credit,,,,0.04\n"
    )
    with pytest.raises(CommandError, match="months"):  # "11-2" is not a range of months
        call_command("import_tariffs", str(path))
    path.write_text(path.read_text().replace("demand,on-peak demand,11-2,", 'demand,on-peak demand,"11,12,1,2",'))
    call_command("import_tariffs", str(path))
    from_csv = Tariff.objects.get().spec()
    json_path = tmp_path / "tariff.json"
    json_path.write_text(json.dumps(TARIFF))
    call_command("import_tariffs", str(json_path))
    assert Tariff.objects.count() == 1  # the same version, replaced
    assert Tariff.objects.get().spec() == from_csv


@pytest.mark.django_db
def test_operators_add_a_tariff_version_in_the_admin_checked_whole(browser):
    bad = browser.post("/admin/settlement/tariff/add/", {"definition": json.dumps({**TARIFF, "energy": []})})
    assert bad.status_code == 200 and b"energy" in bad.content and not Tariff.objects.exists()
    added = browser.post("/admin/settlement/tariff/add/", {"definition": json.dumps(TARIFF)})
    assert added.status_code == 302
    row = Tariff.objects.get()
    assert (row.utility, row.code, str(row.effective_from)) == ("TESTCO", "TOU-1", "2025-01-01")
    again = browser.post("/admin/settlement/tariff/add/", {"definition": json.dumps(TARIFF)})
    assert again.status_code == 200 and b"already has a version" in again.content and Tariff.objects.count() == 1
