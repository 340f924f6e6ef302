"""PJM's relative root-mean-square error test of a baseline method for a site, hand-computed.

Every day the site uses 10 kWh in the hour 13:00-14:00, then 12 and 8 in 14:00-16:00 (5 otherwise). Meter
before / meter after gives each test day a baseline of 10 kW for 14:00-16:00: errors +2 and -2 kW,
RMSE 2 kW over a mean load of 10 kW -> rRMSE 20%: passes PJM's 20% threshold, fails a 19.9% one.
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from settlement.baselines import BaselineError
from settlement.baselines.accuracy import baseline_accuracy
from tests.factories import GENERATOR, DeviceFactory
from tests.settlement.baseline_fixtures import NEW_YORK, series
from tests.settlement.test_settlement_runs import post_site_readings

NY = ZoneInfo(NEW_YORK)


def load(local):
    return {13: 10.0, 14: 12.0, 15: 8.0}.get(local.hour, 5.0)


def test_rrmse_over_every_test_interval_including_the_25_hour_day():
    """27 Oct - 7 Nov 2025, every day (2 Nov has 25 hours): 12 test days, 24 intervals."""
    readings = series(load, first=date(2025, 10, 20), last=date(2025, 11, 7))
    report = baseline_accuracy(
        method="meter-before-meter-after",
        readings=readings,
        first=date(2025, 10, 27),
        last=date(2025, 11, 7),
        hours=(14, 16),
        time_zone=NEW_YORK,
        market="PJM",
        days="all",
    )
    assert (len(report.days), report.intervals) == (12, 24)
    assert report.rmse_kw == pytest.approx(2.0) and report.mean_actual_kw == pytest.approx(10.0)
    assert report.rrmse_pct == pytest.approx(20.0) and report.passed
    strict = baseline_accuracy(
        method="meter-before-meter-after",
        readings=readings,
        first=date(2025, 10, 27),
        last=date(2025, 11, 7),
        hours=(14, 16),
        time_zone=NEW_YORK,
        market="PJM",
        days="all",
        threshold_pct=19.9,
    )
    assert not strict.passed


def test_event_days_holidays_and_days_without_a_baseline_are_not_test_days():
    """PJM High 4 of 5 on a flat 10 kW load is exact (rRMSE 0). In 1-8 July 2025: 4 July is a holiday, 7 July an
    event day; with history from 23 June only, 1 July has 5 like days before it and passes; earlier days would
    be short of days and are not test days."""
    readings = series(lambda local: 10.0, first=date(2025, 6, 23), last=date(2025, 7, 8))
    report = baseline_accuracy(
        method="pjm-high-4-of-5",
        readings=readings,
        first=date(2025, 6, 27),
        last=date(2025, 7, 8),
        hours=(14, 18),
        time_zone=NEW_YORK,
        market="PJM",
        event_days={date(2025, 7, 7)},
    )
    assert report.skipped[date(2025, 7, 4)] == "holiday" and report.skipped[date(2025, 7, 7)] == "event_day"
    assert report.skipped[date(2025, 6, 27)] == "no_baseline"  # only 4 weekdays before it
    assert [d.day for d in report.days] == [
        date(2025, 6, 30),
        date(2025, 7, 1),
        date(2025, 7, 2),
        date(2025, 7, 3),
        date(2025, 7, 8),
    ]
    assert report.rrmse_pct == 0.0 and report.passed


def test_a_period_or_hours_that_cannot_be_tested_are_refused_by_name():
    readings = series(load, first=date(2025, 10, 20), last=date(2025, 11, 7))
    common = {"method": "meter-before-meter-after", "readings": readings, "time_zone": NEW_YORK, "market": "PJM"}
    with pytest.raises(BaselineError) as refused:
        baseline_accuracy(**common, first=date(2025, 11, 7), last=date(2025, 11, 1), hours=(14, 16))
    assert refused.value.problems[0].field == "last"
    with pytest.raises(BaselineError) as refused:
        baseline_accuracy(**common, first=date(2025, 11, 1), last=date(2025, 11, 7), hours=(16, 14))
    assert refused.value.problems[0].field == "hours"


@pytest.mark.django_db
def test_the_command_tests_a_sites_own_meter_data(device_client, capsys):
    device = DeviceFactory(**GENERATOR)
    site = device.site
    tz = ZoneInfo(site.market.time_zone)
    first = (datetime.now(UTC) - timedelta(days=12)).astimezone(tz).date()
    start = datetime.combine(first, time(0), tz)
    utc_start = start.astimezone(UTC)
    hours = [load((utc_start + timedelta(hours=i)).astimezone(tz)) for i in range(24 * 10)]
    post_site_readings(device_client, device, utc_start, hours)
    last = first + timedelta(days=8)

    call_command(
        "baseline_accuracy",
        "--site",
        str(site.pk),
        "--method",
        "meter-before-meter-after",
        "--from",
        (first + timedelta(days=1)).isoformat(),
        "--to",
        last.isoformat(),
        "--hours",
        "14-16",
        "--days",
        "all",
    )
    out = capsys.readouterr().out
    days, intervals = (int(n) for n in re.search(r"(\d+) test day\(s\), (\d+) interval", out).groups())
    assert days >= 6 and intervals == 2 * days  # 8 days less any holiday of the market
    assert "rRMSE 20.0%" in out and out.strip().endswith("PASS")

    with pytest.raises(CommandError, match="--hours"):
        call_command(
            "baseline_accuracy",
            "--site",
            str(site.pk),
            "--method",
            "meter-before-meter-after",
            "--from",
            first.isoformat(),
            "--to",
            last.isoformat(),
            "--hours",
            "16-14",
        )
    with pytest.raises(CommandError, match="no site"):
        call_command(
            "baseline_accuracy",
            "--site",
            "0",
            "--method",
            "meter-before-meter-after",
            "--from",
            first.isoformat(),
            "--to",
            last.isoformat(),
            "--hours",
            "14-16",
        )
