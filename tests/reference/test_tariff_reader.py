"""The tariff reader refuses what it cannot bill as written: unknown keys and wrong types, each by its path.

Before, a key it did not know was dropped: a tiered tariff (`max_kwh`) was billed wholly at its first
tier, `minimum`, `ratchet_pct` and `per_day` vanished, and a string where JSON true belongs passed."""

import json

import pytest
from django.core.management import CommandError, call_command

from aggregator.reference import tariffs
from aggregator.reference.models import Tariff


def tariff(**changes) -> dict:
    base = {
        "utility": "PECO",
        "code": "RS",
        "name": "Residential",
        "effective_from": "2026-01-01",
        "energy": [{"name": "all hours", "price_per_kwh": "0.1500"}],
    }
    return base | changes


def refused(definition) -> dict[str, str]:
    with pytest.raises(tariffs.TariffInvalid) as caught:
        tariffs.parse(definition)
    return {p.field: p.code for p in caught.value.problems}


def test_a_well_formed_tariff_still_reads():
    spec = tariffs.parse(
        tariff(
            seasons={"summer": [6, 7, 8, 9]},
            demand=[
                {"name": "on-peak", "season": "summer", "days": "weekdays", "hours": [[14, 19]], "price_per_kw": "9"}
            ],
            fixed=[{"name": "customer charge", "per_month": "12.00"}],
            export={"net_metering": True},
        )
    )
    assert spec.net_metering and spec.demand[0].window.months == frozenset({6, 7, 8, 9})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {
                "energy": [
                    {"name": "first 500", "max_kwh": 500, "price_per_kwh": "0.10"},
                    {"name": "above", "price_per_kwh": "0.20"},
                ]
            },
            "energy[0].max_kwh",
        ),
        ({"minimum_bill": "10.00"}, "minimum_bill"),
        ({"demand": [{"name": "billing demand", "price_per_kw": "5", "ratchet": 80}]}, "demand[0].ratchet"),
        ({"fixed": [{"name": "customer charge", "per_week": "2.80"}]}, "fixed[0].per_week"),
        (
            {"energy": [{"name": "all", "tiers": [{"max_kwh": 5, "price_per_kwh": "0.1"}]}]},
            "energy[0].tiers[0].max_kwh",
        ),
        ({"export": {"credit_per_kwh": "0.04", "hourly": True}}, "export.hourly"),
    ],
)
def test_an_unknown_key_is_refused_by_its_path(changes, field):
    assert refused(tariff(**changes)).get(field) == "unknown_key"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"export": {"net_metering": "true"}}, "export.net_metering"),
        ({"export": {"net_metering": 1}}, "export.net_metering"),
        ({"export": {"net_metering": True, "credit_per_kwh": "0.04"}}, "export.credit_per_kwh"),
        ({"energy": [{"name": "x", "season": ["summer"], "price_per_kwh": "0.1"}]}, "energy[0].season"),
        ({"energy": [{"name": "x", "days": ["weekdays"], "price_per_kwh": "0.1"}]}, "energy[0].days"),
        ({"energy": [{"name": "x", "months": [True], "price_per_kwh": "0.1"}]}, "energy[0].months"),
        ({"energy": [{"name": "x", "price_per_kwh": 0.1}]}, "energy[0].price_per_kwh"),
        ({"fixed": {"name": "customer charge", "per_month": "12"}}, "fixed"),
        ({"minimum": "10.00"}, "minimum"),
        ({"demand": [{"name": "d", "price_per_kw": "5", "ratchet_pct": "80%"}]}, "demand[0].ratchet_pct"),
        (
            {"energy": [{"name": "all", "price_per_kwh": "0.1", "tiers": [{"price_per_kwh": "0.1"}]}]},
            "energy[0].price_per_kwh",
        ),
        (
            {
                "energy": [
                    {
                        "name": "all",
                        "tiers": [
                            {"up_to": "500", "price_per_kwh": "0.1"},
                            {"up_to": "400", "price_per_kwh": "0.2"},
                            {"price_per_kwh": "0.3"},
                        ],
                    }
                ]
            },
            "energy[0].tiers[1].up_to",
        ),
        ({"demand_interval_minutes": 10}, "demand_interval_minutes"),
        ({"export": {"net_metering": True, "carry_forward": "euros"}}, "export.carry_forward"),
        ({"export": {"credit_per_kwh": "0.04", "true_up_month": 4}}, "export.true_up_month"),
        ({"holidays": ["2026-13-01"]}, "holidays[0]"),
        ({"export": {"net_metering": True, "storage_may_export": "no"}}, "export.storage_may_export"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_by_its_path(changes, field):
    assert field in refused(tariff(**changes))


@pytest.mark.django_db
def test_the_command_stores_nothing_and_names_the_key(tmp_path):
    path = tmp_path / "tiered.json"
    good = tariff(code="OK")
    tiered = tariff(energy=[{"name": "first 500", "max_kwh": 500, "price_per_kwh": "0.10"}])
    path.write_text(json.dumps([good, tiered]))
    with pytest.raises(CommandError, match=r"energy\[0\]\.max_kwh"):
        call_command("import_tariffs", str(path))
    assert not Tariff.objects.exists()


def test_a_storage_integrity_rule_reads_and_defaults_to_exporting():
    assert tariffs.parse(tariff()).storage_may_export is True
    strict = tariffs.parse(tariff(export={"net_metering": True, "storage_may_export": False}))
    assert strict.storage_may_export is False and strict.net_metering is not None
