"""The market story in a real browser, as a newcomer watches it after `make run`: a forecast, an offer built from
it, approved and submitted from the Market page through the HTTP adapter to the market simulator, the simulator
clearing it (`simulate_market --once`) and posting the award to the live server, the award's dispatch event
(advanced by a real worker), and the Market page showing the award beside the offer with the event's link.

Screenshots go to test-artifacts/browser/ beside the console's.
"""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from aggregator.core.access import tokens
from aggregator.market import simulator
from aggregator.market.models import Award, Forecast, MarketConnection, Offer
from aggregator.market.offers import deadlines
from aggregator.market.offers import services as offers
from aggregator.web.console.market import closes_in
from dispatch.models import MarketCredential
from tests.market.conftest import energy_program, make_resource  # noqa: F401  (the fixtures)
from tests.web.browser.test_console_browser import CHROMIUM, browser_page, shot  # noqa: F401  (the fixture)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (deploy/install-browser.sh installs Debian's)")

SIMULATOR_TOKEN = "market-story-simulator-token"
PASSWORD = "correct horse battery staple"


def operating_day(market, now):
    """Tomorrow, or the day after once tomorrow's day-ahead deadline is less than ten minutes away."""
    today = deadlines.operating_day_of(now, market_time_zone=market.time_zone)
    for offset in (1, 2):
        window = offers.window_for(market, "day_ahead", day=today + timedelta(days=offset))
        if window.deadline - now > timedelta(minutes=10):
            return today + timedelta(days=offset), window
    raise AssertionError("no day-ahead window open")


@pytest.fixture
def market_simulator(tmp_path, monkeypatch):
    """The market simulator playing PJM on a free local port (its state in a file), and PJM's connection to it."""
    from tests.factories import market

    held = simulator.MarketSimulator(
        market="PJM",
        prices=simulator.SyntheticPrices(time_zone="America/New_York", need_kw=1e6),
        accept_token=SIMULATOR_TOKEN,
        state_path=tmp_path / "market.json",
    )
    server = held.server("127.0.0.1", 0)
    simulator.serve_in_thread(server)
    monkeypatch.setenv("STORY_MARKET_TOKEN", SIMULATOR_TOKEN)
    MarketConnection.objects.update_or_create(
        market=market("PJM"),
        defaults={
            "adapter": "http",
            "base_url": f"http://127.0.0.1:{server.server_address[1]}",
            "token_env": "STORY_MARKET_TOKEN",
        },
    )
    yield held
    server.shutdown()
    server.server_close()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_forecast_offer_award_and_dispatch_on_the_market_page(
    make_resource, make_operator, market_simulator, live_server, celery_worker, browser_page
):
    resource = make_resource()  # four 50 kW generators, registered with PJM
    market = resource.market
    now = timezone.now()
    day, window = operating_day(market, now)
    # The forecast (what the forecast service writes hourly): P10 150 kW every hour for three days.
    Forecast.objects.create(
        resource=resource,
        kind="hourly",
        model="learned",
        issued_at=now,
        start=now.replace(minute=0, second=0, microsecond=0),
        interval_minutes=60,
        expected_kw=[175.0] * 72,
        p10_kw=[150.0] * 72,
        p50_kw=[180.0] * 72,
        p90_kw=[200.0] * 72,
    )
    built = offers.build_offers(market_kind="day_ahead", resources=[resource], day=day, now=now)
    assert len(built.built) == 1, built.skipped
    offer = Offer.objects.get()
    # The market's token for the platform's inbound API, as `manage.py issue_market_token PJM` makes one.
    issued = tokens.issue("mkt")
    MarketCredential.objects.create(
        market=market, source="market_instruction", key_id=issued.key_id, digest=issued.digest
    )
    user = make_operator("operator", username="market-operator")
    user.set_password(PASSWORD)
    user.save()
    page = browser_page

    page.goto(f"{live_server.url}/console/")
    page.get_by_label("Username").fill("market-operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Fleet", exact=True).wait_for()
    page.clock.install()  # the countdown's ticks run on the page's clock, which the test moves on below
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Market", exact=True).click()
    page.get_by_role("heading", name="Market: PJM").wait_for()
    page.get_by_role("img", name=f"{resource.name}: tomorrow's forecast").wait_for()
    page.get_by_role("img", name="Offer curve").wait_for()
    countdown = page.locator("#offer-heading + p time.countdown")
    seconds = int(countdown.get_attribute("data-seconds-left"))
    assert countdown.inner_text() == closes_in(seconds)
    # Twenty minutes on (and the few real seconds the test took), the script has ticked it down.
    page.clock.fast_forward("20:00")
    assert countdown.inner_text() in {closes_in(seconds - 20 * 60 - lag) for lag in range(30)}
    assert countdown.inner_text() != closes_in(seconds)
    shot(page, "market-draft")

    # Approve the draft, then submit it now: through the HTTP adapter to the simulator.
    page.get_by_role("button", name=f"Approve offer {offer.pk} of {resource.name}").click()
    page.get_by_text(f"Offer {offer.pk} v1 of {resource.name} approved").wait_for()
    page.get_by_role("button", name=f"Submit offer {offer.pk} of {resource.name} now").click()
    page.get_by_text(f"Offer {offer.pk} v1 of {resource.name} submitted via http, receipt SIM-PJM-").wait_for()
    offer.refresh_from_db()
    assert offer.state == "submitted" and list(market_simulator.offers) == [f"{offer.pk}-v1"]

    # The market clears what it holds and posts the award to the platform.
    call_command(
        "simulate_market",
        "--once",
        "--state",
        str(market_simulator.state_path),
        "--clear-delay",
        "0",
        "--platform-url",
        live_server.url,
        "--token",
        issued.plaintext,
        "--market",
        "PJM",
        "--time-zone",
        "America/New_York",
    )
    award = Award.objects.select_related("event").get()
    event = award.event
    # Every hour's LMP is above the offer's price (the generators cost nothing to run: the market's floor), and
    # the need is large: the whole curve, 150 kW, clears in each of the window's hours.
    assert award.intervals.count() == len(window.starts)
    assert {i.kw for i in award.intervals.all()} == {150}
    assert (event.source, event.external_ref, event.resource_id) == ("market_instruction", award.award_ref, resource.pk)

    page.reload()
    offers_table = page.locator("section[aria-labelledby=offers-heading] tbody tr").filter(has_text=resource.name)
    offers_table.filter(has_text="accepted").filter(has_text=award.award_ref).wait_for()
    page.get_by_role("img", name="Awarded vs offered kW").wait_for()
    awarded = page.locator("section[aria-labelledby=awards-heading] tbody tr")
    assert awarded.count() == len(window.starts)
    assert awarded.first.locator("td").nth(2).inner_text() == "150.000"
    shot(page, "market-awarded")

    page.locator("section[aria-labelledby=awards-heading]").get_by_role("link", name=f"event {event.pk}").click()
    page.get_by_role("heading", name=f"Event {event.pk}: {resource.name}").wait_for()
    page.get_by_text("Market instruction").first.wait_for()
    shot(page, "market-event")
