"""CSV exports: a text cell a spreadsheet would run as a formula is written as text; numbers stay numbers."""

import csv
import io
from decimal import Decimal

import pytest

from aggregator.core.csv_files import safe_cell, write_csv


@pytest.mark.parametrize(
    "value",
    ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "-", "=", "-Infinity"],
)
def test_a_text_cell_starting_like_a_formula_gets_a_leading_quote(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-5.2", "+3", "-75.165222", "-1E+3", "12", "Powerwall 3", "", "a=b", " =x"])
def test_numbers_and_plain_text_are_written_as_they_are(value):
    assert safe_cell(value) == value


@pytest.mark.parametrize("value", [Decimal("-5.2"), -5.2, -3, None, True])
def test_values_that_are_not_text_are_written_as_they_are(value):
    assert safe_cell(value) is value


def test_write_csv_escapes_every_text_cell_of_header_and_rows():
    out = io.StringIO()

    write_csv(out, ["site", "=name"], [[1, "=cmd|' /C calc'!A0"], [2, Decimal("-5.2")]])

    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["site", "'=name"],
        ["1", "'=cmd|' /C calc'!A0"],
        ["2", "-5.2"],
    ]


@pytest.mark.django_db
def test_an_error_asked_for_as_csv_is_json_and_says_so(api_as):
    """A refusal of a CSV export is the one error body, labelled application/json (not text/csv)."""
    response = api_as("analyst").get("/api/v1/settlement-runs/999999/statement/", {"format": "csv"})
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json") and response.json()["status"] == 404
    period = api_as("analyst").get("/api/v1/settlement-statements/", {"format": "csv"})
    assert period.status_code == 400 and period["Content-Type"].startswith("application/json")
