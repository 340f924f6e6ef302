"""Awards in: checked against the offer, refused by field with nothing written, else a dispatch event."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from aggregator.market import awards
from aggregator.market.models import Award, AwardInterval, Offer
from aggregator.reference.models import NetBenefitsPrice
from dispatch import services as dispatch
from dispatch.models import DispatchEvent
from settlement.models import SettlementTerms
from tests.factories import ProgramFactory
from tests.market.conftest import HOUR, award_body, market_client, ref, tomorrow_at

AWARDS = "/api/inbound/v1/awards"
NEW_YORK = ZoneInfo("America/New_York")


def fields_of(response) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in response.json()["errors"]]


def nothing_written(offer: Offer) -> bool:
    offer.refresh_from_db()
    return (
        not Award.objects.exists()
        and not AwardInterval.objects.exists()
        and not DispatchEvent.objects.exists()
        and offer.state == "submitted"
    )


@pytest.fixture
def offer(make_resource, make_offer):
    """A day-ahead offer of 150 kW an hour tomorrow: 100 kW at $40, then 50 kW at $90."""
    return make_offer(make_resource(), tomorrow_at(0), hours=24)


def test_a_day_ahead_award_becomes_a_reduction_event_over_the_awarded_hours(offer):
    start = offer.window_start
    body = award_body(
        offer,
        [(start + 17 * HOUR, 120, 95.5), (start + 18 * HOUR, 150, 130), (start + 20 * HOUR, 80, 60)],
        award_id="DA-2026-0001",
    )

    response = market_client().post(AWARDS, body, format="json")

    assert response.status_code == 201, response.content
    award = Award.objects.get()
    event = award.event
    answer = response.json()
    assert (answer["id"], answer["event"], answer["offer_ref"]) == (award.pk, event.pk, ref(offer))
    assert (award.source, award.market_kind, award.award_ref) == ("api", "day_ahead", "DA-2026-0001")
    assert (event.source, event.external_ref, event.target_kind) == ("market_instruction", "DA-2026-0001", "reduction")
    # 17:00 and 18:00 as awarded, 19:00 not awarded (held at 0), 20:00 as awarded.
    assert [(i.start, i.end, i.target_kw) for i in event.intervals.order_by("start")] == [
        (start + 17 * HOUR, start + 18 * HOUR, D("120.000")),
        (start + 18 * HOUR, start + 19 * HOUR, D("150.000")),
        (start + 19 * HOUR, start + 20 * HOUR, D("0.000")),
        (start + 20 * HOUR, start + 21 * HOUR, D("80.000")),
    ]
    assert event.ramp_seconds == 72  # 120 kW at the offered 100 kW a minute
    assert [(i.kw, i.price_per_mwh) for i in award.intervals.all()] == [
        (D("120.000"), D("95.5000")),
        (D("150.000"), D("130.0000")),
        (D("80.000"), D("60.0000")),
    ]
    offer.refresh_from_db()
    assert offer.state == "accepted"


def test_an_award_above_the_offered_quantity_is_refused_and_nothing_is_written(offer):
    start = offer.window_start
    body = award_body(offer, [(start + 17 * HOUR, 150, 95), (start + 18 * HOUR, 150.001, 95)])

    response = market_client().post(AWARDS, body, format="json")

    assert response.status_code == 422, response.content
    assert fields_of(response) == [("intervals[1].kw", "above_offer")]
    assert nothing_written(offer)


def test_an_award_below_the_offers_minimum_is_refused_but_zero_is_not(make_resource, make_offer):
    offer = make_offer(make_resource(), tomorrow_at(0), hours=24, min_kw=60)
    start = offer.window_start
    client = market_client()

    below = client.post(AWARDS, award_body(offer, [(start + 17 * HOUR, 59, 95)]), format="json")
    zero_and_minimum = client.post(
        AWARDS, award_body(offer, [(start + 17 * HOUR, 0, 95), (start + 18 * HOUR, 60, 95)]), format="json"
    )

    assert below.status_code == 422 and fields_of(below) == [("intervals[0].kw", "below_minimum")]
    assert zero_and_minimum.status_code == 201, zero_and_minimum.content


def test_an_award_priced_below_the_offer_curve_at_its_quantity_is_refused(offer):
    start = offer.window_start
    client = market_client()
    # 120 kW reaches the second segment ($90): $89.99 is below it; 100 kW at $40 is the first segment's price.
    below = client.post(
        AWARDS, award_body(offer, [(start + 17 * HOUR, 100, 40), (start + 18 * HOUR, 120, 89.99)]), format="json"
    )
    assert below.status_code == 422
    assert fields_of(below) == [("intervals[1].price_per_mwh", "below_offer_price")]
    assert nothing_written(offer)

    at_price = client.post(
        AWARDS, award_body(offer, [(start + 17 * HOUR, 100, 40), (start + 18 * HOUR, 120, 90)]), format="json"
    )
    assert at_price.status_code == 201, at_price.content


def test_an_award_outside_the_markets_price_floor_or_cap_is_refused(offer):
    start = offer.window_start
    market = offer.resource.market
    body = award_body(
        offer,
        [(start + 17 * HOUR, 0, float(market.offer_price_floor_per_mwh) - 1), (start + 18 * HOUR, 100, 1000.01)],
    )

    response = market_client().post(AWARDS, body, format="json")

    assert response.status_code == 422
    assert fields_of(response) == [
        ("intervals[0].price_per_mwh", "out_of_range"),
        ("intervals[1].price_per_mwh", "out_of_range"),
    ]
    assert nothing_written(offer)


def test_demand_response_awarded_below_the_months_net_benefits_price_is_refused(make_resource, make_offer):
    program = ProgramFactory(service="demand_response")
    offer = make_offer(make_resource(program=program), tomorrow_at(0), hours=24)
    start = offer.window_start
    # The threshold of the awarded hour's own local month: the window begins the evening before in New York,
    # in the month before when tomorrow (UTC) is the 1st.
    month = (start + 17 * HOUR).astimezone(ZoneInfo(program.market.time_zone)).date().replace(day=1)
    NetBenefitsPrice.objects.create(
        market=program.market, month=month, price_per_mwh=D("100"), imported_at=timezone.now()
    )
    client = market_client()

    below = client.post(AWARDS, award_body(offer, [(start + 17 * HOUR, 100, 99.99)]), format="json")
    assert below.status_code == 422
    assert fields_of(below) == [("intervals[0].price_per_mwh", "below_net_benefits_price")]
    assert nothing_written(offer)

    at_threshold = client.post(
        AWARDS, award_body(offer, [(start + 17 * HOUR, 100, 100)], award_id="DA-2"), format="json"
    )
    assert at_threshold.status_code == 201, at_threshold.content


def test_the_net_benefits_price_does_not_bind_a_program_whose_terms_opt_out_or_an_energy_program(
    make_resource, make_offer
):
    program = ProgramFactory(service="demand_response")
    SettlementTerms.objects.create(program=program, baseline_method="pjm-high-4-of-5", net_benefits_test=False)
    opted_out = make_offer(make_resource(program=program), tomorrow_at(0), hours=24)
    energy = make_offer(make_resource(), tomorrow_at(0), hours=24)
    for offer in (opted_out, energy):
        month = offer.window_start.astimezone(ZoneInfo("America/New_York")).date().replace(day=1)
        NetBenefitsPrice.objects.get_or_create(
            market=offer.resource.market, month=month, defaults={"price_per_mwh": 100, "imported_at": timezone.now()}
        )
    client = market_client()

    for n, offer in enumerate((opted_out, energy)):
        body = award_body(offer, [(offer.window_start + 17 * HOUR, 100, 50)], award_id=f"DA-{n}")
        assert client.post(AWARDS, body, format="json").status_code == 201


def test_the_same_award_again_is_the_same_award_and_other_content_under_its_id_is_a_conflict(offer):
    start = offer.window_start
    client = market_client()
    body = award_body(offer, [(start + 17 * HOUR, 120, 95)])
    first = client.post(AWARDS, body, format="json")
    assert first.status_code == 201

    again = client.post(AWARDS, body, format="json")
    changed = client.post(AWARDS, award_body(offer, [(start + 17 * HOUR, 121, 95)]), format="json")

    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert changed.status_code == 409 and fields_of(changed) == [("award_id", "award_id_reused")]
    assert Award.objects.count() == 1 and DispatchEvent.objects.count() == 1
    assert DispatchEvent.objects.get().intervals.get().target_kw == D("120.000")


def test_an_award_must_name_one_of_our_submitted_offers_of_this_market_and_resource(offer, make_resource, make_offer):
    start = offer.window_start
    client = market_client()
    interval = [(start + 17 * HOUR, 100, 95)]

    unknown = client.post(AWARDS, {**award_body(offer, interval), "offer_id": "999999-v1"}, format="json")
    other_version = client.post(AWARDS, {**award_body(offer, interval), "offer_id": f"{offer.pk}-v2"}, format="json")
    not_ours = client.post(AWARDS, {**award_body(offer, interval), "offer_id": "PJM-OFFER-7"}, format="json")
    wrong_resource = client.post(AWARDS, {**award_body(offer, interval), "resource": "PJM-0"}, format="json")
    wrong_kind = client.post(AWARDS, award_body(offer, interval, market_kind="real_time"), format="json")
    other_market = market_client("CAISO").post(AWARDS, award_body(offer, interval), format="json")
    draft = make_offer(make_resource(), tomorrow_at(0), hours=24, state="draft")
    unsubmitted = client.post(AWARDS, award_body(draft, interval), format="json")

    assert [(r.status_code, fields_of(r)) for r in (unknown, other_version, not_ours, other_market)] == [
        (422, [("offer_id", "does_not_exist")])
    ] * 4
    assert (wrong_resource.status_code, fields_of(wrong_resource)) == (422, [("resource", "wrong_resource")])
    assert (wrong_kind.status_code, fields_of(wrong_kind)) == (422, [("market_kind", "wrong_market_kind")])
    assert (unsubmitted.status_code, fields_of(unsubmitted)) == (422, [("offer_id", "not_submitted")])
    assert not Award.objects.exists() and not DispatchEvent.objects.exists()


def test_awarded_intervals_must_be_the_offers_own(offer):
    start = offer.window_start
    client = market_client()
    half_past = {**award_body(offer, [(start + 17 * HOUR + timedelta(minutes=30), 100, 95)])}
    two_hours = award_body(offer, [(start + 17 * HOUR, 100, 95)])
    two_hours["intervals"][0]["end"] = (start + 19 * HOUR).isoformat()
    after_window = award_body(offer, [(start + 24 * HOUR, 100, 95)])
    twice = award_body(offer, [(start + 17 * HOUR, 100, 95), (start + 17 * HOUR, 100, 95)])

    answers = [client.post(AWARDS, body, format="json") for body in (half_past, two_hours, after_window, twice)]

    assert [(r.status_code, fields_of(r)) for r in answers] == [
        (422, [("intervals[0].start", "not_offered")]),
        (422, [("intervals[0].end", "off_grid")]),
        (422, [("intervals[0].start", "outside_window")]),
        (422, [("intervals[1].start", "duplicate")]),
    ]
    assert nothing_written(offer)


def test_a_malformed_award_is_a_400_naming_the_field(offer):
    start = offer.window_start
    body = award_body(offer, [(start + 17 * HOUR, 100, 95)])
    body["intervals"][0]["start"] = "2026-12-04T17:00:00"  # no offset
    body["intervals"][0]["kw"] = -1

    response = market_client().post(AWARDS, body, format="json")

    assert response.status_code == 400
    assert {f for f, _ in fields_of(response)} == {"intervals.0.start", "intervals.0.kw"}  # the serializer's paths
    assert nothing_written(offer)


def test_a_utility_token_cannot_send_awards(offer):
    body = award_body(offer, [(offer.window_start + 17 * HOUR, 100, 95)])

    response = market_client(source="utility_call").post(AWARDS, body, format="json")

    assert response.status_code == 403
    assert nothing_written(offer)


def test_a_refused_event_refuses_the_award(make_resource, make_offer):
    """The resource's program refuses events above capability: 4 generators of 50 kW cannot give 250 kW."""
    resource = make_resource()
    resource.program.above_capability = "refuse"
    resource.program.save()
    offer = make_offer(resource, tomorrow_at(0), hours=24, max_kw=300, segments=((300, 40),))

    response = market_client().post(
        AWARDS, award_body(offer, [(offer.window_start + 17 * HOUR, 250, 95)]), format="json"
    )

    assert response.status_code == 422
    assert fields_of(response) == [("intervals[0].target_kw", "above_capability")]
    assert nothing_written(offer)


