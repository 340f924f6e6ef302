"""Offer curves from cost blocks: merge, cap at the quantile, NBT raise, floor and cap clamp; and edit validation.
Every expected value is worked out by hand in the test."""

import numpy as np
import pytest

from aggregator.market.offers.curve import Payout, PriceRules, build_curve, build_curves, device_costs, validate_curve

PJM = PriceRules(floor=-150, cap=1000, max_segments=10)


def test_blocks_are_sorted_by_cost_and_equal_prices_coalesce():
    # 5@30, 10@10, 5@30, 20@10 -> 30 kW at 10, 10 kW at 30.
    assert build_curve([5, 10, 5, 20], [30, 10, 30, 10], limit_kw=100, rules=PJM) == [[30.0, 10.0], [10.0, 30.0]]


def test_segments_above_the_limit_merge_the_closest_prices_weighted_by_kw():
    # Prices 10, 20, 21, 50 with three segments allowed: gaps 10, 1, 29 -> 20 and 21 merge into 20 kW at
    # (10*20 + 10*21) / 20 = 20.5.
    rules = PriceRules(floor=-150, cap=1000, max_segments=3)
    assert build_curve([10, 10, 10, 10], [10, 20, 21, 50], limit_kw=100, rules=rules) == [
        [10.0, 10.0],
        [20.0, 20.5],
        [10.0, 50.0],
    ]


def test_a_merge_weighs_by_kw_and_keeps_prices_non_decreasing():
    # 30@40, 10@44, 60@100, limit 2 segments: gaps 4 and 56 -> (30*40 + 10*44) / 40 = 41.
    rules = PriceRules(floor=-150, cap=1000, max_segments=2)
    curve = build_curve([30, 10, 60], [40, 44, 100], limit_kw=1000, rules=rules)
    assert curve == [[40.0, 41.0], [60.0, 100.0]]


def test_the_total_is_capped_at_the_forecast_quantile_keeping_the_cheapest_kw():
    # Sorted: 50@1, 40@3, 30@5; P10 = 100 kW -> 50 + 40 + the first 10 of the 30.
    assert build_curve([30, 50, 40], [5, 1, 3], limit_kw=100, rules=PJM) == [[50.0, 1.0], [40.0, 3.0], [10.0, 5.0]]


def test_a_quantile_of_zero_or_less_offers_nothing():
    assert build_curve([10], [5], limit_kw=0, rules=PJM) == []
    assert build_curve([10], [5], limit_kw=-3, rules=PJM) == []


def test_demand_response_segments_below_the_net_benefits_price_are_raised_to_it():
    rules = PriceRules(floor=-150, cap=1000, max_segments=10, nbt=25.0)
    # 5 and 20 rise to 25 (and coalesce); 40 stays.
    assert build_curve([10, 10, 10], [5, 20, 40], limit_kw=100, rules=rules) == [[20.0, 25.0], [10.0, 40.0]]


def test_prices_are_clamped_to_the_market_floor_and_cap():
    curve = build_curve([10, 10, 10], [-500, 100, 3000], limit_kw=100, rules=PJM)
    assert curve == [[10.0, -150.0], [10.0, 100.0], [10.0, 1000.0]]


def test_every_interval_gets_its_own_limit():
    kw = np.array([10.0, 10.0])
    cost = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    curves = build_curves(kw, cost, limit_kw=np.array([5.0, 15.0, 0.0]), rules=[PJM] * 3)
    assert curves == [[[5.0, 1.0]], [[10.0, 1.0], [5.0, 2.0]], []]


def test_a_stored_kwh_costs_its_plan_value_through_the_discharge_loss_and_the_customer_share():
    # 0.10 $/kWh stored, 81 % round trip -> 100 / 0.9 = 111.11 $/MWh at the meter; the customer keeps
    # 50 % x (1 - 10 % fee) = 45 % of the price: 111.11 / 0.45 = 246.91; a 20 % opt-out rate: / 0.8 = 308.64.
    costs = device_costs(
        kw=np.array([5.0]),
        stored_value_per_kwh=np.array([[0.10]]),
        round_trip_efficiency=np.array([0.81]),
        opt_out_rate=np.array([0.2]),
        payout=Payout(rule="revenue_share", value=50, fee_pct=10),
    )
    assert costs[0, 0] == pytest.approx(308.642, abs=1e-3)


def test_per_kwh_and_per_event_payouts_set_the_price_a_kw_must_fetch():
    common = {
        "kw": np.array([5.0, 5.0]),
        "stored_value_per_kwh": np.array([[0.10], [np.nan]]),  # the second device has no plan
        "round_trip_efficiency": np.array([1.0, np.nan]),
        "opt_out_rate": np.array([0.0, 0.0]),
    }
    per_kwh = device_costs(**common, payout=Payout(rule="per_kwh", value=0.2))
    assert per_kwh[:, 0].tolist() == pytest.approx([200.0, 200.0])  # max(100 stored, 200 paid)
    # $5 an event over 5 kW x 4 h = 20 kWh -> 250 $/MWh.
    per_event = device_costs(**common, payout=Payout(rule="per_event", value=5, event_hours=4))
    assert per_event[:, 0].tolist() == pytest.approx([250.0, 250.0])


def test_a_valid_edit_has_no_problems():
    assert validate_curve([[40, 30], [60, 45.5]], limit_kw=100, rules=PJM, min_kw=10) == []


@pytest.mark.parametrize(
    ("segments", "limit", "rules", "code", "field"),
    [
        ([[10, 50], [10, 40]], 100, PJM, "not_monotone", "segments[1][1]"),
        ([[60, 10], [50, 20]], 100, PJM, "above_forecast_quantile", "segments"),
        ([[1, p] for p in range(11)], 100, PJM, "too_many_segments", "segments"),
        ([[10, -200]], 100, PJM, "below_floor", "segments[0][1]"),
        ([[10, 1200]], 100, PJM, "above_cap", "segments[0][1]"),
        ([[10, 20]], 100, PriceRules(-150, 1000, 10, nbt=30.0), "below_net_benefits_price", "segments[0][1]"),
        ([[0, 20]], 100, PJM, "invalid_kw", "segments[0][0]"),
        ([[10, "x"]], 100, PJM, "invalid_price", "segments[0][1]"),
        ([[10]], 100, PJM, "invalid", "segments[0]"),
        ("no", 100, PJM, "invalid", "segments"),
    ],
)
def test_an_edit_is_refused_naming_the_field(segments, limit, rules, code, field):
    problems = validate_curve(segments, limit_kw=limit, rules=rules)
    assert (code, field) in [(p.code, p.field) for p in problems]


def test_min_kw_above_the_curve_is_refused():
    problems = validate_curve([[10, 20]], limit_kw=100, rules=PJM, min_kw=11, min_kw_field="intervals[0].min_kw")
    assert [(p.code, p.field) for p in problems] == [("min_above_max", "intervals[0].min_kw")]
