"""The console's lists (search, the API's filters, sorting, paging, CSV) and an object's change history."""

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from enrollment import services as enrollment
from enrollment.models import DeviceStatus
from tests.factories import DeviceFactory, ProgramFactory, SiteFactory, eligible_device, market

LISTS = ["customers", "sites", "devices", "enrollments", "resources", "events", "settlement-runs", "ocpp-chargers"]


@pytest.fixture
def as_role(make_operator):
    def login(role):
        client = Client()
        client.force_login(make_operator(role))
        return client

    return login


def _url(name, **query):
    from urllib.parse import urlencode

    return f"{reverse('console:list', args=[name])}?{urlencode(query)}"


@pytest.mark.parametrize("name", LISTS)
def test_each_list_needs_an_operator_role_and_says_what_to_do_when_empty(name, as_role, django_user_model):
    assert Client().get(_url(name)).status_code == 302
    nobody = Client()
    nobody.force_login(django_user_model.objects.create_user(username="no-role", password="x-not-used-x"))
    assert nobody.get(_url(name)).status_code == 403
    page = as_role("analyst").get(_url(name))
    assert page.status_code == 200
    assert 'class="empty"' in page.content.decode()


def test_devices_are_searched_filtered_by_market_and_online_sorted_and_paged(as_role):
    pjm_site = SiteFactory(market=market("PJM"), pricing_node="PECO_N001")
    caiso = market("CAISO")
    caiso_site = SiteFactory(market=caiso, time_zone=caiso.time_zone, pricing_node="SP15")
    online = DeviceFactory(site=pjm_site, serial="FINDME-1", rated_kw=Decimal("7"))
    DeviceFactory(site=pjm_site, serial="OTHER-2")
    DeviceFactory(site=caiso_site, serial="FINDME-3")
    DeviceStatus.objects.create(device=online, online=True, last_seen_at=timezone.now())
    client = as_role("analyst")

    found = client.get(_url("devices", search="findme")).content.decode()
    assert "FINDME-1" in found and "FINDME-3" in found and "OTHER-2" not in found
    in_pjm = client.get(_url("devices", search="findme", market="pjm")).content.decode()
    assert "FINDME-1" in in_pjm and "FINDME-3" not in in_pjm
    only_online = client.get(_url("devices", online="true")).content.decode()
    assert "FINDME-1" in only_online and "OTHER-2" not in only_online
    assert "7.0 kW" in only_online  # a figure with its unit
    by_rating = client.get(_url("devices", ordering="-rated_kw")).content.decode()
    assert by_rating.index("FINDME-1") < by_rating.index("OTHER-2")
    assert 'aria-sort="descending"' in by_rating

    DeviceFactory.create_batch(60, site=pjm_site)
    first = client.get(_url("devices")).content.decode()
    assert "1–50 of 63 devices" in first and 'rel="next"' in first
    second = client.get(_url("devices", page=2)).content.decode()
    assert "51–63 of 63 devices" in second and 'rel="prev"' in second


def test_a_long_list_is_counted_only_as_far_as_it_is_paged(as_role, monkeypatch):
    """Past COUNT_UP_TO rows (10,000; 60 here) a list says "more than" and keeps a next page, the way to every
    page stays open, and the last page, once reached, is counted exactly."""
    from aggregator.web.console import lists

    monkeypatch.setattr(lists, "COUNT_UP_TO", 60)
    site = SiteFactory()
    DeviceFactory.create_batch(163, site=site)
    client = as_role("analyst")
    first = client.get(_url("devices", ordering="-rated_kw")).content.decode()
    assert "1–50 of more than 60 devices" in first and 'rel="next"' in first and "Page 1</span>" in first
    third = client.get(_url("devices", page=3)).content.decode()
    assert "101–150 of more than 150 devices" in third and 'rel="next"' in third
    last = client.get(_url("devices", page=4)).content.decode()
    assert "151–163 of 163 devices" in last and 'rel="next"' not in last and "Page 4 of 4" in last
    beyond = client.get(_url("devices", page=9)).content.decode()  # past the end: the last page
    assert "151–163 of 163 devices" in beyond
    few = client.get(_url("devices", search="no-such-serial")).content.decode()
    assert "Nothing matches" in few


