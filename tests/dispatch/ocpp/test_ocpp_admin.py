"""The admin's OCPP chargers: a password issued once (only its hash kept), the list with connections, revocation."""

import re

import pytest

from dispatch.ocpp import services as ocpp
from dispatch.ocpp.models import Charger, ChargerCredential, ChargingSession
from tests.dispatch.ocpp.conftest import EV
from tests.factories import active_device

pytestmark = pytest.mark.django_db


def test_adding_a_charger_in_the_admin_shows_its_password_once_and_keeps_only_its_hash(browser, program):
    device = active_device(program, **EV)
    answer = browser.post("/admin/ocpp/charger/add/", {"device": device.pk}, follow=True)
    assert answer.status_code == 200
    [password] = re.findall(r"store it now\): ([0-9a-f]{32})", answer.content.decode())
    charger = Charger.objects.get(device=device)
    assert charger.identity == device.serial
    assert ocpp.authenticate(identity=device.serial, password=password) is not None
    assert password not in str(list(ChargerCredential.objects.values()))


def test_the_charger_list_and_page_show_its_connection_and_sessions(browser, program):
    device = active_device(program, **EV)
    credential, _ = ocpp.issue_password(device=device, by="test")
    charger = credential.charger
    Charger.objects.filter(pk=charger.pk).update(
        connected=True, protocol="ocpp1.6", node="node-a", last_action="Heartbeat"
    )
    ChargingSession.objects.create(
        charger=charger, device=device, transaction_id="7", started_at="2026-07-15T18:00:00Z", energy_kwh=12.5
    )
    listing = browser.get("/admin/ocpp/charger/").content.decode()
    assert device.serial in listing and "node-a" in listing and "Heartbeat" in listing
    page = browser.get(f"/admin/ocpp/charger/{charger.pk}/change/").content.decode()
    assert "12.500" in page and credential.key_id in page


def test_revoking_from_the_admin_ends_the_password(browser, program):
    device = active_device(program, **EV)
    credential, password = ocpp.issue_password(device=device, by="test")
    browser.post(
        "/admin/ocpp/charger/",
        {"action": "revoke_passwords", "_selected_action": [credential.charger_id]},
        follow=True,
    )
    assert ocpp.authenticate(identity=device.serial, password=password) is None


def test_only_ev_chargers_get_an_ocpp_password(program):
    from tests.factories import GENERATOR

    generator = active_device(program, **GENERATOR)
    with pytest.raises(ocpp.ChargerRefused) as refused:
        ocpp.issue_password(device=generator, by="test")
    assert refused.value.problems[0].code == "not_a_charger"


def test_the_management_command_issues_a_password_once_and_revokes_them(program):
    import io

    from django.core.management import call_command

    device = active_device(program, **EV)
    out = io.StringIO()
    call_command("ocpp_password", str(device.pk), stdout=out)
    lines = dict(line.split("=", 1) for line in out.getvalue().split())
    assert lines["identity"] == device.serial
    assert ocpp.authenticate(identity=device.serial, password=lines["password"]) is not None
    call_command("ocpp_password", device.serial, "--revoke", stdout=io.StringIO())
    assert ocpp.authenticate(identity=device.serial, password=lines["password"]) is None
