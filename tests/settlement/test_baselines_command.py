"""`manage.py baseline` end to end, with CSV files in tmp_path. No test here uses the database
(pytest-django refuses access without the `db` fixture), so the command must not need it."""

import csv
import io
from datetime import UTC, date, datetime

import pytest
from django.core.management import CommandError, call_command

from tests.settlement.baseline_fixtures import LA, NY, profile, series

JUL = {d: date(2025, 7, d) for d in range(1, 32)}
EVENT = ["--event-start", "2025-07-15T14:00:00-04:00", "--event-end", "2025-07-15T18:00:00-04:00"]
# The PJM case of test_baselines_pjm: high 4 of (10, 8, 12, 6, 9) = 9.75, SAA +1.25 -> 11; actual 4.
PJM_DAYS = {JUL[14]: 10, JUL[11]: 8, JUL[10]: 12, JUL[9]: 6, JUL[8]: 9}
PJM_EVENT_DAY = (
    {(JUL[15], h): 11.0 for h in range(13)} | {(JUL[15], 13): 30.0} | {(JUL[15], h): 4.0 for h in range(14, 18)}
)


def write_readings(path, load, *, first=date(2025, 5, 25), last=JUL[15], tz=NY, minutes=60):
    readings = series(load, first=first, last=last, tz=tz, minutes=minutes)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["start", "value"])
        for start, kwh in zip(readings.starts.tolist(), readings.kwh.tolist(), strict=True):
            writer.writerow([datetime.fromtimestamp(start, UTC).astimezone(tz).isoformat(), kwh])
    return path


@pytest.fixture
def pjm_data(tmp_path):
    return write_readings(tmp_path / "readings.csv", profile(default=7.0, days=PJM_DAYS, hours=PJM_EVENT_DAY))


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("baseline", *[str(a) for a in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def table_rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line[:4].isdigit() and "T" in line.split()[0]]


def refusal(*args) -> str:
    out = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("baseline", *[str(a) for a in args], stdout=out, stderr=io.StringIO())
    assert out.getvalue() == ""  # nothing printed as if it had worked
    return str(error.value)


def test_the_table_shows_each_interval_the_days_and_the_adjustment(pjm_data):
    out, _ = run("--method", "pjm-high-4-of-5", "--data", pjm_data, *EVENT, "--market", "PJM")
    assert table_rows(out) == [[f"2025-07-15T{h}:00:00-04:00", "11.000", "4.000", "7.000"] for h in (14, 15, 16, 17)]
    lines = out.splitlines()
    assert "Days used (4): 2025-07-14, 2025-07-11, 2025-07-10, 2025-07-08" in lines
    assert "  2025-07-09 Wed not_highest" in lines and "  2025-07-04 Fri holiday" in lines
    assert "  (14 more day(s): not_like_day)" in lines  # Sat 31 May to Sun 13 July: 7 weekends
    assert "Adjustment: additive +1.250 kW [2025-07-15T10:00:00-04:00 to 2025-07-15T13:00:00-04:00)" in lines
    assert "Flags: none" in lines


def test_csv_format_puts_only_the_intervals_on_stdout(pjm_data):
    out, err = run("--method", "pjm-high-4-of-5", "--data", pjm_data, *EVENT, "--market", "pjm", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["start"], float(r["baseline_kw"]), float(r["actual_kw"]), float(r["reduction_kw"])) for r in rows] == [
        (f"2025-07-15T{h}:00:00-04:00", 11.0, 4.0, 7.0) for h in (14, 15, 16, 17)
    ]
    assert "Days used (4): 2025-07-14, 2025-07-11, 2025-07-10, 2025-07-08" in err


@pytest.mark.parametrize("content", ["date\n2025-07-10\n", "2025-07-10\n\n"])
def test_event_days_from_a_file_with_or_without_a_header_are_excluded(pjm_data, tmp_path, content):
    days = tmp_path / "days.csv"
    days.write_text(content)
    out, _ = run(
        "--method",
        "pjm-high-4-of-5",
        "--data",
        pjm_data,
        *EVENT,
        "--market",
        "PJM",
        "--event-days",
        days,
        "--param",
        "adjustment=none",
    )
    # Without the 10th (12): pool 14, 11, 9, 8, 7 -> high 4 (10, 9, 8, 7) = 8.5; no adjustment.
    assert "  2025-07-10 Thu event_day" in out.splitlines()
    assert [row[1] for row in table_rows(out)] == ["8.500"] * 4
    assert "Adjustment: none" in out.splitlines()


def test_params_are_passed_as_key_value_pairs(pjm_data):
    out, _ = run(
        "--method",
        "pjm-high-4-of-5",
        "--data",
        pjm_data,
        *EVENT,
        "--market",
        "PJM",
        "--param",
        "adjustment_cap=0.1",
        "--param",
        "floor_at_zero=false",
    )
    # Offset +1.25 capped at 0.1 x 9.75 = 0.975 -> 10.725.
    assert [row[1] for row in table_rows(out)] == ["10.725"] * 4
    assert "Adjustment: additive +0.975 kW (capped from +1.250 kW)" in out