def test_the_same_filter_means_the_same_on_the_api_and_in_the_console(as_role, api_as):
    site = SiteFactory(pricing_node="NODE_A")
    DeviceFactory(site=site, serial="ON-NODE-A")
    DeviceFactory(site=SiteFactory(pricing_node="NODE_B"), serial="ON-NODE-B")
    api = api_as("analyst").get("/api/v1/devices/", {"pricing_node": "NODE_A"}).json()
    assert [d["serial"] for d in api["results"]] == ["ON-NODE-A"]
    page = as_role("analyst").get(_url("devices", pricing_node="NODE_A")).content.decode()
    assert "ON-NODE-A" in page and "ON-NODE-B" not in page


def test_a_bad_filter_value_is_named_with_a_400(as_role):
    response = as_role("analyst").get(_url("devices", online="maybe", rated_kw_min="lots"))
    assert response.status_code == 400
    assert "rated_kw_min" in response.content.decode()


def test_a_list_downloads_every_matching_row_as_csv_with_formulas_defused(as_role):
    site = SiteFactory(market=market("PJM"))
    DeviceFactory(site=site, serial="=HYPERLINK(1)")
    DeviceFactory.create_batch(70, site=site)
    response = as_role("analyst").get(_url("devices", market="PJM", format="csv"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["Device", "Type", "Make and model", "Serial"]
    assert len(rows) == 1 + 71  # every row, not one page
    assert "'=HYPERLINK(1)" in [r[3] for r in rows]


def test_an_enrollment_history_names_who_moved_it_when_and_what_changed(as_role, make_operator):
    program = ProgramFactory()
    device = eligible_device(program)
    operator = make_operator("operator", username="ops-jane")
    item = enrollment.apply(device=device, program=program, by=operator)
    enrollment.transition(enrollment=item, action="submit_for_review", by=operator, reason="meter verified")
    page = as_role("analyst").get(reverse("console:history", args=["enrollment.enrollment", item.pk])).content.decode()
    assert "ops-jane" in page
    assert "created" in page and "changed: submit_for_review: meter verified" in page
    assert "State: applied → utility_review" in page
    assert "EST" in page or "EDT" in page  # the program's market's clock, with the zone


def test_a_consent_revoked_by_a_new_one_shows_in_its_history(as_role, make_operator):
    program = ProgramFactory()
    device = eligible_device(program)
    consent = device.site.customer.consents.get(kind="utility_data_sharing")
    enrollment.grant_consent(
        customer=device.site.customer,
        kind="utility_data_sharing",
        terms_version="2026.2",
        granted_by="Jane Doe",
        method="web",
        by=make_operator("operator", username="ops-ann"),
    )
    page = as_role("analyst").get(reverse("console:history", args=["enrollment.consent", consent.pk])).content.decode()
    assert "ops-ann" in page and "superseded" in page and "Revoked at: – →" in page


def test_a_device_edited_in_the_admin_shows_who_changed_which_field(superuser, as_role):
    device = DeviceFactory()
    admin = Client()
    admin.force_login(superuser)
    history = admin.get(reverse("admin:enrollment_device_history", args=[device.pk]))
    assert history.status_code == 200
    device.model = "Powerwall 4"
    device.save()
    page = as_role("analyst").get(reverse("console:history", args=["enrollment.device", device.pk])).content.decode()
    assert "Powerwall 3 → Powerwall 4" in page


def test_history_of_an_unknown_kind_or_object_is_404(as_role):
    client = as_role("analyst")
    assert client.get(reverse("console:history", args=["auth.user", 1])).status_code == 404
    assert client.get(reverse("console:history", args=["enrollment.device", 999999])).status_code == 404


def test_the_map_sums_sites_per_cell_zoomed_out_and_shows_each_site_zoomed_in(as_role):
    """The map shows sites as beat last counted them (enrollment_sitestate, refreshed with the fleet's count)."""
    from django.core.cache import cache

    cache.clear()
    near = [SiteFactory(latitude=Decimal("39.9500"), longitude=Decimal("-75.1600")) for _ in range(3)]
    DeviceStatus.objects.create(device=DeviceFactory(site=near[0]), online=True, last_seen_at=timezone.now())
    DeviceFactory(site=near[1])
    SiteFactory(latitude=None, longitude=None)  # not on the map
    enrollment.refresh_site_states()  # beat's work every minute
    client = as_role("analyst")
    assert client.get(reverse("console:map")).status_code == 200
    far = client.get(reverse("console:map"), {"format": "json", "zoom": "4"}).json()
    assert sorted((p[3], p[4]) for p in far["points"]) == [("empty", 1), ("offline", 1), ("online", 1)]
    only_online = client.get(reverse("console:map"), {"format": "json", "zoom": "5", "state": "online"}).json()
    assert [(p[3], p[4], p[5], p[6]) for p in only_online["points"]] == [("online", 1, 1, 1)]
    SiteFactory.create_batch(2, latitude=Decimal("39.9501"), longitude=Decimal("-75.1601"))
    cache.clear()
    assert (
        client.get(reverse("console:map"), {"format": "json", "zoom": "4", "state": "empty"}).json()["points"][0][4]
        == 1
    )
    cache.clear()
    enrollment.refresh_site_states()
    summed = client.get(reverse("console:map"), {"format": "json", "zoom": "4", "state": "empty"}).json()
    assert [p[4] for p in summed["points"]] == [3]  # three sites without devices in one cell: one point
    close = client.get(
        reverse("console:map"), {"format": "json", "zoom": "15", "bbox": "39.9,-75.2,40.0,-75.1", "state": "empty"}
    ).json()
    assert close["detail"] and [p[4] for p in close["points"]] == [1, 1, 1]
    # A site 0.3 degrees away: its own zoom-11 cell, in the same zoom-4 point, outside a box around the others.
    SiteFactory(latitude=Decimal("40.2500"), longitude=Decimal("-75.1600"))
    enrollment.refresh_site_states()
    cache.clear()
    for zoom in ("4", "11", "12"):
        points = client.get(reverse("console:map"), {"format": "json", "zoom": zoom, "state": "empty"}).json()["points"]
        assert sorted(p[4] for p in points) == ([4] if zoom == "4" else [1, 3]), zoom
        boxed = client.get(
            reverse("console:map"), {"format": "json", "zoom": zoom, "state": "empty", "bbox": "39.9,-75.2,40.0,-75.1"}
        ).json()["points"]
        assert [p[4] for p in boxed] == [3], zoom
        assert abs(boxed[0][0] - 39.95007) < 1e-4 and abs(boxed[0][1] + 75.16004) < 1e-4  # the sites' mean position


def test_ocpp_chargers_show_their_connection_last_message_and_sessions(as_role):
    from datetime import timedelta

    from dispatch.ocpp import services as ocpp
    from dispatch.ocpp.models import ChargingSession
    from tests.dispatch.ocpp.conftest import EV

    site = SiteFactory(market=market("PJM"), pricing_node="PECO_N001")
    here = DeviceFactory(site=site, serial="EVSE-ON-1", **EV)
    away = DeviceFactory(site=site, serial="EVSE-OFF-2", **EV)
    charger = ocpp.issue_password(device=here)[0].charger
    ocpp.issue_password(device=away)
    now = timezone.now()
    type(charger).objects.filter(pk=charger.pk).update(
        connected=True,
        protocol="ocpp2.0.1",
        node="ocpp@host-a",
        connected_at=now - timedelta(minutes=5),
        last_message_at=now,
        last_action="MeterValues",
        vendor="Acme",
        model="Wallbox 11",
    )
    ChargingSession.objects.create(charger=charger, device=here, transaction_id="T-1", started_at=now)
    client = as_role("analyst")

    page = client.get(_url("ocpp-chargers")).content.decode()
    assert "EVSE-ON-1" in page and "OCPP 2.0.1 on ocpp@host-a since" in page and "MeterValues at" in page
    assert "EVSE-OFF-2" in page and "never connected" in page and "Acme Wallbox 11" in page
    connected = client.get(_url("ocpp-chargers", connected="true")).content.decode()
    assert "EVSE-ON-1" in connected and "EVSE-OFF-2" not in connected
    exported = list(
        csv.reader(io.StringIO(b"".join(client.get(_url("ocpp-chargers", format="csv")).streaming_content).decode()))
    )
    sessions = exported[0].index("Sessions")
    assert {row[0]: row[sessions] for row in exported[1:]} == {"EVSE-OFF-2": "0", "EVSE-ON-1": "1"}