def test_an_operator_test_in_the_awarded_window_yields_to_the_award_and_a_utility_call_refuses_it(offer):
    start = offer.window_start
    test_event = dispatch.create_event(
        resource=offer.resource,
        source="operator_test",
        start=start + 18 * HOUR,
        end=start + 19 * HOUR,
        target_kw=50,
        by="operator",
    )
    client = market_client()

    taken = client.post(
        AWARDS, award_body(offer, [(start + 17 * HOUR, 100, 95), (start + 18 * HOUR, 100, 95)]), format="json"
    )

    assert taken.status_code == 201, taken.content
    test_event.refresh_from_db()
    assert test_event.state == "cancelled"
    assert "DA-1" in test_event.transitions.get(action="cancel").reason

    utility = dispatch.create_event(
        resource=offer.resource,
        source="utility_call",
        start=start + 21 * HOUR,
        end=start + 22 * HOUR,
        target_kw=50,
        by="utility",
    )
    refused = client.post(AWARDS, award_body(offer, [(start + 21 * HOUR, 100, 95)], award_id="DA-2"), format="json")

    assert refused.status_code == 409
    assert fields_of(refused) == [("intervals", "overlapping_event")]
    utility.refresh_from_db()
    assert utility.state == "scheduled" and Award.objects.count() == 1


