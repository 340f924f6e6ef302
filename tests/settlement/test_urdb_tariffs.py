"""A tariff from the OpenEI Utility Rate Database, imported and billed by hand; what URDB can say and this format
cannot bill is refused by field."""

import json
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from aggregator.reference import tariffs
from aggregator.reference.models import Tariff
from aggregator.reference.urdb import definitions_from_urdb
from settlement import billing
from tests.factories import SiteFactory
from tests.settlement.test_bills_rich import amounts, readings

SUMMER = {6, 7, 8, 9}


def schedule(weekdays: bool) -> list[list[int]]:
    """Period 1 on summer weekdays 16:00-21:00, period 0 otherwise."""
    return [[1 if weekdays and m + 1 in SUMMER and 16 <= h < 21 else 0 for h in range(24)] for m in range(12)]


RATE = {
    "label": "5e1676e95457a3f87673e3b1",
    "utility": "Example Electric Co",
    "name": "Residential Time of Use",
    "startdate": int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()),
    "sector": "Residential",
    "energyratestructure": [[{"rate": 0.10, "adj": 0.01, "unit": "kWh"}], [{"rate": 0.30, "unit": "kWh"}]],
    "energyweekdayschedule": schedule(True),
    "energyweekendschedule": schedule(False),
    "flatdemandstructure": [[{"rate": 8.0}]],
    "flatdemandmonths": [0] * 12,
    "fixedchargefirstmeter": 10.0,
    "fixedchargeunits": "$/month",
    "dgrules": "Net Metering",
}


@pytest.mark.django_db
def test_a_urdb_rate_is_imported_and_its_bill_checks_by_hand(tmp_path):
    """August 2026 (no holidays; 21 weekdays): 1 kWh an hour, 2 kWh on weekdays 16:00-21:00. On-peak 21 x 5 = 105
    hours x 2 kWh = 210 kWh x $0.30 = 63.00; off-peak 744 - 105 = 639 kWh x ($0.10 + $0.01) = 70.29; flat demand
    2 kW x $8 = 16.00; fixed 10.00: 159.29."""
    path = tmp_path / "urdb.json"
    path.write_text(json.dumps({"items": [RATE]}))
    call_command("import_tariffs", str(path), "--urdb", "--utility", "EXCO", "--code", "RES-TOU")
    stored = Tariff.objects.get()
    assert (stored.utility, stored.code, str(stored.effective_from)) == ("EXCO", "RES-TOU", "2026-01-01")
    site = SiteFactory(utility="EXCO", retail_tariff="RES-TOU", time_zone="America/New_York")
    readings(site, 2026, 8, lambda local: 2 if local.weekday() < 5 and 16 <= local.hour < 21 else 1)

    bill = billing.monthly(site, 2026, 8)

    # Period 1 (off-peak) is two charges in August: summer weekdays' other hours (399 kWh) and summer weekends (240).
    assert {k: str(v) for k, v in amounts(bill).items()} == {
        "period 1 (Jun-Sep, weekdays)": "43.89",
        "period 1 (Jun-Sep, weekends)": "26.40",
        "period 2": "63.00",
        "flat demand 1": "16.00",
        "fixed charge": "10.00",
    }
    assert str(bill["actual"]["total"]) == "159.29"
    assert tariffs.parse(stored.definition).net_metering is not None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"coincidentratestructure": [[{"rate": 3.0}]]}, "[0].coincidentratestructure"),
        (
            {"energyratestructure": [[{"rate": 0.1, "max": 10, "unit": "kWh/kW"}, {"rate": 0.2}], [{"rate": 0.3}]]},
            "[0].energyratestructure[0][0].unit",
        ),
        ({"demandratchetpercentage": [0.8] * 6 + [0.5] * 6}, "[0].demandratchetpercentage"),
        ({"dgrules": "Buy All Sell All"}, "[0].dgrules"),
        ({"fixedchargeunits": "$/year"}, "[0].fixedchargeunits"),
        ({"somethingnew": 4}, "[0].somethingnew"),
        ({"energyweekdayschedule": [[0] * 24] * 11}, "[0].energyweekdayschedule"),
    ],
)
def test_what_cannot_be_billed_as_the_rate_says_is_refused_by_field(change, field):
    with pytest.raises(tariffs.TariffInvalid) as refused:
        definitions_from_urdb(RATE | change, utility="EXCO", code="RES-TOU")
    assert field in {p.field for p in refused.value.problems}


@pytest.mark.django_db
def test_the_command_stores_nothing_when_a_rate_is_refused(tmp_path):
    path = tmp_path / "urdb.json"
    path.write_text(json.dumps([RATE | {"label": "a"}, RATE | {"label": "b", "dgrules": "Buy All Sell All"}]))
    with pytest.raises(CommandError, match=r"\[1\]\.dgrules"):
        call_command("import_tariffs", str(path), "--urdb", "--utility", "EXCO")
    assert not Tariff.objects.exists()
