"""`manage.py backtest_forecast`: its table over stored history, and its refusal without history."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from aggregator.market.forecasting.backtest import run_backtest
from aggregator.reference.models import Market
from tests.market.test_forecast import build

pytestmark = pytest.mark.django_db


def test_the_backtest_prints_scores_per_horizon_for_each_model():
    resource = build(days=21)
    out = StringIO()

    call_command("backtest_forecast", "--days", "3", "--resource", str(resource.pk), stdout=out)

    text = out.getvalue()
    assert text.startswith("Backtest: 1 resource(s), 3 issue(s) from ")
    lines = [line.split() for line in text.splitlines()]
    rows = {(line[0], line[2]): line[3:] for line in lines if len(line) == 7 and line[1] == "h"}
    assert set(rows) == {
        (b, m) for b in ("1-6", "7-12", "13-24", "25-48") for m in ("learned", "persistence", "nameplate")
    }
    assert rows[("1-6", "learned")][0] == "18"  # three issues x six hours
    assert rows[("25-48", "learned")][0] == "48"  # the last issue's second day is not in the history yet
    assert all(row[1].endswith("%") for row in rows.values())
    mape = {key: float(row[1].rstrip("%")) for key, row in rows.items()}
    assert mape[("1-6", "learned")] < mape[("1-6", "persistence")]
    assert "no device readings at 5-minute resolution to score" in text


def test_without_history_the_backtest_says_so_and_fails():
    with pytest.raises(CommandError, match="No rolled-up readings to backtest on"):
        call_command("backtest_forecast", "--days", "3", stdout=StringIO())


def test_the_real_time_backtest_scores_each_step_from_readings_at_the_markets_interval():
    Market.objects.filter(code="PJM").update(real_time_interval_minutes=15)
    resource = build(days=14, minutes=15, noise=0.1)

    report = run_backtest(resource_ids=[resource.pk], days=2)

    assert list(report.real_time) == [f"+{15 * step} min" for step in range(1, 9)]
    for step, by_model in report.real_time.items():
        assert by_model["learned"].intervals == 8, step  # two days x issues at 00, 06, 12 and 18 local
        assert set(by_model) == {"learned", "persistence"}
    # Two hours on, the last reading held misses what the hour brings (the afternoon's start at noon); the model
    # does not.
    assert report.real_time["+120 min"]["learned"].pinball_kw < report.real_time["+120 min"]["persistence"].pinball_kw
