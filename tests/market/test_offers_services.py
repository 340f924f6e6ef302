"""Building, editing, approving, submitting and expiring offers (PostgreSQL, the file adapter on tmp_path).

The scenario: PJM, operating day Monday 9 March 2026 (the day after the clocks went forward): its window is
04:00Z to 04:00Z the next day (24 hourly intervals) and its deadline 10:30 EDT on Sunday 8 March, 14:30Z.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from aggregator.core.errors import DomainError
from aggregator.market.models import MarketConnection, Offer, OfferInterval
from aggregator.market.offers import services
from aggregator.reference.models import NetBenefitsPrice
from dispatch.models import Allocation, DeviceOptOut, DispatchEvent
from tests.factories import market
from tests.market.offer_setup import forecast, plan, program_with_terms, resource_with

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 9).date()
WINDOW_START = datetime(2026, 3, 9, 4, tzinfo=UTC)
DEADLINE = datetime(2026, 3, 8, 14, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 8, 9, 0, tzinfo=UTC)
JOINED = datetime(2026, 1, 1, tzinfo=UTC)


def three_batteries(program):
    """A: 5 kW, plan 0.04 $/kWh, lossless; B: 5 kW, no plan; C: 10 kW, plan 0.10 $/kWh, 64 % round trip."""
    resource = resource_with(
        program,
        [
            {"rated_kw": Decimal("5"), "round_trip_efficiency_pct": Decimal("100")},
            {"rated_kw": Decimal("5"), "round_trip_efficiency_pct": Decimal("100")},
            {"rated_kw": Decimal("10"), "round_trip_efficiency_pct": Decimal("64")},
        ],
        joined_at=JOINED,
    )
    a, _, c = resource.memberships.order_by("device_id").values_list("device", flat=True)
    plan(resource.memberships.get(device_id=a).device, start=WINDOW_START, value_per_kwh=0.04)
    plan(resource.memberships.get(device_id=c).device, start=WINDOW_START, value_per_kwh=0.10)
    return resource


def build(resource, *, now=NOW, **kwargs):
    return services.build_offers(market_kind="day_ahead", resources=[resource], day=DAY, now=now, **kwargs)


def test_a_day_ahead_offer_prices_each_kw_at_what_it_costs_the_customers_capped_at_p10():
    resource = three_batteries(program_with_terms(share=50))
    source = forecast(resource, start=WINDOW_START, issued_at=NOW - timedelta(hours=1), p10=12)
    result = build(resource)
    (offer,) = result.built
    assert (offer.version, offer.state, offer.quantile, offer.deadline, offer.forecast_id) == (
        1,
        "draft",
        "p10",
        DEADLINE,
        source.pk,
    )
    intervals = list(offer.intervals.order_by("start"))
    assert len(intervals) == 24 and intervals[0].start == WINDOW_START
    # B costs nothing; A: 40 $/MWh stored / 50 % share = 80; C: 100 / sqrt(0.64) = 125, / 50 % = 250.
    # P10 = 12 kW: 5 + 5 + the first 2 kW of C.
    assert {tuple(map(tuple, i.segments)) for i in intervals} == {((5.0, 0.0), (5.0, 80.0), (2.0, 250.0))}
    first = intervals[0]
    assert (first.min_kw, first.max_kw, first.ramp_kw_per_minute) == (Decimal("0"), Decimal("12"), Decimal("2.4"))
    assert (first.notification_minutes, first.min_run_minutes, first.max_run_minutes) == (0, 0, 240)


def test_demand_response_offers_no_kw_below_the_months_net_benefits_price():
    program = program_with_terms(share=50, service="demand_response")
    resource = three_batteries(program)
    NetBenefitsPrice.objects.create(market=market("PJM"), month=DAY.replace(day=1), price_per_mwh=100, imported_at=NOW)
    forecast(resource, start=WINDOW_START, issued_at=NOW - timedelta(hours=1), p10=12)
    (offer,) = build(resource).built
    assert offer.intervals.first().segments == [[10.0, 100.0], [2.0, 250.0]]
    assert offer.warnings == []


def test_demand_response_without_a_loaded_net_benefits_price_is_built_with_a_warning():
    resource = three_batteries(program_with_terms(service="demand_response"))
    forecast(resource, start=WINDOW_START, issued_at=NOW - timedelta(hours=1), p10=12)
    (offer,) = build(resource).built
    assert [w["code"] for w in offer.warnings] == ["no_net_benefits_price"]


def test_a_device_that_opts_out_of_half_its_events_costs_twice_as_much():
    resource = resource_with(
        program_with_terms(share=50), [{"round_trip_efficiency_pct": Decimal("100")}], joined_at=JOINED
    )
    device = resource.memberships.get().device
    plan(device, start=WINDOW_START, value_per_kwh=0.05)  # 50 $/MWh / 50 % = 100 $/MWh
    for day, opted_out in ((10, True), (11, False)):
        start = datetime(2026, 2, day, 22, tzinfo=UTC)
        event = DispatchEvent.objects.create(
            resource=resource,
            source="operator_test",
            notify_at=start,
            start=start,
            end=start + timedelta(hours=2),
            created_by_label="test",
            over_commit_pct=0,
        )
        reason = "opted_out" if opted_out else "allocated"
        Allocation.objects.create(
            event=event,
            round=1,
            device=device,
            customer_id=device.site.customer_id,
            kw=[5.0],
            available_kw=[5.0],
            reason=reason,
        )
        if opted_out:
            DeviceOptOut.objects.create(device=device, start=start, end=event.end, event=event)
    forecast(resource, start=WINDOW_START, issued_at=NOW - timedelta(hours=1), p10=3)
    (offer,) = build(resource).built
    assert offer.intervals.first().segments == [[3.0, 200.0]]


def test_a_real_time_offer_takes_the_lowest_forecast_step_of_each_market_interval():
    # ERCOT's real-time intervals are 15 minutes; the forecast's are 5. Hour 08:00Z on 8 March closes at 07:00Z.
    program = program_with_terms("ERCOT", share=50)
    resource = resource_with(program, [{"rated_kw": Decimal("10")}], joined_at=JOINED)
    values = [20.0] * 24
    values[12:15] = [9.0, 6.0, 8.0]  # 08:00, 08:05, 08:10
    now = datetime(2026, 3, 8, 6, 40, tzinfo=UTC)
    forecast(
        resource,
        kind="real_time",
        start=datetime(2026, 3, 8, 7, tzinfo=UTC),
        issued_at=now - timedelta(minutes=5),
        p10=values,
        hours=2,
        interval_minutes=5,
    )
    hour = datetime(2026, 3, 8, 8, tzinfo=UTC)
    (offer,) = services.build_offers(market_kind="real_time", resources=[resource], window_start=hour, now=now).built
    assert (offer.interval_minutes, offer.deadline) == (15, datetime(2026, 3, 8, 7, tzinfo=UTC))
    assert [i.segments for i in offer.intervals.order_by("start")] == [[[6.0, 0.0]], [[10.0, 0.0]]] + [
        [[10.0, 0.0]]
    ] * 2


def test_a_resource_without_a_forecast_or_with_a_stale_one_is_skipped_with_the_reason():
    missing = three_batteries(program_with_terms())
    stale = three_batteries(program_with_terms())
    forecast(stale, start=WINDOW_START, issued_at=NOW - timedelta(hours=13), p10=12)
    result = services.build_offers(market_kind="day_ahead", resources=[missing, stale], day=DAY, now=NOW)
    assert result.built == []
    assert {(s["resource"], s["code"]) for s in result.skipped} == {
        (missing.pk, "no_forecast"),
        (stale.pk, "stale_forecast"),
    }


def test_nothing_is_built_after_the_deadline():
    resource = three_batteries(program_with_terms())
    forecast(resource, start=WINDOW_START, issued_at=NOW, p10=12)
    result = build(resource, now=DEADLINE)
    assert [s["code"] for s in result.skipped] == ["deadline_passed"]
    assert not Offer.objects.exists()


def test_a_rebuild_is_idempotent_and_a_newer_forecast_supersedes_the_platforms_draft():
    resource = three_batteries(program_with_terms())
    forecast(resource, start=WINDOW_START, issued_at=NOW - timedelta(hours=2), p10=12)
    (first,) = build(resource).built
    assert build(resource).built == []
    newer = forecast(resource, start=WINDOW_START, issued_at=NOW - timedelta(minutes=30), p10=8)
    (second,) = build(resource).built
    first.refresh_from_db()
    assert (second.version, second.supersedes_id, second.forecast_id, first.state) == (
        2,
        first.pk,
        newer.pk,
        "superseded",
    )
    assert second.intervals.first().max_kw == Decimal("8")


def built_offer(program=None):
    resource = three_batteries(program or program_with_terms(share=50))
    forecast(resource, start=WINDOW_START, issued_at=NOW - timedelta(hours=1), p10=12)
    (offer,) = build(resource).built
    return offer


def test_an_edit_is_a_new_version_superseding_the_draft_with_the_other_intervals_carried_over():
    offer = built_offer()
    edited = services.edit_offer(
        offer=offer,
        intervals=[{"start": WINDOW_START.isoformat(), "segments": [[6, 10], [6, 90]], "min_kw": 2}],
        by="operator",
        now=NOW,
    )
    offer.refresh_from_db()
    assert (edited.version, edited.state, edited.supersedes_id, offer.state) == (2, "draft", offer.pk, "superseded")
    first, second = edited.intervals.order_by("start")[:2]
    assert (first.segments, first.max_kw, first.min_kw) == ([[6.0, 10.0], [6.0, 90.0]], Decimal("12"), Decimal("2"))
    assert second.segments == [[5.0, 0.0], [5.0, 80.0], [2.0, 250.0]]
    assert edited.intervals.count() == 24


def test_a_refused_edit_names_each_field_and_writes_nothing():
    offer = built_offer()
    with pytest.raises(DomainError) as refused:
        services.edit_offer(
            offer=offer,
            intervals=[
                {"start": WINDOW_START.isoformat(), "segments": [[10, 90], [5, 80]]},
                {"start": "2026-03-09T04:30:00+00:00", "segments": [[1, 1]]},
                {"start": (WINDOW_START + timedelta(hours=1)).isoformat(), "max_kw": 3},
            ],
            by="operator",
            now=NOW,
        )
    assert refused.value.status == 400
    assert {(p.code, p.field) for p in refused.value.problems} == {
        ("not_monotone", "intervals[0].segments[1][1]"),
        ("above_forecast_quantile", "intervals[0].segments"),
        ("unknown_interval", "intervals[1].start"),
        ("not_editable", "intervals[2].max_kw"),
    }
    assert Offer.objects.count() == 1 and Offer.objects.get().state == "draft"


def test_only_the_latest_version_can_be_edited():
    offer = built_offer()
    services.edit_offer(offer=offer, intervals=[{"start": WINDOW_START.isoformat(), "min_kw": 1}], by="op", now=NOW)
    with pytest.raises(DomainError) as refused:
        services.edit_offer(offer=offer, intervals=[{"start": WINDOW_START.isoformat(), "min_kw": 1}], by="op", now=NOW)
    assert refused.value.code == "not_latest_version"


def connect(tmp_path, **kwargs):
    return MarketConnection.objects.create(
        market=market("PJM"), adapter="file", directory=str(tmp_path), layout="spp-offer-curve-csv", **kwargs
    )


def test_submitting_without_a_connection_leaves_the_offer_approved_with_a_warning():
    offer = services.approve_offer(offer=built_offer(), by="op", now=NOW)
    submitted = services.submit_offer(offer=offer, by="op", now=NOW)
    assert submitted.state == "approved"
    assert [w["code"] for w in submitted.warnings] == ["no_connection"]
    # A retry replaces the warning instead of piling them up.
    assert [w["code"] for w in services.submit_offer(offer=offer, by="op", now=NOW).warnings] == ["no_connection"]


def test_a_failed_submission_stays_approved_with_the_failure_and_a_later_retry_submits(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    link = connect(blocker)
    offer = services.approve_offer(offer=built_offer(), by="op", now=NOW)
    failed = services.submit_offer(offer=offer, by="op", now=NOW)
    assert failed.state == "approved" and [w["code"] for w in failed.warnings] == ["submission_failed"]
    link.directory = str(tmp_path / "inbox")
    link.save()
    done = services.submit_offer(offer=offer, by="op", now=NOW + timedelta(minutes=1))
    assert (done.state, done.submitted_via, done.warnings) == ("submitted", "file", [])
    assert (tmp_path / "inbox" / done.submission_ref).is_file()


def test_a_submitted_offer_cannot_change_in_the_database_except_its_state(tmp_path):
    connect(tmp_path)
    offer = services.submit_offer(offer=services.approve_offer(offer=built_offer(), by="op", now=NOW), by="op", now=NOW)
    assert offer.state == "submitted"
    for write in (
        lambda: OfferInterval.objects.filter(offer=offer).update(segments=[]),
        lambda: Offer.objects.filter(pk=offer.pk).update(notes="changed"),
        lambda: OfferInterval.objects.create(
            offer=offer, start=WINDOW_START - timedelta(hours=1), max_kw=1, segments=[[1, 1]], ramp_kw_per_minute=1
        ),
        lambda: offer.delete(),
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            write()
    Offer.objects.filter(pk=offer.pk).update(state="accepted")
    assert Offer.objects.get(pk=offer.pk).state == "accepted"


def test_editing_a_submitted_offer_before_the_deadline_resubmits_a_new_version_superseding_it(tmp_path):
    connect(tmp_path)
    offer = services.submit_offer(offer=services.approve_offer(offer=built_offer(), by="op", now=NOW), by="op", now=NOW)
    new = services.edit_offer(
        offer=offer, intervals=[{"start": WINDOW_START.isoformat(), "segments": [[12, 55]]}], by="op", now=NOW
    )
    offer.refresh_from_db()
    assert (new.version, new.state, offer.state) == (2, "submitted", "superseded")
    assert new.submission_ref.endswith(f"_{new.pk}-v2.csv")


def test_an_offer_cannot_change_after_its_deadline():
    offer = built_offer()
    for act in (
        lambda: services.approve_offer(offer=offer, by="op", now=DEADLINE),
        lambda: services.edit_offer(
            offer=offer, intervals=[{"start": WINDOW_START.isoformat(), "min_kw": 1}], by="op", now=DEADLINE
        ),
    ):
        with pytest.raises(DomainError) as refused:
            act()
        assert (refused.value.code, refused.value.status) == ("deadline_passed", 409)


def test_unsubmitted_offers_expire_at_their_deadline():
    draft = built_offer()
    approved = services.approve_offer(offer=built_offer(), by="op", now=NOW)
    assert services.expire_offers(now=DEADLINE - timedelta(seconds=1)) == 0
    assert services.expire_offers(now=DEADLINE) == 2
    assert set(Offer.objects.filter(pk__in=[draft.pk, approved.pk]).values_list("state", flat=True)) == {"expired"}