def test_the_time_zone_defaults_to_the_markets(tmp_path):
    data = write_readings(tmp_path / "r.csv", profile(default=5.0), first=date(2025, 6, 1), tz=LA)
    out, _ = run(
        "--method",
        "caiso-10-in-10",
        "--data",
        data,
        "--event-start",
        "2025-07-15T14:00:00-07:00",
        "--event-end",
        "2025-07-15T16:00:00-07:00",
        "--market",
        "CAISO",
    )
    assert [row[0] for row in table_rows(out)] == ["2025-07-15T14:00:00-07:00", "2025-07-15T15:00:00-07:00"]
    assert "Adjustment: multiplicative x1.0000" in out


def test_miso_is_shown_on_eastern_standard_time_in_summer(tmp_path):
    data = write_readings(tmp_path / "r.csv", profile(default=2.0), first=JUL[15])
    out, _ = run(
        "--method",
        "meter-before-meter-after",
        "--data",
        data,
        "--event-start",
        "2025-07-15T14:00:00-05:00",
        "--event-end",
        "2025-07-15T15:00:00-05:00",
        "--market",
        "MISO",
    )
    assert table_rows(out) == [["2025-07-15T14:00:00-05:00", "2.000", "2.000", "0.000"]]
    assert "Reference window: 2025-07-15T13:00:00-05:00 to 2025-07-15T14:00:00-05:00" in out


def test_a_missing_actual_is_shown_as_a_dash_and_flagged(tmp_path):
    data = write_readings(tmp_path / "r.csv", profile(default=2.0, hours={(JUL[15], 14): None}), first=JUL[15])
    out, _ = run("--method", "meter-before-meter-after", "--data", data, *EVENT, "--time-zone", "America/New_York")
    assert table_rows(out)[0] == ["2025-07-15T14:00:00-04:00", "2.000", "-", "0.000"]
    assert "Flags: missing_actual" in out


def test_a_naive_timestamp_is_refused_naming_its_line(tmp_path):
    data = tmp_path / "r.csv"
    data.write_text("start,value\n2025-07-15T12:00:00-04:00,1\n2025-07-15T13:00:00,1\n")
    message = refusal("--method", "meter-before-meter-after", "--data", data, *EVENT, "--market", "PJM")
    assert "r.csv line 3, start" in message and "UTC offset" in message


def test_an_unreadable_value_is_refused_naming_its_line(tmp_path):
    data = tmp_path / "r.csv"
    data.write_text(
        "start,value\n2025-07-15T11:00:00-04:00,1\n2025-07-15T12:00:00-04:00,1\n2025-07-15T13:00:00-04:00,1,5kWh\n"
    )
    assert "line 4: expected 2 fields" in refusal(
        "--method", "meter-before-meter-after", "--data", data, *EVENT, "--market", "PJM"
    )
    data.write_text(
        "start,value\n2025-07-15T11:00:00-04:00,1\n2025-07-15T12:00:00-04:00,1\n2025-07-15T13:00:00-04:00,five\n"
    )
    message = refusal("--method", "meter-before-meter-after", "--data", data, *EVENT, "--market", "PJM")
    assert "line 4, value" in message and "'five'" in message


def test_a_wrong_header_is_refused(tmp_path):
    data = tmp_path / "r.csv"
    data.write_text("time,kwh\n2025-07-15T13:00:00-04:00,1\n")
    assert "line 1" in refusal("--method", "meter-before-meter-after", "--data", data, *EVENT, "--market", "PJM")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--method", "regression"], "Unknown baseline method 'regression'"),
        (["--event-end", "2025-07-15T14:00:00-04:00"], "--event-end must be after --event-start"),
        (["--event-start", "2025-07-15T14:00:00"], "--event-start '2025-07-15T14:00:00' needs its UTC offset"),
        (["--event-start", "soon"], "--event-start 'soon' is not an ISO 8601"),
        (["--param", "lookback=30"], "Unknown parameter 'lookback'"),
        (["--param", "lookback_days=many"], "lookback_days is a whole number"),
        (["--param", "adjustment_cap"], "write key=value"),
        (["--market", "AEMO"], "--market 'AEMO' is not one of"),
    ],
)
def test_bad_options_are_refused_with_a_message_naming_them(pjm_data, args, words):
    options = {
        "--method": "pjm-high-4-of-5",
        "--data": pjm_data,
        "--event-start": EVENT[1],
        "--event-end": EVENT[3],
        "--market": "PJM",
    }
    extra = []
    for name, value in zip(args[::2], args[1::2], strict=True):
        if name == "--param":
            extra += [name, value]
        else:
            options[name] = value
    assert words in refusal(*[x for pair in options.items() for x in pair], *extra)


def test_a_like_day_method_without_a_market_is_refused(pjm_data):
    assert "--market" in refusal("--method", "nyiso-cbl", "--data", pjm_data, *EVENT, "--time-zone", "America/New_York")


def test_without_a_market_or_time_zone_the_command_cannot_place_the_event(pjm_data):
    assert "--time-zone" in refusal("--method", "meter-before-meter-after", "--data", pjm_data, *EVENT)


def test_a_bad_event_day_line_is_refused(pjm_data, tmp_path):
    days = tmp_path / "days.csv"
    days.write_text("date\n2025-07-10\n10 July\n")
    assert "days.csv line 3" in refusal(
        "--method", "pjm-high-4-of-5", "--data", pjm_data, *EVENT, "--market", "PJM", "--event-days", days
    )


def test_a_missing_file_is_refused(tmp_path):
    assert "no such file" in refusal(
        "--method", "pjm-high-4-of-5", "--data", tmp_path / "nope.csv", *EVENT, "--market", "PJM"
    )
