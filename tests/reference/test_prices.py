"""Energy prices per pricing node: the CSV import analysts run, and what settlement reads."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from aggregator.reference.models import EnergyPrice
from aggregator.reference.prices import import_prices, prices_at
from tests.factories import market


def run(tmp_path, text: str, code: str = "PJM"):
    path = tmp_path / "prices.csv"
    path.write_text(text)
    call_command("import_prices", "--market", code, "--data", str(path))


def test_prices_are_stored_per_node_and_interval_and_read_back_by_window(db, tmp_path):
    run(
        tmp_path,
        "node,start,price_per_mwh,interval_minutes\n"
        "PECO_N001,2025-07-15T14:00:00-04:00,182.50,60\n"
        "PECO_N001,2025-07-15T15:00:00-04:00,-3.25,60\n"
        "PECO_N002,2025-07-15T14:00:00-04:00,90,60\n",
    )
    got = prices_at(
        market=market("PJM"),
        node="PECO_N001",
        start=datetime(2025, 7, 15, 18, tzinfo=UTC),
        end=datetime(2025, 7, 15, 20, tzinfo=UTC),
    )
    assert got == {
        datetime(2025, 7, 15, 18, tzinfo=UTC): Decimal("182.5000"),
        datetime(2025, 7, 15, 19, tzinfo=UTC): Decimal("-3.2500"),
    }  # negative prices are real and kept


def test_a_reimport_replaces_a_corrected_price_without_duplicating(db, tmp_path):
    run(tmp_path, "node,start,price_per_mwh\nPECO_N001,2025-07-15T14:00:00-04:00,100\n")
    run(tmp_path, "node,start,price_per_mwh\nPECO_N001,2025-07-15T14:00:00-04:00,101.5\n")
    (price,) = EnergyPrice.objects.all()
    assert (
        price.price_per_mwh == Decimal("101.5") and price.interval_minutes == 5
    )  # PJM's settlement interval by default


def test_the_repeated_hour_of_the_fall_back_day_is_two_prices(db, tmp_path):
    run(
        tmp_path,
        "node,start,price_per_mwh,interval_minutes\n"
        "PECO_N001,2025-11-02T01:00:00-04:00,40,60\n"
        "PECO_N001,2025-11-02T01:00:00-05:00,41,60\n",
    )
    assert sorted(EnergyPrice.objects.values_list("start", "price_per_mwh")) == [
        (datetime(2025, 11, 2, 5, tzinfo=UTC), Decimal("40.0000")),
        (datetime(2025, 11, 2, 6, tzinfo=UTC), Decimal("41.0000")),
    ]


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("PECO_N001,2025-07-15T14:00:00,100,60", "start"),  # no offset: which 14:00?
        ("PECO_N001,yesterday,100,60", "start"),
        ("PECO_N001,2025-07-15T14:07:00-04:00,100,60", "start"),  # off the hourly grid
        ("PECO_N001,2025-07-15T14:00:00-04:00,cheap,60", "price_per_mwh"),
        ("PECO_N001,2025-07-15T14:00:00-04:00,100,7", "interval_minutes"),
        (",2025-07-15T14:00:00-04:00,100,60", "node"),
        ("PECO_N001,2025-07-15T13:00:00-04:00,100,60", "start"),  # the same interval as line 2
    ],
)
def test_a_bad_row_is_named_by_line_and_field_and_nothing_is_written(db, tmp_path, capsys, row, field):
    text = "node,start,price_per_mwh,interval_minutes\nPECO_N001,2025-07-15T13:00:00-04:00,100,60\n" + row + "\n"
    with pytest.raises(CommandError, match="nothing was imported"):
        run(tmp_path, text)
    assert f"line 3, {field}:" in capsys.readouterr().err
    assert not EnergyPrice.objects.exists()


def test_an_unknown_market_or_a_missing_column_is_refused(db, tmp_path):
    with pytest.raises(CommandError, match="--market"):
        run(tmp_path, "node,start,price_per_mwh\n", code="NOPE")
    report = import_prices(market=market("PJM"), source=b"node,when,price\nX,2025-07-15T14:00:00Z,1\n")
    assert not report.ok and report.problems[0].field == "price_per_mwh,start"
