"""CalTRACK hourly (opendsm's DR meter model) on load and outdoor temperature, on synthetic data whose law is
known: load = 2 kWh + 0.2 kWh per °F above 65 + 1 kWh in occupied hours (weekdays 08:00-18:00). At 90 °F in
an occupied hour the model should say 2 + 5 + 1 = 8 kWh."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from settlement.baselines import compute_baseline
from settlement.baselines.regression import MISSING_TEMPERATURE
from settlement.baselines.results import BASELINE_UNAVAILABLE, BELOW_MIN_DAYS
from settlement.baselines.timeline import IntervalReadings
from tests.dispatch.conftest import make_resource  # noqa: F401  (the fixture)
from tests.settlement.test_settlement_runs import ended_event, move_event  # noqa: F401  (the fixture)

NY = ZoneInfo("America/New_York")


def law(local: datetime, temperature: float) -> float:
    occupied = local.weekday() < 5 and 8 <= local.hour < 18
    return 2 + 0.2 * max(temperature - 65, 0) + (1 if occupied else 0)


def weather(first: date, last: date, *, seed: int = 1):
    """Hourly temperatures over local days first..last: a daily swing around 70 °F with noise; (starts, °F)."""
    rng = np.random.default_rng(seed)
    at = datetime(first.year, first.month, first.day, tzinfo=NY).astimezone(ZoneInfo("UTC"))
    end = datetime(last.year, last.month, last.day, tzinfo=NY) + timedelta(days=1)
    starts, temps = [], []
    while at < end:
        local = at.astimezone(NY)
        starts.append(int(at.timestamp()))
        temps.append(70 + 15 * np.sin((local.hour - 9) / 24 * 2 * np.pi) + rng.normal(0, 2))
        at += timedelta(hours=1)
    return np.array(starts, dtype=np.int64), np.array(temps)


def site_load(temperatures, *, event=None, event_kwh=3.0):
    starts, temps = temperatures
    kwh = [
        event_kwh if event and event[0] <= t < event[1] else law(datetime.fromtimestamp(t, NY), temp)
        for t, temp in zip(starts.tolist(), temps.tolist())
    ]
    return IntervalReadings(starts, np.array(kwh))


def regression(readings, temperatures, start, end, **kw):
    return compute_baseline(
        method="caltrack-hourly",
        readings=readings,
        event_start=start,
        event_end=end,
        time_zone="America/New_York",
        temperatures=temperatures,
        **kw,
    )


def test_the_baseline_follows_the_temperature_law_on_a_hot_afternoon():
    start, end = datetime(2025, 7, 15, 14, tzinfo=NY), datetime(2025, 7, 15, 18, tzinfo=NY)
    starts, temps = weather(date(2025, 5, 20), date(2025, 7, 15))
    temps[(starts >= start.timestamp()) & (starts < end.timestamp())] = 90.0
    readings = site_load((starts, temps), event=(start.timestamp(), end.timestamp()))

    result = regression(readings, (starts, temps), start, end, params={"lookback_days": 45})

    assert result.flags == frozenset() and len(result.days_used) == 45
    assert result.baseline_kw == pytest.approx([8.0] * 4, rel=0.02)
    assert result.reduction_kw == pytest.approx([5.0] * 4, rel=0.04)  # actual 3 kWh an hour


def test_event_days_are_not_fitted_and_too_few_days_is_no_baseline():
    start, end = datetime(2025, 7, 15, 14, tzinfo=NY), datetime(2025, 7, 15, 16, tzinfo=NY)
    temperatures = weather(date(2025, 7, 1), date(2025, 7, 15))
    readings = site_load(temperatures)
    busy = {date(2025, 7, 14), date(2025, 7, 11)}
    result = regression(
        readings, temperatures, start, end, event_days=busy, params={"lookback_days": 14, "min_days": 13}
    )
    # 14 days before the event day, 2 of them event days: 12 < 13.
    assert {BASELINE_UNAVAILABLE, BELOW_MIN_DAYS} <= result.flags and len(result.days_used) == 12
    assert not busy & set(result.days_used)


def test_the_repeated_hour_of_the_25_hour_day_gets_a_baseline_each_pass():
    """Sun 2 November 2025, 01:00-03:00 local is three hours (01:00 EDT, 01:00 EST, 02:00 EST), unoccupied, at
    the temperature of each: 2 kWh + 0.2 per °F above 65 (the autumn days here are mostly below it)."""
    start, end = datetime(2025, 11, 2, 1, tzinfo=NY), datetime(2025, 11, 2, 3, tzinfo=NY)
    starts, temps = weather(date(2025, 9, 15), date(2025, 11, 2))
    readings = site_load((starts, temps))
    result = regression(readings, (starts, temps), start, end, params={"lookback_days": 45})
    assert len(result.starts) == 3
    expected = [
        law(datetime.fromtimestamp(t.timestamp(), NY), temps[starts == int(t.timestamp())][0]) for t in result.starts
    ]
    assert result.baseline_kw == pytest.approx(expected, abs=0.25)


def test_an_event_hour_without_a_temperature_has_no_baseline_and_no_station_is_refused():
    start, end = datetime(2025, 7, 15, 14, tzinfo=NY), datetime(2025, 7, 15, 16, tzinfo=NY)
    starts, temps = weather(date(2025, 6, 1), date(2025, 7, 15))
    readings = site_load((starts, temps))
    keep = starts != int(datetime(2025, 7, 15, 15, tzinfo=NY).timestamp())
    result = regression(readings, (starts[keep], temps[keep]), start, end, params={"lookback_days": 40})
    assert MISSING_TEMPERATURE in result.flags
    assert not np.isnan(result.baseline_kw[0]) and np.isnan(result.baseline_kw[1])
    from settlement.baselines import BaselineError

    with pytest.raises(BaselineError) as refused:
        regression(readings, None, start, end)
    assert refused.value.problems[0].field == "temperatures"


@pytest.mark.django_db
def test_a_run_regresses_each_site_on_its_stations_temperatures(ended_event, device_client, tmp_path, capsys):
    """Site A names station KPHL, whose hours are imported from a CSV; B names none and is refused by name."""
    from django.core.management import CommandError, call_command

    from settlement import services
    from settlement.models import SettlementTerms, SiteSettlement
    from tests.settlement.test_settlement_rules import sites
    from tests.settlement.test_settlement_runs import post_site_readings

    # The event at a fixed hour (a Wednesday morning in New York, occupied, 70-75 °F), not the fixture's hour of
    # the day: the fit's error differs by hour of the week, and the test must not depend on when it runs.
    event = ended_event
    move_event(event, datetime(2026, 11, 18, 9, tzinfo=NY))
    site_a, site_b = sites(event)
    SettlementTerms.objects.filter(program=event.resource.program).update(
        baseline_method="caltrack-hourly", baseline_params={"lookback_days": 30, "min_days": 25}
    )
    site_a.site.weather_station = "KPHL"
    site_a.site.save(update_fields=["weather_station"])
    local_start = event.start.astimezone(NY)
    starts, temps = weather(local_start.date() - timedelta(days=32), local_start.date() + timedelta(days=1))
    path = tmp_path / "kphl.csv"
    path.write_text(
        "start,temperature_f\n"
        + "".join(
            f"{datetime.fromtimestamp(t, NY).isoformat()},{v:.2f}\n" for t, v in zip(starts.tolist(), temps.tolist())
        )
    )
    call_command("import_temperatures", "--station", "kphl", "--data", str(path))
    first = datetime.fromtimestamp(int(starts[0]), NY)
    hours = int((event.start - first).total_seconds() // 3600)
    load = [law(datetime.fromtimestamp(int(t), NY), v) for t, v in zip(starts[:hours].tolist(), temps[:hours].tolist())]
    post_site_readings(device_client, site_a, first, [*load, 1.0, 1.0])
    post_site_readings(device_client, site_b, event.start - timedelta(days=1), [1.0] * 26)

    run = services.settle_event(event=event, by="analyst")

    a = SiteSettlement.objects.get(run=run, site=site_a.site)
    expected = [
        law(datetime.fromtimestamp(int(t), NY), v)
        for t, v in zip(starts.tolist(), temps.tolist())
        if event.start.timestamp() <= t < event.end.timestamp()
    ]
    # Thirty days of hourly history leave the fit within about 15% of the law at a given hour (the hour is pinned
    # above, so the figure is the same whenever the test runs).
    assert a.baseline_kw == pytest.approx(expected, rel=0.15) and a.flags == ["unpriced_intervals"]  # no prices here
    b = SiteSettlement.objects.exclude(site=site_a.site).get(run=run)
    assert b.flags == ["refused:no_temperature"]

    path.write_text("start,temperature_f\n2026-07-01T14:30:00-04:00,80\n2026-07-01T15:00:00-04:00,hot\n")
    with pytest.raises(CommandError, match="2 problem"):
        call_command("import_temperatures", "--station", "KPHL", "--data", str(path))
    err = capsys.readouterr().err
    assert "line 2, start" in err and "line 3, temperature_f" in err
