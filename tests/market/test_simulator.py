"""The market simulator's merit order, and the HTTP adapter against the real simulator on a local port."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from aggregator.market import awards, simulator
from aggregator.market.adapters import SubmissionFailed, for_connection
from aggregator.market.clearing import Bid, clear_interval
from aggregator.market.models import Award, MarketConnection, RefusedAward
from aggregator.reference.models import NetBenefitsPrice
from dispatch.models import DispatchEvent
from tests.factories import ProgramFactory, market
from tests.market.conftest import HOUR, market_client, ref, tomorrow_at, wire_of

NEW_YORK = ZoneInfo("America/New_York")
TOKEN = "simulator-test-token"


# --- the merit order ------------------------------------------------------------------------------------------


def test_the_merit_order_takes_segments_at_or_below_the_lmp_cheapest_first_up_to_the_need():
    a = Bid("A", ((100, 40), (200, 90)))
    b = Bid("B", ((150, 30), (100, 120)))  # its second segment is above the LMP
    c = Bid("C", ((80, 50),), min_kw=80)

    # $95, 400 kW: B 150 @30, A 100 @40, C 80 @50, then A's second segment for the 70 kW left.
    assert clear_interval([a, b, c], lmp=95, need_kw=400) == {"A": 170.0, "B": 150.0, "C": 80.0}
    # 300 kW: after B and A's first, 50 kW is left, below C's 80 kW minimum: C is passed over for A's second.
    assert clear_interval([a, b, c], lmp=95, need_kw=300) == {"A": 150.0, "B": 150.0}
    # $35: only B's first segment is priced at or below it.
    assert clear_interval([a, b, c], lmp=35, need_kw=1000) == {"B": 150.0}


def test_an_offer_with_a_minimum_runs_at_it_or_not_at_all_even_when_cheaper_offers_interleave():
    c = Bid("C", ((50, 40), (50, 60)), min_kw=80)  # its 80 kW minimum is a block at $60
    a = Bid("A", ((100, 50),))

    assert clear_interval([a, c], lmp=70, need_kw=150) == {"A": 100.0}
    assert clear_interval([a, c], lmp=70, need_kw=250) == {"A": 100.0, "C": 100.0}
    assert clear_interval([Bid("D", ((500, 10),), max_kw=120)], lmp=70, need_kw=1000) == {"D": 120.0}


def _prices_csv(tmp_path, rows) -> str:
    path = tmp_path / "prices.csv"
    path.write_text("start,price_per_mwh,need_kw\n" + "".join(f"{s.isoformat()},{p},{n}\n" for s, p, n in rows))
    return str(path)


def test_the_simulator_clears_its_offers_together_per_interval_against_its_price_series(
    make_resource, make_offer, tmp_path
):
    start = tomorrow_at(0)
    first = make_offer(make_resource(), start, hours=2, segments=((100, 40), (50, 90)))
    second = make_offer(make_resource(), start, hours=2, segments=((120, 20), (30, 70)))
    prices = simulator.CsvPrices(_prices_csv(tmp_path, [(start, 80, 200), (start + HOUR, 100, 1000)]), need_kw=0)
    market_sim = simulator.MarketSimulator(market="PJM", prices=prices)
    for offer in (first, second):
        assert market_sim.receive_offer(wire_of(offer))[0] == 201

    published = market_sim.clear_due(now=first.deadline + timedelta(seconds=1))

    # Hour 1 ($80, 200 kW): second's 120 @20, first's 100 @40 gives 80; second's 30 @70 is never reached.
    # Hour 2 ($100, 1000 kW): everything at or below $100: second 150, first 150.
    by_offer = {a["offer_id"]: [(i["start"], i["kw"], i["price_per_mwh"]) for i in a["intervals"]] for a in published}
    assert by_offer == {
        ref(first): [(start.isoformat(), 80.0, 80.0), ((start + HOUR).isoformat(), 150.0, 100.0)],
        ref(second): [(start.isoformat(), 120.0, 80.0), ((start + HOUR).isoformat(), 150.0, 100.0)],
    }
    assert market_sim.clear_due(now=first.deadline + timedelta(hours=1)) == []  # each offer clears once


def test_a_later_version_replaces_the_one_held_until_the_window_clears(make_resource, make_offer):
    resource = make_resource()
    v1 = make_offer(resource, tomorrow_at(0), hours=2)
    v2 = make_offer(resource, tomorrow_at(0), hours=2, version=2, segments=((150, 30),))
    market_sim = simulator.MarketSimulator(market="PJM", prices=simulator.SyntheticPrices(time_zone="UTC", need_kw=1e6))
    market_sim.receive_offer(wire_of(v1))
    market_sim.receive_offer(wire_of(v2))

    assert list(market_sim.offers) == [ref(v2)]
    market_sim.clear_due(now=v2.deadline)
    v3 = make_offer(resource, tomorrow_at(0), hours=2, version=3)
    with pytest.raises(simulator.OfferRefused) as refused:
        market_sim.receive_offer(wire_of(v3))
    assert refused.value.status == 409


# --- the HTTP adapter against the simulator ---------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch):
    """served(simulator) -> the simulator on a free local port and the PJM connection to it (token in the env)."""
    servers = []

    def serve(market_sim: simulator.MarketSimulator) -> MarketConnection:
        server = market_sim.server("127.0.0.1", 0)
        simulator.serve_in_thread(server)
        servers.append(server)
        monkeypatch.setenv("TEST_MARKET_TOKEN", TOKEN)
        connection, _ = MarketConnection.objects.update_or_create(
            market=market("PJM"),
            defaults={
                "adapter": "http",
                "base_url": f"http://127.0.0.1:{server.server_address[1]}",
                "token_env": "TEST_MARKET_TOKEN",
            },
        )
        return connection

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_an_offer_submitted_through_the_http_adapter_is_cleared_fetched_and_becomes_an_event(
    make_resource, make_offer, served
):
    offer = make_offer(make_resource(), tomorrow_at(0), hours=24, segments=((100, 40), (50, 90)))
    market_sim = simulator.MarketSimulator(
        market="PJM", prices=simulator.SyntheticPrices(time_zone="America/New_York", need_kw=130), accept_token=TOKEN
    )
    connection = served(market_sim)
    adapter = for_connection(connection)

    receipt = adapter.submit(wire_of(offer))
    assert receipt.startswith("SIM-PJM-")
    assert adapter.submit(wire_of(offer)) == receipt  # a resend is the same offer
    assert awards.poll_awards(connection=connection).fetched == 0  # nothing cleared yet

    published = market_sim.clear_due(now=offer.deadline)
    result = awards.poll_awards(connection=connection)

    assert (result.fetched, result.new, result.refused) == (1, 1, 0)
    award = Award.objects.get()
    assert (award.source, award.award_ref, award.offer_id) == ("adapter", published[0]["award_id"], offer.pk)
    # Per hour, at the synthetic LMP of its local hour: at or above $90 both segments (130 kW of the need), at or
    # above $40 the first (100 kW), below $40 nothing.
    expected = []
    for n in range(24):
        at = offer.window_start + n * HOUR
        local = at.astimezone(NEW_YORK)
        lmp = (simulator.SUMMER if 5 <= local.month <= 10 else simulator.WINTER)[local.hour]
        if lmp >= 40:
            expected.append((at, D(130) if lmp >= 90 else D(100), D(lmp)))
    assert [(i.start, i.kw, i.price_per_mwh) for i in award.intervals.all()] == expected
    assert award.event.source == "market_instruction" and award.event.external_ref == award.award_ref
    connection.refresh_from_db()
    assert connection.awards_cursor == str(market_sim.awards[-1]["seq"])
    assert awards.poll_awards(connection=connection).fetched == 0  # the cursor moved past it


def test_the_adapter_fails_cleanly_without_the_token_or_the_market(make_resource, make_offer, served, monkeypatch):
    offer = make_offer(make_resource(), tomorrow_at(0), hours=2)
    market_sim = simulator.MarketSimulator(
        market="PJM", prices=simulator.SyntheticPrices(time_zone="UTC", need_kw=1e6), accept_token=TOKEN
    )
    connection = served(market_sim)

    monkeypatch.setenv("TEST_MARKET_TOKEN", "wrong")
    with pytest.raises(SubmissionFailed, match="401"):
        for_connection(connection).submit(wire_of(offer))
    monkeypatch.delenv("TEST_MARKET_TOKEN")
    with pytest.raises(SubmissionFailed, match="TEST_MARKET_TOKEN"):
        for_connection(connection).submit(wire_of(offer))
    assert not market_sim.offers

    monkeypatch.setenv("TEST_MARKET_TOKEN", TOKEN)
    MarketConnection.objects.filter(pk=connection.pk).update(base_url="http://127.0.0.1:9")  # nothing listens
    connection.refresh_from_db()
    result = awards.poll_awards(connection=connection)
    assert result.error and result.fetched == 0 and connection.awards_cursor == ""


def test_an_award_the_checks_refuse_is_recorded_once_and_the_poll_moves_past_it(make_resource, make_offer, served):
    program = ProgramFactory(service="demand_response")
    offer = make_offer(make_resource(program=program), tomorrow_at(0), hours=24, segments=((100, 10),))
    month = offer.window_start.astimezone(NEW_YORK).date().replace(day=1)
    NetBenefitsPrice.objects.create(market=program.market, month=month, price_per_mwh=500, imported_at=timezone.now())
    # This market clears demand response below the net-benefits price; the platform refuses what it awards.
    market_sim = simulator.MarketSimulator(
        market="PJM", prices=simulator.SyntheticPrices(time_zone="America/New_York", need_kw=50), accept_token=TOKEN
    )
    connection = served(market_sim)
    for_connection(connection).submit(wire_of(offer))
    market_sim.clear_due(now=offer.deadline)

    first = awards.poll_awards(connection=connection)
    second = awards.poll_awards(connection=connection)

    assert (first.fetched, first.new, first.refused) == (1, 0, 1)
    assert second.fetched == 0
    refused = RefusedAward.objects.get()
    assert (refused.offer_ref, refused.times_seen) == (ref(offer), 1)
    assert {p["code"] for p in refused.problems} == {"below_net_benefits_price"}
    assert not Award.objects.exists() and not DispatchEvent.objects.exists()
    offer.refresh_from_db()
    assert offer.state == "submitted"


def test_a_fall_back_day_offer_is_cleared_and_awarded_on_its_25_intervals(make_resource, make_offer, served, tmp_path):
    """1 November 2026 in New York: the simulator prices both 01:00s and the 25th interval (23:00 EST) high."""
    day_start, day_end = datetime(2026, 11, 1, tzinfo=NEW_YORK), datetime(2026, 11, 2, tzinfo=NEW_YORK)
    with time_machine.travel(datetime(2026, 10, 31, 12, tzinfo=NEW_YORK), tick=False):
        offer = make_offer(make_resource(), day_start, end=day_end, segments=((100, 100),))
        hours = [day_start.astimezone(UTC) + n * HOUR for n in range(25)]
        high = {hours[1], hours[2], hours[24]}  # 01:00 EDT, 01:00 EST, 23:00 EST
        prices = _prices_csv(tmp_path, [(h, 200 if h in high else 20, 1000) for h in hours])
        market_sim = simulator.MarketSimulator(
            market="PJM", prices=simulator.CsvPrices(prices, need_kw=0), accept_token=TOKEN
        )
        connection = served(market_sim)
        for_connection(connection).submit(wire_of(offer))
        assert len(market_sim.offers[ref(offer)]["offer"]["intervals"]) == 25
        published = market_sim.clear_due(now=offer.deadline)
        result = awards.poll_awards(connection=connection)

    assert [(i["start"], i["end"]) for i in published[0]["intervals"]] == [
        ("2026-11-01T05:00:00+00:00", "2026-11-01T06:00:00+00:00"),
        ("2026-11-01T06:00:00+00:00", "2026-11-01T07:00:00+00:00"),
        ("2026-11-02T04:00:00+00:00", "2026-11-02T05:00:00+00:00"),
    ]
    assert result.new == 1, RefusedAward.objects.values_list("problems", flat=True)
    event = Award.objects.get().event
    # 05:00Z to 05:00Z next day is 24 hours: the two 01:00s, 21 hours at 0 kW on the hour, 23:00 EST.
    intervals = list(event.intervals.order_by("start"))
    assert (event.start, event.end, len(intervals)) == (hours[1], hours[24] + HOUR, 24)
    assert [i.target_kw for i in intervals] == [D(100), D(100)] + [D(0)] * 21 + [D(100)]


# --- the command, against the platform's real web server ------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_simulate_market_once_posts_its_awards_to_the_platform_and_sends_a_real_time_dispatch(
    make_resource, make_offer, live_server, tmp_path, settings
):
    resource = make_resource()
    # Its deadline has passed, so `--once` (on the real clock) clears it at any hour of the day.
    offer = make_offer(resource, tomorrow_at(0), hours=24, deadline=datetime.now(UTC) - timedelta(minutes=1))
    client = market_client()
    token = client._credentials["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    state = tmp_path / "market.json"
    held = simulator.MarketSimulator(
        market="PJM", prices=simulator.SyntheticPrices(time_zone="UTC", need_kw=1e6), state_path=state
    )
    held.receive_offer(wire_of(offer), now=offer.deadline - timedelta(hours=1))

    call_command(
        "simulate_market",
        "--once",
        "--state",
        str(state),
        "--platform-url",
        live_server.url,
        "--token",
        token,
        "--market",
        "PJM",
        "--time-zone",
        "UTC",
    )

    award = Award.objects.get()
    assert (award.source, award.offer_id) == ("api", offer.pk) and award.event is not None
    saved = json.loads(state.read_text())
    assert [a["posted"] for a in saved["awards"]] == ["ok"]

    # The real-time dispatch: an instruction for a resource it holds an offer of, half its offered kW.
    market_sim = simulator.MarketSimulator(
        market="PJM",
        prices=simulator.SyntheticPrices(time_zone="UTC", need_kw=1e6),
        platform=simulator.Platform(live_server.url, token),
        dispatch_in=timedelta(0),
        state_path=state,
    )
    sent = market_sim.dispatch_if_due()
    assert sent is not None and market_sim.dispatch_if_due() is None  # once a run
    event = DispatchEvent.objects.get(external_ref=sent["instruction_id"])
    assert (event.source, event.resource_id) == ("market_instruction", resource.pk)
    assert {i.target_kw for i in event.intervals.all()} == {D("75.000")}
    assert event.end - event.start == timedelta(minutes=30)


def test_a_real_time_dispatch_just_before_a_day_ahead_award_ends_where_the_award_begins():
    """At 23:30 UTC the dispatch window (23:40-00:10) runs into tomorrow's 24-hour award: merged, the replacement
    would last 24 h 20 min, longer than an event may; the dispatch stops at midnight instead, on its own. At noon
    of the award's day the dispatch replaces the award's event, as before."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    sim = simulator.MarketSimulator(
        market="PJM", prices=simulator.SyntheticPrices(time_zone="UTC", need_kw=1e6), resources=["R-1"]
    )
    hours = [tomorrow + timedelta(hours=h) for h in range(25)]
    intervals = [
        {"start": a.isoformat(), "end": b.isoformat(), "kw": 100, "price_per_mwh": 40} for a, b in pairwise(hours)
    ]
    sim.awards.append(
        {"seq": 1, "award": {"award_id": "DA-1", "resource": "R-1", "intervals": intervals}, "posted": "ok"}
    )

    before = sim.dispatch_instruction(now=tomorrow - timedelta(minutes=30))
    assert (before["start"], before["end"]) == ((tomorrow - timedelta(minutes=20)).isoformat(), tomorrow.isoformat())
    assert "replaces_instruction_id" not in before and before["target_kw"] == 10.0

    inside = sim.dispatch_instruction(now=tomorrow + timedelta(hours=12))
    assert inside["replaces_instruction_id"] == "DA-1" and inside["end"] == hours[-1].isoformat()
    assert datetime.fromisoformat(inside["end"]) - datetime.fromisoformat(inside["start"]) <= timedelta(hours=24)