def test_a_real_time_award_inside_a_day_ahead_award_replaces_its_event_with_the_rest_of_its_schedule(offer, make_offer):
    start = offer.window_start
    client = market_client()
    day_ahead = client.post(
        AWARDS,
        award_body(offer, [(start + h * HOUR, 100, 95) for h in (17, 18, 19)], award_id="DA-7"),
        format="json",
    )
    assert day_ahead.status_code == 201
    rt_offer = make_offer(
        offer.resource, start + 18 * HOUR, hours=1, interval_minutes=5, market_kind="real_time", max_kw=150
    )
    five = timedelta(minutes=5)
    rt_start = start + 18 * HOUR + 2 * five  # 18:10 to 18:20: 150 kW, then 0 kW

    real_time = client.post(
        AWARDS,
        award_body(rt_offer, [(rt_start, 150, 120), (rt_start + five, 0, 120)], award_id="RT-3"),
        format="json",
    )

    assert real_time.status_code == 201, real_time.content
    first = Award.objects.get(award_ref="DA-7").event
    second = Award.objects.get(award_ref="RT-3").event
    assert first.state == "cancelled" and second.replaces_id == first.pk
    assert (second.external_ref, second.source) == ("RT-3", "market_instruction")
    assert [(i.start, i.end, i.target_kw) for i in second.intervals.order_by("start")] == [
        (start + 17 * HOUR, start + 18 * HOUR, D("100.000")),
        (start + 18 * HOUR, rt_start, D("100.000")),
        (rt_start, rt_start + five, D("150.000")),
        (rt_start + five, rt_start + 2 * five, D("0.000")),
        (rt_start + 2 * five, start + 19 * HOUR, D("100.000")),
        (start + 19 * HOUR, start + 20 * HOUR, D("100.000")),
    ]


