"""Capacity statements, hand-computed on the two-site event of test_settlement_runs, here a market dispatch.

Our run (meter before / meter after): site A uses 10 kWh an hour before the event, then 4 and 5; site B 8,
then 6 and 2. Reductions: A 6, 5; B 2, 6 -> the resource 8 then 11 kWh.
"""

import calendar
from datetime import timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from dispatch.models import DispatchEvent
from settlement import services
from settlement.capacity import capacity_statement
from settlement.models import CapacityCommitment, SiteCapacity
from tests.dispatch.conftest import make_resource  # noqa: F401  (the fixture)
from tests.settlement.test_settlement_rules import sites
from tests.settlement.test_settlement_runs import ended_event, post_site_readings  # noqa: F401


@pytest.fixture
def settled(ended_event, device_client):
    event = ended_event
    DispatchEvent.objects.filter(pk=event.pk).update(source=DispatchEvent.Source.MARKET_INSTRUCTION)
    site_a, site_b = sites(event)
    before = event.start - timedelta(hours=3)
    post_site_readings(device_client, site_a, before, [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, before, [8, 8, 8, 6, 2])
    services.settle_event(event=event, by="analyst")
    event.refresh_from_db()
    return event


def month_of(event):
    local = event.start.astimezone(ZoneInfo(event.resource.market.time_zone)).date()
    return local.replace(day=1), calendar.monthrange(local.year, local.month)[1]


def commit(event, **fields):
    month, _ = month_of(event)
    defaults = {
        "resource": event.resource,
        "period_start": month - timedelta(days=40),
        "period_end": month + timedelta(days=400),
        "accredited_kw": D(100),
        "rate": D(300),
        "non_performance_per_mwh": D(2000),
    }
    return CapacityCommitment.objects.create(**(defaults | fields))


def test_firm_service_level_pays_the_month_and_charges_the_short_interval(settled):
    """FSL: A's PLC 20, FSL 2 -> 18 kW committed; B's PLC 15, FSL 5 -> 10. Hour 1: committed 28 kWh, delivered
    (20-4) + (15-6) = 25: short 3 kWh -> 0.003 MWh x $2000 = $6.00. Hour 2: (20-5) + (15-2) = 28: met.
    Payment: 0.1 MW x $300/MW-day x every day of the month."""
    event = settled
    commitment = commit(event, measurement="firm_service_level")
    site_a, site_b = sites(event)
    SiteCapacity.objects.create(
        commitment=commitment, site=site_a.site, peak_load_contribution_kw=20, firm_service_level_kw=2
    )
    SiteCapacity.objects.create(
        commitment=commitment, site=site_b.site, peak_load_contribution_kw=15, firm_service_level_kw=5
    )
    month, days = month_of(event)

    statement = capacity_statement(commitment, month)

    assert statement.days == days and statement.payment == D(30 * days).quantize(D("0.01"))
    (performance,) = statement.events
    assert [(i.committed_kwh, i.delivered_kwh, i.shortfall_kwh) for i in performance.intervals] == [
        (D(28), D(25), D(3)),
        (D(28), D(28), D(0)),
    ]
    assert performance.charge == D("6.00") and statement.net == statement.payment - D("6.00")


def test_guaranteed_load_drop_and_baseline_measure_the_runs_reductions(settled):
    """GLD: A 7 + B 3 = 10 kWh an hour committed against reductions 8 and 11: short 2 in hour 1 -> $4.00.
    Baseline measurement, 10 kW accredited: the same 2 kWh short. $/kW-month: 10 kW x $9 for the whole month."""
    event = settled
    gld = commit(event, measurement="guaranteed_load_drop")
    site_a, site_b = sites(event)
    SiteCapacity.objects.create(
        commitment=gld, site=site_a.site, peak_load_contribution_kw=20, guaranteed_load_drop_kw=7
    )
    SiteCapacity.objects.create(
        commitment=gld, site=site_b.site, peak_load_contribution_kw=15, guaranteed_load_drop_kw=3
    )
    month, _ = month_of(event)
    assert [i.shortfall_kwh for i in capacity_statement(gld, month).events[0].intervals] == [D(2), D(0)]
    assert capacity_statement(gld, month).charges == D("4.00")

    by_baseline = commit(event, accredited_kw=D(10), rate=D(9), rate_unit="kw_month")
    statement = capacity_statement(by_baseline, month)
    assert statement.payment == D("90.00") and statement.charges == D("4.00") and statement.net == D("86.00")


def test_a_commitment_period_ending_mid_month_pays_its_days_and_a_test_event_is_judged_not_charged(settled, capsys):
    """The period ends on the event's day: payment for the days up to it. The event, now an operator's test,
    delivered 19 of 20 kWh committed (10 kW accredited): failed, and no non-performance charge."""
    event = settled
    DispatchEvent.objects.filter(pk=event.pk).update(source=DispatchEvent.Source.OPERATOR_TEST)
    month, _ = month_of(event)
    last = event.start.astimezone(ZoneInfo(event.resource.market.time_zone)).date()
    commitment = commit(event, accredited_kw=D(10), period_end=last)

    statement = capacity_statement(commitment, month)

    days = (last - month).days + 1
    assert statement.days == days and statement.payment == (D("0.01") * 300 * days).quantize(D("0.01"))
    (test,) = statement.events
    assert test.test and not test.passed and test.charge == D("0.00") and statement.net == statement.payment
    call_command("capacity_statement", "--commitment", str(commitment.pk), "--month", f"{month:%Y-%m}")
    out = capsys.readouterr().out
    assert "test failed" in out and f"net ${statement.payment}" in out
    with pytest.raises(CommandError, match="--month"):
        call_command("capacity_statement", "--commitment", str(commitment.pk), "--month", "July")
