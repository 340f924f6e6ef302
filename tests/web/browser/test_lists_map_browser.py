"""The console's lists, history, map and fleet import, and the portal on a phone, in a real browser (Playwright and
headless Chromium against the live server and a real worker). Screenshots go to test-artifacts/browser/."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from enrollment import services as enrollment
from enrollment.models import DeviceStatus, Site
from tests.enrollment.test_fleet_import import battery, csv_text
from tests.factories import DeviceFactory, ProgramFactory, SiteFactory, eligible_device, market
from tests.web.browser.test_console_browser import CHROMIUM, FLAGS, browser_page, shot  # noqa: F401  (the fixture)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (deploy/install-browser.sh installs Debian's)")


def _fleet():
    """Two markets' sites with coordinates, 60 devices, one of them online, and one enrollment an operator moved."""
    caiso = market("CAISO")
    pjm_site = SiteFactory(market=market("PJM"), latitude=Decimal("39.95"), longitude=Decimal("-75.16"))
    caiso_site = SiteFactory(
        market=caiso, time_zone=caiso.time_zone, latitude=Decimal("37.5"), longitude=Decimal("-121.9")
    )
    DeviceFactory.create_batch(55, site=pjm_site)
    found = DeviceFactory(site=pjm_site, serial="FIND-PJM-1")
    DeviceFactory(site=caiso_site, serial="FIND-CAISO-1")
    DeviceStatus.objects.create(device=found, online=True, last_seen_at=timezone.now())
    for n in range(3):
        SiteFactory(latitude=Decimal("40.0") + n, longitude=Decimal("-80.0") - n)
    program = ProgramFactory()
    return program, eligible_device(program)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_operator_searches_filters_pages_reads_a_history_maps_and_imports(
    make_operator, live_server, celery_worker, browser_page, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    program, device = _fleet()
    user = make_operator("operator", username="grid-operator")
    user.set_password("correct horse battery staple")
    user.save()
    moved = enrollment.apply(device=device, program=program, by=user)
    enrollment.transition(enrollment=moved, action="submit_for_review", by=user, reason="meter verified")
    page = browser_page

    page.goto(f"{live_server.url}/console/lists/devices/")
    page.get_by_label("Username").fill("grid-operator")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Devices", exact=True).wait_for()
    page.get_by_text("1–50 of 58 devices").wait_for()

    # Search, then a filter on top of it.
    page.get_by_role("searchbox", name="Search").fill("FIND")
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("1–2 of 2 devices").wait_for()
    shot(page, "list-search")
    page.get_by_label("Market").select_option("PJM")
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("1–1 of 1 devices").wait_for()
    assert page.get_by_role("cell", name="FIND-PJM-1").count() == 1
    assert page.get_by_role("cell", name="FIND-CAISO-1").count() == 0
    shot(page, "list-filter")

    # Paging through all of them.
    page.get_by_role("link", name="Clear").click()
    page.get_by_role("link", name="Next").click()
    page.get_by_text("Page 2 of 2").wait_for()
    page.get_by_text("51–58 of 58 devices").wait_for()
    shot(page, "list-page-2")

    # An enrollment's history: who moved it, when, what changed.
    page.get_by_role("navigation", name="Lists").get_by_role("link", name="Enrollments").click()
    page.get_by_role("link", name="changes").first.click()
    page.get_by_role("heading", name=f"History of enrollment {moved.pk}").wait_for()
    page.get_by_text("State: applied → utility_review").wait_for()
    assert page.get_by_role("cell", name="grid-operator").count() == 2
    shot(page, "history")

    # The map: sites clustered, from the vendored Leaflet, with no base layer (nothing fetched from outside).
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None)
    enrollment.refresh_site_states()  # beat's work every minute
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Map").click()
    mapped = Site.objects.filter(latitude__isnull=False, longitude__isnull=False).count()
    page.get_by_text(f"{mapped} sites on the map").wait_for()
    assert page.locator("#fleet-map").get_attribute("data-loaded") == str(mapped)
    assert page.locator(".leaflet-container").count() == 1
    assert page.locator(".marker-cluster, path.leaflet-interactive").count() >= 1
    assert outside == []
    shot(page, "map")

    # A fleet import: the bar fed by the worker's task reaches done, then the outcome.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Fleet import").click()
    rows = [battery(serial=f"PW-{n:04d}", meter_id=f"MB-{n:04d}", customer_ref=f"CB-{n:04d}") for n in range(40)]
    page.get_by_label("Fleet file (CSV)").set_input_files(
        files=[{"name": "fleet.csv", "mimeType": "text/csv", "buffer": csv_text(rows).encode()}]
    )
    page.get_by_role("button", name="Import the file").click()
    page.locator("progress[value='100']").wait_for(timeout=30_000)
    page.get_by_text("40 rows imported").wait_for()
    assert page.locator(".job-state").inner_text() == "Done"
    shot(page, "fleet-import-done")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_portal_is_usable_on_a_390_px_phone(live_server, browser_page, capsys):
    program = ProgramFactory()
    device = eligible_device(program, model="Home Battery A")
    call_command("create_customer_login", device.site.customer.external_ref, "phone-user")
    password = capsys.readouterr().out.split(" / ")[1].split()[0]
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/portal/")
    page.get_by_label("Username").fill("phone-user")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Your energy", exact=True).wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing runs off the side
    save = page.get_by_role("button", name="Save").first
    box = save.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390
    page.get_by_label("Keep for outages (%)").wait_for()
    shot(page, "portal-phone")