def test_a_real_time_award_while_the_day_ahead_event_runs_takes_over_from_now(offer, make_offer):
    start = offer.window_start
    client = market_client()
    assert (
        client.post(
            AWARDS, award_body(offer, [(start + h * HOUR, 100, 95) for h in (17, 18)], award_id="DA-8"), format="json"
        ).status_code
        == 201
    )
    rt_offer = make_offer(offer.resource, start + 17 * HOUR, hours=1, interval_minutes=5, market_kind="real_time")
    now = start + 17 * HOUR + timedelta(minutes=21, seconds=30)
    rt_start = start + 17 * HOUR + timedelta(minutes=30)

    with time_machine.travel(now, tick=False):
        dispatch.advance(event_id=Award.objects.get().event_id, now=now)
        real_time = client.post(AWARDS, award_body(rt_offer, [(rt_start, 140, 130)], award_id="RT-4"), format="json")

    assert real_time.status_code == 201, real_time.content
    second = Award.objects.get(award_ref="RT-4").event
    assert [(i.start, i.end, i.target_kw) for i in second.intervals.order_by("start")] == [
        (now, rt_start, D("100.000")),
        (rt_start, rt_start + timedelta(minutes=5), D("140.000")),
        (rt_start + timedelta(minutes=5), start + 18 * HOUR, D("100.000")),
        (start + 18 * HOUR, start + 19 * HOUR, D("100.000")),
    ]


