"""The forecast's numeric core over plain arrays: no database."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from aggregator.market.forecasting import core

NEW_YORK = "America/New_York"


def hourly(start: datetime, hours: int) -> list[int]:
    return [int((start + timedelta(hours=h)).timestamp()) for h in range(hours)]


def test_48_hours_over_the_autumn_dst_day_have_the_local_hours_of_a_25_hour_day():
    midnight_edt = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT, Sunday 1 November 2026

    cal = core.calendar(hourly(midnight_edt, 48), NEW_YORK)

    # 1 November: 00:00 and 01:00 EDT, 01:00 again in EST, then 02:00-23:00: 25 hours; 2 November from 00:00.
    assert cal.hour.tolist() == [0, 1, *range(1, 24), *range(23)]
    assert cal.day_type.tolist() == [1] * 25 + [0] * 23  # a Sunday, then a Monday
    assert cal.how[25] == 0  # Monday 00:00 EST is the week's first hour


def test_the_spring_dst_day_has_23_local_hours():
    cal = core.calendar(hourly(datetime(2026, 3, 8, 5, 0, tzinfo=UTC), 24), NEW_YORK)  # 00:00 EST, 8 March

    assert cal.hour.tolist() == [0, 1, *range(3, 24), 0]


def test_holidays_are_off_days():
    thanksgiving = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    cal = core.calendar(hourly(thanksgiving, 24), NEW_YORK, frozenset({thanksgiving.date()}))

    assert set(cal.day_type.tolist()) == {1}


def test_a_ridge_fit_recovers_a_known_hour_and_temperature_formula():
    start = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
    history, ahead = 28 * 24, 48
    cal = core.calendar(hourly(start, history + ahead), NEW_YORK)
    rng = np.random.default_rng(3)
    temperature = 72 + 12 * np.sin((cal.hour - 9) / 24 * 2 * np.pi) + rng.normal(0, 3, len(cal))
    # The truth: 0.1 at night, 0.4 on weekday afternoons, +0.01 per cooling degree hour.
    truth = (
        0.1
        + 0.3 * ((cal.day_type == 0) & (cal.hour >= 12) & (cal.hour < 20))
        + 0.01 * np.clip(temperature - 65, 0, None)
    )
    y = truth.copy()
    y[history:] = np.nan

    fit = core.fit_load(y, cal, temperature, history)

    assert fit.temperature is True
    assert fit.observations == history
    assert np.max(np.abs(fit.fitted[history:] - truth[history:])) < 0.01
    assert np.nanmax(np.abs(fit.residual)) < 0.02  # the small ridge penalty: exact up to its shrinkage


def test_without_temperature_the_fit_drops_its_terms():
    start = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
    cal = core.calendar(hourly(start, 14 * 24), NEW_YORK)
    y = 0.2 + 0.1 * (cal.hour >= 18)

    fit = core.fit_load(y.astype(float), cal, None, 14 * 24)

    assert fit.temperature is False
    assert fit.parameters == core.CELLS
    assert np.allclose(fit.fitted, y, atol=0.005)


def test_quantiles_are_ordered_and_never_negative():
    rng = np.random.default_rng(5)
    residual = rng.normal(0, 3, 500)
    block = np.arange(500) % 24 // 6
    offsets = core.quantile_offsets(residual, block)
    expected = np.array([0.0, 0.5, 2.0, 10.0, 40.0])

    p10, p50, p90 = core.band(expected, offsets, np.array([0, 1, 2, 3, 0]))

    assert np.all(p10 <= p50) and np.all(p50 <= p90)
    assert np.all(p10 >= 0)
    assert p10[4] < 40 < p90[4]
    assert np.all(offsets[:, 0] < 0) and np.all(offsets[:, 2] > 0)


def test_quantile_offsets_of_a_block_with_too_few_residuals_fall_back_to_all_hours():
    residual = np.array([-1.0, 0.0, 1.0] * 20 + [50.0] * 5)
    block = np.array([0] * 60 + [3] * 5)

    offsets = core.quantile_offsets(residual, block)

    assert offsets[3].tolist() == pytest.approx(np.quantile(residual, core.QUANTILES).tolist())
    assert offsets[0].tolist() == pytest.approx([-1.0, 0.0, 1.0])


def test_the_real_time_blend_fades_the_measured_departure():
    model = np.array([10.0, 10.0, 10.0])
    ahead = np.array([0.0, 30.0, 120.0])

    blended = core.blend_real_time(model, ahead, measured_now_kw=16.0, model_now_kw=10.0)

    # 10 + 6 x exp(-m / 30): 16 now, 10 + 6 / e at 30 minutes, 10 + 6 e^-4 at two hours.
    assert blended.tolist() == pytest.approx([16.0, 10 + 6 * np.exp(-1), 10 + 6 * np.exp(-4)])


def test_a_battery_holds_its_plans_energy_above_reserve_over_the_event():
    kw = core.plan_headroom_kw(
        energy_kwh=np.array([13.5, 9.9, 2.7, 40.0]),
        reserve_kwh=np.array([2.7, 2.7, 2.7, 2.7]),
        rated_kw=np.array([5.0, 5.0, 5.0, 5.0]),
        round_trip_pct=np.array([np.nan, np.nan, np.nan, 81.0]),
        event_hours=4,
    )

    # (13.5 - 2.7) x 0.95 / 4; (9.9 - 2.7) x 0.95 / 4; nothing above reserve; capped at 5 kW.
    assert kw.tolist() == pytest.approx([2.565, 1.71, 0.0, 5.0])


def test_persistence_takes_the_first_candidate_with_a_value():
    values = np.array([1.0, np.nan, 3.0, 4.0])
    candidates = np.array([[1, 0], [2, 3], [-1, -1], [-1, 3]])

    assert core.first_available(values, candidates).tolist() == [1.0, 3.0, pytest.approx(np.nan, nan_ok=True), 4.0]


def test_scores_by_hand():
    actual = np.array([10.0, 20.0])
    expected = np.array([12.0, 15.0])
    quantiles = np.array([[8.0, 12.0, 14.0], [10.0, 15.0, 30.0]])

    s = core.score(actual, expected, quantiles)

    assert s.mape_pct == pytest.approx((0.2 + 0.25) / 2 * 100)
    assert s.bias_kw == pytest.approx(-1.5)
    # pinball: (0.2, 1.0, 0.4) for the first, (1.0, 2.5, 1.0) for the second, averaged.
    assert s.pinball_kw == pytest.approx(((0.2 + 1.0 + 0.4) / 3 + (1.0 + 2.5 + 1.0) / 3) / 2)
