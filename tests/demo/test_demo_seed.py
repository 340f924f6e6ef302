from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine
from django.core.management import call_command

from aggregator.aggregation.models import ResourceState, VirtualResource


def test_demo_seed_builds_virtual_resources_of_at_least_100_kw_in_two_markets(db, settings, tmp_path):
    settings.VPP_DATA_DIR = tmp_path
    with time_machine.travel(datetime(2026, 7, 15, 15, 0, tzinfo=ZoneInfo("America/New_York")), tick=False):
        call_command("seed_demo", customers=300)
    # CAISO's are registered with the demo's market (the market simulator): see aggregator.demo.market.
    submitted = VirtualResource.objects.filter(state__in=[ResourceState.SUBMITTED, ResourceState.REGISTERED])
    assert submitted.count() >= 2
    assert set(submitted.values_list("market__code", flat=True)) == {"CAISO", "PJM"}
    assert all(r.registered_capability_kw >= r.market.min_aggregation_kw for r in submitted)
    assert all(r.memberships.filter(left_at__isnull=True).exists() for r in submitted)


def test_demo_seed_tells_the_story_history_a_settled_past_event_an_upcoming_one_and_device_tokens(
    db, settings, tmp_path
):
    import json

    from aggregator.reference.models import Reading
    from dispatch.models import DispatchEvent
    from enrollment.models import Device
    from settlement.models import SettlementRun

    settings.VPP_DATA_DIR = tmp_path
    now = datetime(2026, 7, 15, 15, 0, tzinfo=ZoneInfo("America/New_York"))
    with time_machine.travel(now, tick=False):
        call_command("seed_demo", customers=120)
        past = DispatchEvent.objects.get(external_ref="DEMO-PAST")
        upcoming = DispatchEvent.objects.get(external_ref="DEMO-NEXT")
    assert (past.state, past.resource.market.code, upcoming.state, upcoming.resource.market.code) == (
        "completed",
        "PJM",
        "scheduled",
        "CAISO",
    )
    assert past.end < now < upcoming.start
    run = SettlementRun.objects.get(event=past)
    assert run.sites > 1 and run.delivered_kwh > 0 and run.performance_factor > 0  # reductions are in the meter history
    assert past.reports.exists() and past.commands.filter(status="opted_out").count() < past.commands.count()
    sites = Device.objects.filter(site__customer__external_ref__startswith="DEMO-").values("site").distinct().count()
    assert Reading.objects.filter(meter_kind=1).count() == sites * 45 * 24
    tokens = json.loads((tmp_path / "demo-device-tokens.json").read_text())["tokens"]
    assert len(tokens) == Device.objects.filter(site__customer__external_ref__startswith="DEMO-").count()
    assert oct((tmp_path / "demo-device-tokens.json").stat().st_mode & 0o777) == "0o600"
    # A portal login for a customer of the settled event, with a battery; its password is printed by demo_login.
    from django.contrib.auth import authenticate
    from django.test import RequestFactory

    from enrollment.models import CustomerLogin
    from settlement.models import SiteSettlement

    login = CustomerLogin.objects.get(user__username="customer")
    assert SiteSettlement.objects.filter(run=run, customer=login.customer).exists()
    password = (tmp_path / "demo_customer_password").read_text()
    # A login is a request: the login throttle counts it against the caller's address.
    request = RequestFactory().post("/portal/login/")
    assert authenticate(request, username="customer", password=password) == login.user


def test_demo_seed_connects_caiso_to_the_market_simulator_with_registered_resources_and_a_token(
    db, settings, tmp_path, monkeypatch
):
    import json

    from aggregator.core.access import tokens
    from aggregator.market.models import MarketConnection
    from dispatch.models import MarketCredential

    settings.VPP_DATA_DIR = tmp_path
    monkeypatch.delenv("MARKET_SIMULATOR_URL", raising=False)
    monkeypatch.delenv("MARKET_SIMULATOR_PORT", raising=False)
    with time_machine.travel(datetime(2026, 7, 15, 15, 0, tzinfo=ZoneInfo("America/New_York")), tick=False):
        call_command("seed_demo", customers=120)
        call_command("seed_demo", customers=120)  # again: the same connection and token
    connection = MarketConnection.objects.get(market__code="CAISO")
    assert (connection.adapter, connection.base_url, connection.token_env) == (
        "http",
        "http://127.0.0.1:8100",
        "VPP_MARKET_SIM_TOKEN",
    )
    credentials = json.loads((tmp_path / "demo-market-simulator.json").read_text())
    registered = VirtualResource.objects.filter(market__code="CAISO", state=ResourceState.REGISTERED)
    assert registered.exists()
    assert credentials["resources"] == sorted(r.market_resource_id for r in registered)
    credential = MarketCredential.objects.get()
    assert (credential.market.code, credential.source) == ("CAISO", "market_instruction")
    assert tokens.parse(credentials["token"])[1] == credential.key_id
    assert oct((tmp_path / "demo-market-simulator.json").stat().st_mode & 0o777) == "0o600"


def test_the_demo_market_has_forecasts_from_the_seed_so_the_first_offers_need_no_wait(db, settings, tmp_path):
    """Beat's hourly forecast first runs an hour after start: the seed forecasts the demo market's resources itself,
    so the offer cycle a quarter of an hour later builds the next real-time window's offers (CAISO closes 75
    minutes before the hour: at 12:16 PT the 14:00 hour's deadline, 12:45, is inside the 30-minute build lead)."""
    from aggregator.market.models import Forecast, Offer
    from aggregator.market.offers import services as offers

    settings.VPP_DATA_DIR = tmp_path
    seeded = datetime(2026, 7, 15, 12, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    with time_machine.travel(seeded, tick=False):
        call_command("seed_demo", customers=120)
    registered = VirtualResource.objects.filter(market__code="CAISO", state=ResourceState.REGISTERED)
    assert registered.exists() and registered.first().program.auto_submit_offers
    for resource in registered:
        kinds = set(Forecast.objects.filter(resource=resource, issued_at=seeded).values_list("kind", flat=True))
        assert kinds == {"hourly", "real_time"}, resource
    summary = offers.run_offer_cycle(now=seeded + timedelta(minutes=16))
    built = Offer.objects.filter(resource__in=registered, market_kind="real_time")
    assert summary["built"] == registered.count() == built.count()
    assert {o.window_start for o in built} == {datetime(2026, 7, 15, 14, 0, tzinfo=ZoneInfo("America/Los_Angeles"))}
    assert all(o.forecast.issued_at == seeded for o in built)
    # Priced from what the customers are paid, the offers clear in the market simulator's hours of higher prices
    # (its synthetic summer day's late afternoon and evening): a demo run sees awards, not only offers that clear
    # nothing.
    from aggregator.market.simulator import SyntheticPrices

    prices = SyntheticPrices(time_zone="America/Los_Angeles", need_kw=1e9)
    evening = datetime(2026, 7, 15, 19, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    for offer in built:
        highest = max(price for i in offer.intervals.all() for _, price in i.segments)
        assert highest <= prices.lmp(evening, offer.resource.market_resource_id)
        assert sum(prices.lmp(evening.replace(hour=h), "") >= highest for h in range(24)) >= 6  # 16:00 to 22:00