def test_a_fall_back_day_offer_of_25_hours_is_awarded_on_its_own_grid(make_resource, make_offer):
    """1 November 2026 in New York: 25 hours, 01:00 twice (EDT then EST). An award of 00:00 to 03:00 local is four
    hourly intervals; the 25th interval (23:00 EST) is on the grid; a wall-clock hour that is not one of the
    offer's (01:30 EST) is not."""
    day_start = datetime(2026, 11, 1, tzinfo=NEW_YORK)
    day_end = datetime(2026, 11, 2, tzinfo=NEW_YORK)
    with time_machine.travel(datetime(2026, 10, 31, 12, tzinfo=NEW_YORK), tick=False):
        offer = make_offer(make_resource(), day_start, end=day_end)
        assert offer.intervals.count() == 25
        first_one = datetime(2026, 11, 1, 1, tzinfo=NEW_YORK)  # EDT, -04:00
        second_one = datetime(2026, 11, 1, 1, fold=1, tzinfo=NEW_YORK)  # EST, -05:00
        assert second_one.astimezone(UTC) - first_one.astimezone(UTC) == HOUR
        client = market_client()

        off_grid = client.post(
            AWARDS, award_body(offer, [(second_one + timedelta(minutes=30), 100, 95)], award_id="DA-X"), format="json"
        )
        body = award_body(
            offer,
            [
                (day_start, 100, 95),
                (first_one, 110, 95),
                (second_one, 120, 95),
                (datetime(2026, 11, 1, 2, tzinfo=NEW_YORK), 130, 95),
                (datetime(2026, 11, 1, 23, tzinfo=NEW_YORK), 90, 95),
            ],
            award_id="DA-FALL",
        )
        body["intervals"][4]["kw"] = 0  # the 25th interval awarded nothing: the event ends at 03:00
        taken = client.post(AWARDS, body, format="json")

    assert off_grid.status_code == 422 and fields_of(off_grid) == [("intervals[0].start", "not_offered")]
    assert taken.status_code == 201, taken.content
    event = Award.objects.get(award_ref="DA-FALL").event
    intervals = [(i.start, i.end, i.target_kw) for i in event.intervals.order_by("start")]
    assert intervals == [
        (datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 5, tzinfo=UTC), D("100.000")),
        (datetime(2026, 11, 1, 5, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC), D("110.000")),
        (datetime(2026, 11, 1, 6, tzinfo=UTC), datetime(2026, 11, 1, 7, tzinfo=UTC), D("120.000")),
        (datetime(2026, 11, 1, 7, tzinfo=UTC), datetime(2026, 11, 1, 8, tzinfo=UTC), D("130.000")),
    ]
    assert Award.objects.get(award_ref="DA-FALL").intervals.count() == 5
    assert date(2026, 11, 1) == event.start.astimezone(NEW_YORK).date()


