"""The learned forecast on synthetic fleets with a known truth: it beats persistence where patterns exist, follows
batteries' plans, falls back with a note where there is no history, keeps local hours over DST."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from aggregator.market.forecasting import backtest, rollup, services
from aggregator.market.forecasting.selectors import intervals, latest_forecast
from aggregator.market.models import Forecast
from aggregator.reference.models import Temperature
from dispatch.models import DeviceSchedule
from enrollment.models import DeviceStatus
from tests.market import forecast_fleets as ff

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 20, 4, 0, tzinfo=UTC)  # Monday 20 July 2026, 00:00 in New York


def build(now=NOW, *, days=35, thermostats=6, chargers=0, noise=0.3, seed=11, name="Forecast fleet", minutes=60):
    """A resource whose thermostats follow ff.thermostat_kw (and chargers ff.charging, 9 times in 10) plus noise;
    the station's temperatures are stored for the history and, as an imported forecast, the next 48 hours."""
    rng = np.random.default_rng(seed)
    start = now - timedelta(days=days)
    resource = ff.resource(name)
    stats = ff.members(resource, thermostats, ff.THERMOSTAT, joined=start - timedelta(days=1), station="KPHL")
    evs = ff.members(resource, chargers, ff.EV_CHARGER, joined=start - timedelta(days=1)) if chargers else []
    temperatures, rows = [], []
    for at in ff.hours(start, days + 2):
        t = ff.temperature(at, rng)
        temperatures.append(Temperature(station="KPHL", start=at, temperature_f=t, imported_at=now))
        if at >= now:
            continue
        for d in stats:
            for q in range(60 // minutes):
                start = at + timedelta(minutes=minutes * q)
                kw = max(ff.thermostat_kw(start, t) + rng.normal(0, noise), 0.0)
                rows.append((d.pk, start, minutes * 60, kw * minutes / 60))
        for d in evs:
            rows.append((d.pk, at, 3600, 7.0 if ff.charging(at) and rng.random() < 0.9 else 0.0))
    Temperature.objects.bulk_create(temperatures, ignore_conflicts=True)  # a second fleet shares the station
    ff.write_readings(rows, received_at=now)
    rollup.roll_up_readings(now=now)
    return resource


def stored(rows, kind, model):
    return next(f for f in rows if f.kind == kind and f.model == model)


def test_learned_beats_persistence_on_thermostats_that_follow_hour_weekday_and_temperature():
    resource = build()

    report = backtest.run_backtest(resource_ids=[resource.pk], days=7)

    for bucket, by_model in report.hourly.items():
        learned, persistence = by_model["learned"], by_model["persistence"]
        assert learned.intervals > 0, bucket
        assert learned.mape_pct < persistence.mape_pct, bucket
        assert learned.pinball_kw < persistence.pinball_kw, bucket
        assert abs(learned.bias_kw) < 1.0, bucket


def test_learned_beats_persistence_on_chargers_that_charge_on_weekday_evenings():
    resource = build(thermostats=1, chargers=6, noise=0.05)

    report = backtest.run_backtest(resource_ids=[resource.pk], days=7)

    for bucket, by_model in report.hourly.items():
        assert by_model["learned"].pinball_kw < by_model["persistence"].pinball_kw, bucket
        assert by_model["learned"].mape_pct < by_model["persistence"].mape_pct, bucket


def test_the_hourly_forecast_follows_the_truth_with_an_ordered_band():
    resource = build(noise=0.1)

    rows = services.forecast_resources(resource_ids=[resource.pk], now=NOW)

    learned = stored(rows, "hourly", "learned")
    assert (learned.start, learned.interval_minutes, len(learned.expected_kw)) == (NOW, 60, 48)
    truth = np.array(
        [
            6 * ff.thermostat_kw(at, Temperature.objects.get(station="KPHL", start=at).temperature_f)
            for at in [NOW + timedelta(hours=h) for h in range(48)]
        ]
    )
    assert np.max(np.abs(np.array(learned.expected_kw) - truth)) < 0.1 * truth.max()
    p10, p50, p90 = (np.array(x) for x in (learned.p10_kw, learned.p50_kw, learned.p90_kw))
    assert np.all(p10 >= 0) and np.all(p10 <= p50) and np.all(p50 <= p90)
    assert np.mean((truth >= p10) & (truth <= p90)) > 0.6
    assert learned.inputs["groups"]["thermostat"]["model"] == "ridge: local hour x day type + degree hours"
    assert learned.inputs["temperature"]["stations"] == {"KPHL": 6}
    assert {(f.kind, f.model) for f in rows} == {
        ("hourly", "learned"),
        ("hourly", "persistence"),
        ("hourly", "nameplate"),
        ("real_time", "learned"),
        ("real_time", "persistence"),
    }
    assert latest_forecast(resource, "hourly").pk == learned.pk
    assert intervals(learned)[1] == {
        "start": NOW + timedelta(hours=1),
        "expected_kw": learned.expected_kw[1],
        "p10_kw": learned.p10_kw[1],
        "p50_kw": learned.p50_kw[1],
        "p90_kw": learned.p90_kw[1],
    }


def test_persistence_is_the_same_local_hour_of_the_latest_day_before_and_two_days_back_beyond_24_hours():
    resource = build(noise=0.0, days=10)
    rows = services.forecast_resources(resource_ids=[resource.pk], now=NOW, kinds=("hourly",))
    persistence = stored(rows, "hourly", "persistence").expected_kw

    def read(at):
        return sum(
            ff.thermostat_kw(at, Temperature.objects.get(station="KPHL", start=at).temperature_f) for _ in range(6)
        )

    # Monday 00:00 + 14 h from Sunday 14:00 (no afternoon bump); Tuesday 14:00 (+38 h) from Sunday too.
    assert persistence[14] == pytest.approx(read(NOW + timedelta(hours=14) - timedelta(days=1)), abs=0.01)
    assert persistence[38] == pytest.approx(read(NOW + timedelta(hours=38) - timedelta(days=2)), abs=0.01)


def test_a_battery_is_forecast_along_its_plan_that_discharges_at_17():
    resource = ff.resource()
    (battery,) = ff.members(resource, 1, ff.BATTERY, joined=NOW - timedelta(days=1))
    midnight = ff.day_start(date(2026, 7, 20))
    energy = [2.7] * 10 + [5.4, 8.1, 10.8, 13.5] + [13.5] * 3 + [9.9, 6.3, 2.7] + [2.7] * 4
    kw = [0.0] * 10 + [-2.7] * 4 + [0.0] * 3 + [3.6] * 3 + [0.0] * 4
    DeviceSchedule.objects.create(
        device=battery,
        day=date(2026, 7, 20),
        start=midnight,
        step_seconds=3600,
        kw=kw,
        energy_kwh=energy,
        reserve_kwh=2.7,
        value_per_kwh=[0.0] * 24,
        site_cost=Decimal("1"),
        site_cost_without=Decimal("2"),
    )

    rows = services.forecast_resources(resource_ids=[resource.pk], now=NOW, kinds=("hourly",))

    learned = stored(rows, "hourly", "learned").expected_kw
    # Local hour h is forecast hour h (the day starts at the issue). The plan's energy at the hour's start above
    # the 2.7 kWh reserve, x 0.95, over the program's 4-hour events: 12:00 holds 8.1, 16:00 13.5, 18:00 9.9.
    assert learned[9] == 0.0
    assert learned[12] == pytest.approx(5.4 * 0.95 / 4, abs=1e-3)
    assert learned[16] == pytest.approx(10.8 * 0.95 / 4, abs=1e-3)
    assert learned[18] == pytest.approx(7.2 * 0.95 / 4, abs=1e-3)
    assert learned[20] == 0.0
    assert learned[24 + 16] > 0  # the next day has no plan: the capability model
    assert stored(rows, "hourly", "learned").inputs["batteries"] == {"members": 1, "with_plan": 1}


def test_a_resource_without_history_falls_back_to_the_capability_model_and_says_so():
    resource = ff.resource()
    ff.members(resource, 3, ff.THERMOSTAT, joined=NOW - timedelta(days=1))

    rows = services.forecast_resources(resource_ids=[resource.pk], now=NOW, kinds=("hourly",))

    learned, nameplate = stored(rows, "hourly", "learned"), stored(rows, "hourly", "nameplate")
    assert learned.expected_kw == nameplate.expected_kw
    assert learned.inputs["groups"]["thermostat"]["model"] == "capability model (planning defaults): too little history"
    assert "thermostat: 0 hours of readings, under 72" in learned.inputs["notes"]
    assert learned.inputs["temperature"]["note"] == "no temperature series for the members"
    assert "no temperature: the fits have no temperature terms" in learned.inputs["notes"]


def test_forty_eight_hours_over_the_autumn_dst_day_keep_the_weekday_afternoon_at_local_noon():
    issue = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # Sunday 1 November 2026, 00:00 EDT
    resource = build(issue, days=28, noise=0.05)

    rows = services.forecast_resources(resource_ids=[resource.pk], now=issue, kinds=("hourly",))

    learned = np.array(stored(rows, "hourly", "learned").expected_kw)
    # 1 November has 25 hours, so Monday 2 November 12:00 EST (17:00 UTC) is forecast hour 25 + 12 = 37; the
    # afternoon bump starts there, not an hour earlier as the summer clock (16:00 UTC) had it.
    assert learned[37] - learned[36] > 0.8 * 6 * 1.2
    assert learned[36] - learned[35] < 2.0


def test_the_real_time_forecast_blends_fresh_heartbeats_into_the_hourly_model():
    resource = build(noise=0.1)
    thermostats = [m.device for m in resource.memberships.select_related("device")]
    for device in thermostats:
        DeviceStatus.objects.create(device=device, last_seen_at=NOW - timedelta(minutes=1), power_kw=Decimal("3"))

    rows = services.forecast_resources(resource_ids=[resource.pk], now=NOW)

    hourly = stored(rows, "hourly", "learned").expected_kw
    real_time = stored(rows, "real_time", "learned")
    assert (real_time.start, real_time.interval_minutes, len(real_time.expected_kw)) == (NOW, 5, 24)
    measured = 6 * 3.0
    for step in (0, 11, 23):
        minutes = 5 * step + 2.5  # to the interval's middle
        model = hourly[step // 12]
        expected = model + np.exp(-minutes / 30) * (measured - hourly[0])
        assert real_time.expected_kw[step] == pytest.approx(expected, abs=2e-3)
    assert stored(rows, "real_time", "persistence").expected_kw == [measured] * 24
    p10, p90 = np.array(real_time.p10_kw), np.array(real_time.p90_kw)
    assert (p90 - p10)[0] < (p90 - p10)[23]  # the band widens as the measurement fades


def test_an_opted_out_or_silent_member_counts_nothing_where_it_cannot_be_dispatched():
    resource = build(noise=0.1, thermostats=2)
    silent = resource.memberships.first().device
    DeviceStatus.objects.create(device=silent, last_seen_at=NOW - timedelta(days=2), online=False)

    rows = services.forecast_resources(resource_ids=[resource.pk], now=NOW, kinds=("hourly",))
    baseline = build(noise=0.1, thermostats=1, seed=11, name="One thermostat")
    alone = services.forecast_resources(resource_ids=[baseline.pk], now=NOW, kinds=("hourly",))

    # Only the one that reports can be dispatched: the forecast of a resource of that one alone.
    ratio = np.array(stored(rows, "hourly", "learned").expected_kw) / np.array(
        stored(alone, "hourly", "learned").expected_kw
    )
    assert np.median(ratio) == pytest.approx(1.0, abs=0.15)


def test_stored_forecasts_past_retention_go_unless_an_offer_uses_them():
    resource = ff.resource()
    old = Forecast.objects.create(
        resource=resource,
        kind="hourly",
        model="learned",
        issued_at=NOW - timedelta(days=20),
        start=NOW - timedelta(days=20),
        interval_minutes=60,
        expected_kw=[1.0],
        p10_kw=[1.0],
        p50_kw=[1.0],
        p90_kw=[1.0],
    )

    services.forecast_resources(resource_ids=[resource.pk], now=NOW, kinds=("hourly",))

    assert not Forecast.objects.filter(pk=old.pk).exists()
    assert Forecast.objects.filter(resource=resource, issued_at=NOW).count() == 3


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the seeded markets stay
def test_outside_a_transaction_the_reads_run_on_their_own_connections_with_the_same_result():
    from django.db import connection, transaction

    resource = build(noise=0.1, days=14)
    with transaction.atomic():  # one connection, reads in turn
        in_turn = services.forecast_resources(resource_ids=[resource.pk], now=NOW, kinds=("hourly",))
    assert not connection.in_atomic_block

    concurrent = services.forecast_resources(resource_ids=[resource.pk], now=NOW, kinds=("hourly",))

    assert [f.expected_kw for f in concurrent] == [f.expected_kw for f in in_turn]
    assert stored(concurrent, "hourly", "learned").inputs["groups"]["thermostat"]["observed_hours"] == 14 * 24
