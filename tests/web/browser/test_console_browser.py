"""The console in a real browser: Playwright drives headless Chromium against the live server and a real worker.

A screenshot of each page is saved under test-artifacts/browser/ (kept by CI as the run's artefacts).
"""

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from settlement import services as settlement
from tests.dispatch.conftest import make_resource, online  # noqa: F401  (the fixture)
from tests.settlement.test_settlement_runs import ended_event, post_site_readings, prices  # noqa: F401

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (deploy/install-browser.sh installs Debian's)")


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_operator_runs_an_event_and_reads_a_statement_in_the_browser(
    ended_event, device_client, tmp_path, make_operator, live_server, celery_worker, browser_page
):
    # The worker starts after the fixture's past event is written (its own tasks then find it completed).
    from django.contrib.auth import get_user_model

    # A settled past event, and the resource's devices online for the next one.
    event = ended_event
    site_a, site_b = [m.device for m in event.resource.memberships.order_by("device_id")]
    post_site_readings(device_client, site_a, event.start - timedelta(hours=3), [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, event.start - timedelta(hours=3), [6, 6, 6, 6, 2])
    prices(tmp_path, event)
    run = settlement.settle_event(event=event, by="analyst")
    online(site_a, site_b)
    user = make_operator("operator", username="grid-operator")
    user.set_password("correct horse battery staple")
    user.save()
    page = browser_page

    page.goto(f"{live_server.url}/console/")
    page.get_by_label("Username").fill("grid-operator")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Fleet", exact=True).wait_for()
    assert page.get_by_role("row", name="generator").count() == 1
    shot(page, "fleet")

    for link, heading, name in (
        ("Resources", "Virtual resources", "resources"),
        ("Settlement", "Settlement", "settlement"),
        ("Storm watch", "Storm watch", "storm-watch"),
        ("Health", "Health", "health"),
    ):
        page.get_by_role("navigation", name="Console").get_by_role("link", name=link, exact=True).click()
        page.get_by_role("heading", name=heading, exact=True).wait_for()
        shot(page, name)

    page.get_by_role("link", name="Resources", exact=True).click()
    page.get_by_role("link", name=event.resource.name).click()
    page.get_by_role("img", name="available kW, next 48 hours").wait_for()
    # The interactive chart (uPlot, served locally): hovering shows the value at that hour, in kW.
    page.locator(".chart-live .uplot").wait_for()
    page.locator(".chart-live .u-over").hover()
    assert page.locator(".chart-live .u-legend .u-value").nth(1).inner_text().endswith(" kW")
    shot(page, "resource")

    # Dispatch an event a few seconds from now: the worker starts it at its start and issues the commands.
    page.get_by_role("link", name="Events", exact=True).click()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    page.get_by_label("Resource").select_option(str(event.resource_id))
    page.get_by_label("Start").fill(start.isoformat())
    page.get_by_label("End").fill((start + timedelta(hours=1)).isoformat())
    page.get_by_label("Target").fill("80")
    page.get_by_role("button", name="Create the event").click()
    page.get_by_role("heading", name="Event").wait_for()
    page.locator("#live").get_by_text("State active").wait_for(timeout=40_000)  # refreshed in place every 5 s
    page.locator("#live").get_by_text("pending 2").wait_for(timeout=20_000)
    shot(page, "event")

    page.get_by_role("link", name="Settlement", exact=True).click()
    page.get_by_role("link", name="statement and chart").first.click()
    page.get_by_role("img", name=f"Event {event.pk}: baseline vs actual").wait_for()
    assert page.get_by_text(str(run.net)).count() >= 1
    shot(page, "statement")
    assert get_user_model().objects.filter(username="grid-operator").exists()