def test_a_whole_fall_back_day_is_awarded_as_one_25_hour_event(make_resource, make_offer):
    """Every one of the 25 hours of 1 November 2026 in New York awarded: one event of 25 hourly intervals (it was
    refused as longer than 24 hours). A day and an hour on the clock is still refused, as two operating days."""
    day_start = datetime(2026, 11, 1, tzinfo=NEW_YORK)
    with time_machine.travel(datetime(2026, 10, 31, 12, tzinfo=NEW_YORK), tick=False):
        offer = make_offer(make_resource(), day_start, end=datetime(2026, 11, 2, tzinfo=NEW_YORK))
        rows = list(offer.intervals.order_by("start"))
        taken = market_client().post(
            AWARDS, award_body(offer, [(r.start, 50, 95) for r in rows], award_id="DA-FULL"), format="json"
        )
    assert len(rows) == 25 and taken.status_code == 201, taken.content
    event = Award.objects.get(award_ref="DA-FULL").event
    assert (event.start, event.end) == (datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC))
    assert event.intervals.count() == 25

    from dispatch import services as dispatch

    with pytest.raises(dispatch.EventRefused) as refused:
        dispatch.create_event(
            resource=event.resource,
            source="operator_test",
            start=datetime(2026, 11, 3, 14, tzinfo=NEW_YORK),
            end=datetime(2026, 11, 4, 15, tzinfo=NEW_YORK),
            target_kw=10,
            by="tester",
            now=datetime(2026, 11, 3, 12, tzinfo=NEW_YORK),
        )
    assert [(p.field, p.code) for p in refused.value.problems] == [("end", "out_of_range")]


def test_operators_read_awards_with_their_intervals_offer_and_event(offer, api_as):
    start = offer.window_start
    market_client().post(AWARDS, award_body(offer, [(start + 17 * HOUR, 120, 95)], award_id="DA-9"), format="json")
    award = Award.objects.get()
    client = api_as("analyst")

    listed = client.get("/api/v1/market/awards/")
    detail = client.get(f"/api/v1/market/awards/{award.pk}/")

    assert listed.status_code == 200
    row = listed.json()["results"][0]
    assert (row["award_ref"], row["offer_ref"], row["event"], row["event_state"], row["market"]) == (
        "DA-9",
        ref(offer),
        award.event_id,
        "scheduled",
        "PJM",
    )
    assert row["intervals"] == [
        {
            "start": (start + 17 * HOUR).isoformat().replace("+00:00", "Z"),
            "end": (start + 18 * HOUR).isoformat().replace("+00:00", "Z"),
            "kw": "120.000",
            "price_per_mwh": "95.0000",
        }
    ]
    assert detail.status_code == 200 and detail.json()["content"]["award_id"] == "DA-9"
    assert client.get("/api/v1/market/awards/", {"market_kind": "real_time"}).json()["count"] == 0


def test_the_award_endpoint_is_in_the_openapi_schema(api_as):
    schema = api_as("admin").get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/inbound/v1/awards"]["post"]
    assert {"201", "200", "409", "422", "400"} <= set(operation["responses"])
    assert "marketToken" in str(operation["security"])
    assert "/api/v1/market/awards/{id}/" in schema["paths"]


def test_receive_award_is_the_one_entry_for_the_adapter_too(offer):
    """The service itself, as the adapter's poll calls it: a refusal is a DomainError naming the field."""
    body = award_body(offer, [(offer.window_start + 17 * HOUR, 151, 95)])
    with pytest.raises(awards.AwardRefused) as refused:
        awards.receive_award(market=offer.resource.market, award=body, source="adapter", by="test")
    assert [(p.field, p.code) for p in refused.value.problems] == [("intervals[0].kw", "above_offer")]
    assert nothing_written(offer)
