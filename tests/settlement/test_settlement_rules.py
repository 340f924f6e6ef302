"""What settlement pays by the markets' rules, each hand-computed on the two-site event of test_settlement_runs.

The event: two hours, sites A and B, meter before / meter after (a site's baseline is its load in the
hour before), 10 kW committed, capacity $10/kW, penalty $4/kW. Each test names what paid wrong before.
"""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from aggregator.reference.models import NetBenefitsPrice
from dispatch.models import Allocation, DispatchEvent, EventTransition
from settlement import services
from settlement.models import SettlementTerms, SiteSettlement
from tests.dispatch.conftest import make_resource  # noqa: F401  (the fixture)
from tests.factories import GENERATOR, DeviceFactory
from tests.settlement.test_settlement_runs import ended_event, move_event, post_site_readings, prices  # noqa: F401

NEW_YORK = ZoneInfo("America/New_York")
# The events of these tests are two days before today, a weekday or not: weekend and holiday events use the
# same 4 highest of 5 like days as weekdays, so the hand computations hold on any day.
ANY_DAY = {
    "weekend_like_days": "together",
    "weekend_candidate_days": 5,
    "weekend_keep_highest": 4,
    "weekend_min_days": 4,
}


def sites(event):
    return [m.device for m in event.resource.memberships.order_by("device_id")]


def at_local_noon(event):
    """The event moved to noon, New York time, of its own day: its hours then share one local date
    whatever the hour the test runs at (an event that crosses midnight takes its second hour's
    baseline from the day after each baseline day)."""
    return move_event(event, datetime.combine(event.start.astimezone(NEW_YORK).date(), time(12), NEW_YORK))


def rule_codes(run) -> list[str]:
    return [r["code"] for r in run.rules]


