"""Payments and payouts computed by hand on small numbers; money rounded once per line, half up."""

from decimal import Decimal as D

import pytest

from settlement.money import cents, split
from settlement.payments import (
    customer_payouts,
    energy_payment,
    performance_factor,
    reduction_kwh,
    settle_resource,
)


def test_a_line_is_rounded_once_to_the_cent_half_up():
    assert cents(D("10.005")) == D("10.01") and cents(D("10.0049")) == D("10.00") and cents(D("-2.345")) == D("-2.35")


def test_a_split_adds_up_to_the_whole_and_gives_leftover_cents_to_the_largest_remainders():
    # 100.00 by 1:1:1 = 33.333.. each: floors 33.33 x 3 = 99.99, the one cent left goes to the first (ties in order).
    assert split(D("100.00"), {"a": 1, "b": 1, "c": 1}) == {"a": D("33.34"), "b": D("33.33"), "c": D("33.33")}
    # 10.00 by 2:1 = 6.666.., 3.333..: floors 6.66 + 3.33 = 9.99; remainders .0066 > .0033, so "a" gets the cent.
    assert split(D("10.00"), {"a": 2, "b": 1, "z": 0}) == {"a": D("6.67"), "b": D("3.33"), "z": D("0.00")}


def test_a_negative_reduction_counts_zero_unless_the_program_nets_it():
    assert reduction_kwh(D("5"), D("6.5"), net_negatives=False) == 0
    assert reduction_kwh(D("5"), D("6.5"), net_negatives=True) == D("-1.5")


def test_energy_is_each_intervals_reduction_in_mwh_times_its_price():
    # 1,200 kWh x $182.50/MWh = 219.00; 800 kWh x -$3.25/MWh = -2.60; 0 x 40 = 0 -> 216.40
    assert energy_payment([D(1200), D(800), D(0)], [D("182.50"), D("-3.25"), D(40)]) == D("216.4")
    with pytest.raises(ValueError):
        energy_payment([D(1)], [])


def test_the_performance_factor_is_delivered_over_committed_capped_at_one_unless_the_program_pays_more():
    assert performance_factor(D(1500), D(2000)) == D("0.7500")
    assert performance_factor(D(2500), D(2000)) == D("1.0000")
    assert performance_factor(D(2500), D(2000), cap_at_one=False) == D("1.2500")
    assert performance_factor(D(-10), D(2000)) == 0 and performance_factor(D(5), D(0)) == 0


def test_a_resource_that_delivered_three_quarters_is_paid_for_three_quarters_and_penalised_for_the_rest():
    # Committed 500 kW for 4 h = 2,000 kWh; delivered 400 + 400 + 400 + 300 = 1,500 kWh -> factor 0.75.
    # Energy: 0.4 MWh x (100 + 120 + 150) + 0.3 MWh x 90 = 148 + 27 = 175.00
    # Capacity: 500 kW x $3.333/kW x 0.75 = 1,249.875 -> 1,249.88 (half up)
    # Penalty: 500 kW x $1.50/kW x 0.25 = 187.50; net 175.00 + 1,249.88 - 187.50 = 1,237.38
    s = settle_resource(
        reductions_kwh=[D(400), D(400), D(400), D(300)],
        prices_per_mwh=[D(100), D(120), D(150), D(90)],
        committed_kw=D(500),
        committed_kwh=D(2000),
        capacity_rate_per_kw=D("3.333"),
        penalty_per_kw=D("1.50"),
    )
    assert (s.factor, s.energy, s.capacity, s.penalty, s.net) == (
        D("0.7500"),
        D("175.00"),
        D("1249.88"),
        D("187.50"),
        D("1237.38"),
    )


def test_revenue_share_splits_the_customers_pool_by_delivered_kwh_net_of_the_fee():
    # 40% of 1,237.38 = 494.952 -> pool 494.95; by 900:600 kWh = 296.97 and 197.98 (sum 494.95);
    # a 10% fee: 29.697 -> 29.70 and 19.798 -> 19.80.
    paid = customer_payouts(
        rule="revenue_share",
        value=D(40),
        delivered_kwh={"alice": D(900), "bob": D(600), "carol": D(0)},
        resource_net=D("1237.38"),
        fee_pct=D(10),
    )
    assert {k: (p.gross, p.fee, p.net) for k, p in paid.items()} == {
        "alice": (D("296.97"), D("29.70"), D("267.27")),
        "bob": (D("197.98"), D("19.80"), D("178.18")),
        "carol": (D("0.00"), D("0.00"), D("0.00")),
    }


def test_a_resource_that_lost_money_shares_nothing():
    paid = customer_payouts(rule="revenue_share", value=D(40), delivered_kwh={"alice": D(10)}, resource_net=D("-5.00"))
    assert paid["alice"].gross == 0


def test_per_kwh_and_per_event_rules():
    # 123.456 kWh x $0.05 = 6.1728 -> 6.17; per event: $25 to each who delivered anything.
    assert customer_payouts(rule="per_kwh", value=D("0.05"), delivered_kwh={"a": D("123.456")}, resource_net=0)[
        "a"
    ].gross == D("6.17")
    paid = customer_payouts(rule="per_event", value=D(25), delivered_kwh={"a": D("0.1"), "b": D(0)}, resource_net=0)
    assert (paid["a"].gross, paid["b"].gross) == (D("25.00"), D("0.00"))
    with pytest.raises(ValueError):
        customer_payouts(rule="lottery", value=D(1), delivered_kwh={}, resource_net=0)