def test_export_is_not_load_reduction_unless_the_program_allows_injection(ended_event, device_client, tmp_path):
    """B's baseline is 10.5 kW and it exports 5 kW in the first hour: a load-reduction program credits it
    10.5 kWh (down to zero net load), not 15.5; with injection allowed (its own metering) 15.5."""
    event = ended_event
    site_a, site_b = sites(event)
    before = event.start - timedelta(hours=3)
    post_site_readings(device_client, site_a, before, [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, before, [10.5, 10.5, 10.5, -5, 2])
    prices(tmp_path, event)

    run = services.settle_event(event=event, by="analyst")

    b = SiteSettlement.objects.get(run=run, site=site_b.site)
    assert b.actual_kw == [-5.0, 2.0] and b.reduction_kwh == [D("10.5"), D("8.5")]
    assert "export_not_delivery" in b.flags
    # A: 6 + 5 kWh; B: 10.5 + 8.5 -> 30 kWh delivered of 20 committed; energy 0.6 + 1.0 + 1.05 + 1.7 = $4.35.
    assert (run.delivered_kwh, run.energy) == (D(30), D("4.35"))
    assert "Load reduction" in next(r["text"] for r in run.rules if r["code"] == "participation_model")

    SettlementTerms.objects.filter(program=event.resource.program).update(participation_model="injection_metered")
    again = services.settle_event(event=event, by="analyst")
    b = SiteSettlement.objects.get(run=again, site=site_b.site)
    assert b.reduction_kwh == [D("15.5"), D("8.5")] and "export_not_delivery" not in b.flags
    assert again.energy == D("4.85")  # B's first hour: 15.5 kWh at $100/MWh


def test_an_hourly_meter_is_paid_the_time_weighted_mean_of_the_five_minute_prices(ended_event, device_client, tmp_path):
    """The first hour's twelve 5-minute prices are 100 then eleven at 220: the hour is paid their mean, 210
    (it was paid the first, 100). A: 6 kWh x 210 + 5 kWh x 200 = $2.26; B: 4 kWh x 200 = $0.80."""
    event = ended_event
    site_a, site_b = sites(event)
    before = event.start - timedelta(hours=3)
    post_site_readings(device_client, site_a, before, [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, before, [6, 6, 6, 6, 2])
    path = tmp_path / "five-minute.csv"
    rows = ["node,start,price_per_mwh,interval_minutes"]
    rows += [
        f"PECO_N001,{(event.start + timedelta(minutes=5 * k)).isoformat()},{100 if k == 0 else 220},5"
        for k in range(12)
    ]
    rows.append(f"PECO_N001,{(event.start + timedelta(hours=1)).isoformat()},200,60")
    path.write_text("\n".join(rows) + "\n")
    call_command("import_prices", "--market", "PJM", "--data", str(path))

    run = services.settle_event(event=event, by="analyst")

    a = SiteSettlement.objects.get(run=run, site=site_a.site)
    assert a.price_per_mwh == [D("210.0000"), D(200)] and a.energy == D("2.26")
    assert run.energy == D("3.06")
    assert "time-weighted mean" in next(r["text"] for r in run.rules if r["code"] == "price")


def test_an_interval_without_prices_for_its_whole_length_is_unpriced(ended_event, device_client, tmp_path):
    event = ended_event
    site_a, _ = sites(event)
    post_site_readings(device_client, site_a, event.start - timedelta(hours=3), [10, 10, 10, 4, 5])
    path = tmp_path / "partial.csv"
    # Only the first half of the first hour has prices; the second hour has none.
    path.write_text(
        "node,start,price_per_mwh,interval_minutes\n"
        + "".join(f"PECO_N001,{(event.start + timedelta(minutes=5 * k)).isoformat()},100,5\n" for k in range(6))
    )
    call_command("import_prices", "--market", "PJM", "--data", str(path))

    run = services.settle_event(event=event, by="analyst")

    a = SiteSettlement.objects.get(run=run, site=site_a.site)
    assert a.price_per_mwh == [None, None] and "unpriced_intervals" in a.flags and a.energy == 0


def months_of(event):
    first = event.start.astimezone(NEW_YORK).date().replace(day=1)
    last = (event.end - timedelta(seconds=1)).astimezone(NEW_YORK).date().replace(day=1)
    return sorted({first, last})


def test_energy_below_the_net_benefits_price_earns_nothing(ended_event, device_client, tmp_path):
    """Threshold $150/MWh: the first hour ($100) earns no energy, the second ($200) does. A: 5 kWh x 200 = $1.00;
    B: 4 kWh x 200 = $0.80; $1.80 instead of $2.40. Delivery (and so capacity and penalty) is unchanged."""
    event = ended_event
    site_a, site_b = sites(event)
    before = event.start - timedelta(hours=3)
    post_site_readings(device_client, site_a, before, [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, before, [6, 6, 6, 6, 2])
    prices(tmp_path, event)
    path = tmp_path / "net-benefits.csv"
    path.write_text("month,price_per_mwh\n" + "".join(f"{m:%Y-%m},150\n" for m in months_of(event)))
    call_command("import_net_benefits", "--market", "PJM", "--data", str(path))

    run = services.settle_event(event=event, by="analyst")

    a = SiteSettlement.objects.get(run=run, site=site_a.site)
    assert a.price_per_mwh == [D(100), D(200)] and a.energy == D("1.0")  # the statement shows the LMP it compared
    assert "below_net_benefits_price" in a.flags
    assert (run.energy, run.delivered_kwh, run.capacity, run.penalty) == (D("1.80"), D(15), D("75.00"), D("10.00"))
    assert "net_benefits" in rule_codes(run) and "150" in next(
        r["text"] for r in run.rules if r["code"] == "net_benefits"
    )


def test_without_a_threshold_on_file_the_statement_says_the_test_was_not_applied(ended_event, device_client, tmp_path):
    event = ended_event
    site_a, site_b = sites(event)
    before = event.start - timedelta(hours=3)
    post_site_readings(device_client, site_a, before, [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, before, [6, 6, 6, 6, 2])
    prices(tmp_path, event)

    run = services.settle_event(event=event, by="analyst")

    assert run.energy == D("2.40") and "net_benefits_missing" in rule_codes(run)


@pytest.mark.django_db
def test_net_benefits_files_are_checked_whole_and_name_the_field(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("month,price_per_mwh\n2026-11,120.5\n2026-13,100\n2026-12,cheap\n")
    with pytest.raises(CommandError):
        call_command("import_net_benefits", "--market", "PJM", "--data", str(path))
    assert not NetBenefitsPrice.objects.exists()  # nothing written, not even the good row
    path.write_text("month,price_per_mwh\n2026-11,120.5\n2026-11,99\n")
    with pytest.raises(CommandError):
        call_command("import_net_benefits", "--market", "PJM", "--data", str(path))
    path.write_text("month,price_per_mwh\n2026-11,120.5\n")
    call_command("import_net_benefits", "--market", "PJM", "--data", str(path))
    assert NetBenefitsPrice.objects.get().price_per_mwh == D("120.5")


def test_the_programs_look_back_is_honoured_beyond_46_days(ended_event, device_client, tmp_path):
    """PJM High 4 of 5 with a 60-day look-back, and history only 47 to 60 days back (then the event day):
    every chosen day is 10 kWh an hour, so A's baseline is 10 kW and it delivers 6 and 5 kWh. With the old
    fixed 46-day read there was no history at all and no baseline."""
    event = ended_event
    site_a, _ = sites(event)
    SettlementTerms.objects.filter(program=event.resource.program).update(
        baseline_method="pjm-high-4-of-5", baseline_params={"lookback_days": 60} | ANY_DAY
    )
    local_day = event.start.astimezone(NEW_YORK).replace(hour=0)
    old_history = (local_day - timedelta(days=60)).astimezone(UTC)
    post_site_readings(device_client, site_a, old_history, [10.0] * (24 * 14))
    post_site_readings(device_client, site_a, event.start - timedelta(hours=5), [10, 10, 10, 10, 10, 4, 5])
    prices(tmp_path, event)

    run = services.settle_event(event=event, by="analyst")

    a = SiteSettlement.objects.get(run=run, site=site_a.site)
    assert a.baseline_kw == [10.0, 10.0] and a.reduction_kwh == [D(6), D(5)]
    assert min(a.days_used) < (event.start - timedelta(days=46)).date()
    assert "60 calendar days" in next(r["text"] for r in run.rules if r["code"] == "baseline")


def test_a_sites_days_dispatched_by_any_resource_are_not_its_baseline_days(ended_event, device_client, make_resource):
    """PJM High 4 of 5 without adjustment, every hour 10 kWh for three weeks; then the most recent baseline day D
    turns out to have been 20 kWh an hour, and site A had another device dispatched that day by another
    resource. A leaves D out (baseline 10 kW: reductions 6, 5); B keeps it ((20 + 3 x 10) / 4 = 12.5 kW:
    reductions 6.5, 10.5). Before, only the same resource's events were left out."""
    event = at_local_noon(ended_event)
    site_a, site_b = sites(event)
    SettlementTerms.objects.filter(program=event.resource.program).update(
        baseline_method="pjm-high-4-of-5", baseline_params={"adjustment": "none"} | ANY_DAY
    )
    history = (event.start.astimezone(NEW_YORK).replace(hour=0) - timedelta(days=21)).astimezone(UTC)
    hours = int((event.start - history).total_seconds() // 3600)
    post_site_readings(device_client, site_a, history, [10.0] * hours + [4, 5])
    post_site_readings(device_client, site_b, history, [10.0] * hours + [6, 2])
    first = services.settle_event(event=event, by="analyst")
    day = max(SiteSettlement.objects.get(run=first, site=site_a.site).days_used)
    d_start = datetime.combine(day, time(0), NEW_YORK).astimezone(UTC)
    for site in (site_a, site_b):
        post_site_readings(device_client, site, d_start, [20.0] * 24)
    # Another resource dispatched a second device of site A on day D.
    other = DeviceFactory(site=site_a.site, **GENERATOR)
    elsewhere = make_resource(devices=[other])
    other_event = DispatchEvent.objects.get(pk=event.pk)
    other_event.pk, other_event.resource = None, elsewhere
    other_event.start, other_event.end = d_start + timedelta(hours=14), d_start + timedelta(hours=16)
    other_event.notify_at, other_event.external_ref = other_event.start - timedelta(hours=1), ""
    other_event.save()
    allocation = Allocation.objects.filter(event=event).first()
    allocation.pk, allocation.event, allocation.device = None, other_event, other
    allocation.save()

    run = services.settle_event(event=event, by="analyst")

    a = SiteSettlement.objects.get(run=run, site=site_a.site)
    b = SiteSettlement.objects.get(run=run, site=site_b.site)
    assert day not in a.days_used and a.days_skipped[day.isoformat()] == "event_day"
    assert a.baseline_kw == [10.0, 10.0] and a.reduction_kwh == [D(6), D(5)]
    assert day in b.days_used and b.baseline_kw == [12.5, 12.5] and b.reduction_kwh == [D("6.5"), D("10.5")]
    # Cancelled an hour after it started, the other event still dispatched site A's device that day.
    DispatchEvent.objects.filter(pk=other_event.pk).update(state="cancelled")
    EventTransition.objects.create(
        event=other_event,
        action="cancel",
        from_state="active",
        to_state="cancelled",
        at=other_event.start + timedelta(hours=1),
        actor_label="tester",
    )
    again = services.settle_event(event=event, by="analyst")
    assert day not in SiteSettlement.objects.get(run=again, site=site_a.site).days_used


def test_a_site_short_of_baseline_days_is_not_paid_and_the_statement_asks_for_review(ended_event, device_client):
    """PJM High 4 of 5 needs 5 weekdays. Site A has two weeks of history (10 kWh an hour), site B only the
    day before the event: A is paid on its baseline of 10 kW (6 + 5 kWh); B gets no baseline, nothing paid,
    and the run says one site needs review. Before, B was paid on its one day."""
    event = ended_event
    site_a, site_b = sites(event)
    SettlementTerms.objects.filter(program=event.resource.program).update(
        baseline_method="pjm-high-4-of-5", baseline_params={"adjustment": "none"} | ANY_DAY
    )
    midnight = event.start.astimezone(NEW_YORK).replace(hour=0)
    history = (midnight - timedelta(days=14)).astimezone(UTC)
    post_site_readings(
        device_client, site_a, history, [10.0] * int((event.start - history).total_seconds() // 3600) + [4, 5]
    )
    day_before = (midnight - timedelta(days=1)).astimezone(UTC)
    weekday_before = day_before
    while weekday_before.astimezone(NEW_YORK).weekday() >= 5:
        weekday_before -= timedelta(days=1)
    post_site_readings(device_client, site_b, weekday_before, [10.0] * 24)
    post_site_readings(device_client, site_b, event.start, [6, 2])

    run = services.settle_event(event=event, by="analyst")

    a = SiteSettlement.objects.get(run=run, site=site_a.site)
    b = SiteSettlement.objects.get(run=run, site=site_b.site)
    assert a.reduction_kwh == [D(6), D(5)] and "below_min_days" not in a.flags
    assert "below_min_days" in b.flags and b.baseline_kw == [None, None] and b.energy == 0
    assert b.reduction_kwh == [D(0), D(0)] and run.delivered_kwh == D(11)
    assert "at least 5 weekdays" in next(r["text"] for r in run.rules if r["code"] == "min_days")
    assert "1 site(s)" in next(r["text"] for r in run.rules if r["code"] == "review")


def test_an_event_cancelled_while_it_ran_is_settled_for_what_it_asked_until_then(
    ended_event, device_client, tmp_path, django_capture_on_commit_callbacks
):
    """Cancelled one hour into its two (say a real-time award replaced it): the first hour was asked and served.
    A delivered 10 - 4 = 6 kWh, B 6 - 6 = 0; committed 10 kW x 1 h = 10 kWh; factor 0.6; energy 6 kWh x $100/MWh =
    $0.60, capacity 10 kW x $10 x 0.6 = $60, penalty 10 kW x $4 x 0.4 = $16: net $44.60. It was not settled at all
    (refused as not ended), so its customers were never paid for the hour they served."""
    from dispatch import services as dispatch

    event = ended_event
    site_a, site_b = sites(event)
    before = event.start - timedelta(hours=3)
    post_site_readings(device_client, site_a, before, [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, before, [6, 6, 6, 6, 2])
    prices(tmp_path, event)
    DispatchEvent.objects.filter(pk=event.pk).update(state="active")
    event.refresh_from_db()
    stopped = event.start + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=False):
        dispatch.cancel(event=event, by="tester", reason="Replaced by a real-time award.", now=stopped)
    event.refresh_from_db()
    assert event.state == "cancelled"
    assert services.due(now=datetime.now(UTC) + timedelta(hours=2)) == ([event.pk], [])

    run = services.settle_event(event=event, by="analyst")

    a = SiteSettlement.objects.get(run=run, site=site_a.site)
    assert a.actual_kw == [4.0] and a.reduction_kwh == [D(6)] and a.price_per_mwh == [D(100)]
    assert (run.delivered_kwh, run.committed_kwh, run.performance_factor) == (D(6), D(10), D("0.6000"))
    assert (run.energy, run.capacity, run.penalty, run.net) == (D("0.60"), D("60.00"), D("16.00"), D("44.60"))
    assert stopped.isoformat() in next(r["text"] for r in run.rules if r["code"] == "ended_early")


def test_an_event_cancelled_before_it_started_is_not_settled(ended_event, django_capture_on_commit_callbacks):
    from dispatch import services as dispatch

    event = ended_event
    DispatchEvent.objects.filter(pk=event.pk).update(state="scheduled")
    event.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False):
        dispatch.cancel(event=event, by="tester", reason="Called off.", now=event.start - timedelta(hours=1))
    assert services.due(now=datetime.now(UTC) + timedelta(hours=2)) == ([], [])
    with pytest.raises(services.SettlementRefused) as refused:
        services.settle_event(event=event, by="analyst")
    assert refused.value.problems[0].code == "not_started"
