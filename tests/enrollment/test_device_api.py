from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from enrollment.models import DeviceCredential
from tests.conftest import operator_token
from tests.factories import DeviceFactory, GatewayFactory

pytestmark = pytest.mark.django_db

DEVICES = "/api/device/v1/devices/"


def client_with_token(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def listed_ids(response):
    return [device["id"] for device in response.json()["results"]]


def issue_via_api(operator, device, **data):
    response = operator.post(f"/api/v1/devices/{device.pk}/credentials/", data, format="json")
    assert response.status_code == 201
    return response.json()


def test_a_device_token_lists_exactly_its_own_device(device_client):
    device = DeviceFactory()
    DeviceFactory(site=device.site)
    client, _ = device_client(device=device)

    response = client.get(DEVICES)

    assert response.status_code == 200
    assert listed_ids(response) == [device.pk]


def test_a_device_reads_its_own_record_with_its_site(device_client):
    device = DeviceFactory()
    client, _ = device_client(device=device)

    response = client.get(f"{DEVICES}{device.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["serial"], body["energy_kwh"]) == (device.pk, device.serial, "13.500")
    assert body["site"] == {"id": device.site_id, "time_zone": "America/New_York", "market": "PJM"}


def test_another_devices_id_is_404_exactly_like_a_missing_id(device_client):
    device = DeviceFactory()
    neighbour = DeviceFactory(site=device.site)
    client, _ = device_client(device=device)

    other = client.get(f"{DEVICES}{neighbour.pk}/")
    missing = client.get(f"{DEVICES}{neighbour.pk + 1000}/")

    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()


def test_a_gateway_token_lists_exactly_the_devices_behind_its_gateway(device_client):
    gateway = GatewayFactory()
    behind = [DeviceFactory(site=gateway.site, gateway=gateway) for _ in range(2)]
    not_behind = DeviceFactory(site=gateway.site)
    DeviceFactory(gateway=GatewayFactory())
    client, _ = device_client(gateway=gateway)

    assert listed_ids(client.get(DEVICES)) == [device.pk for device in behind]
    assert client.get(f"{DEVICES}{behind[1].pk}/").status_code == 200
    assert client.get(f"{DEVICES}{not_behind.pk}/").status_code == 404


def test_an_operator_token_on_the_device_api_is_401_wrong_token_kind(make_operator):
    DeviceFactory()

    response = client_with_token(operator_token(make_operator("admin"))).get(DEVICES)

    assert response.status_code == 401
    assert response.json()["type"] == "wrong_token_kind"


def test_the_device_api_without_a_token_is_401():
    response = APIClient().get(DEVICES)

    assert response.status_code == 401
    assert response.json()["type"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_well_formed_but_unknown_device_token_is_401(device_client):
    client, credential = device_client(device=DeviceFactory())
    credential.delete()

    response = client.get(DEVICES)

    assert response.status_code == 401
    assert response.json()["type"] == "invalid_token"


@pytest.mark.parametrize("ended_by", ["revoked_at", "expires_at"])
def test_a_revoked_or_expired_device_token_is_401(device_client, ended_by):
    client, credential = device_client(device=DeviceFactory())
    DeviceCredential.objects.filter(pk=credential.pk).update(**{ended_by: timezone.now() - timedelta(seconds=1)})

    response = client.get(DEVICES)

    assert response.status_code == 401
    assert response.json()["type"] == "token_revoked"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_device_api_is_read_only(device_client, method):
    device = DeviceFactory()
    client, _ = device_client(device=device)
    url = DEVICES if method == "post" else f"{DEVICES}{device.pk}/"

    response = getattr(client, method)(url, {"rated_kw": "50"}, format="json")

    assert response.status_code == 405
    device.refresh_from_db()
    assert device.rated_kw == 5


def test_using_a_device_token_records_when_it_was_last_used(device_client):
    client, credential = device_client(device=DeviceFactory())

    client.get(DEVICES)

    credential.refresh_from_db()
    assert credential.last_used_at is not None


def test_an_issued_credential_shows_its_token_once_and_stores_only_a_hash(api_as):
    operator = api_as("operator")
    device = DeviceFactory()

    issued = issue_via_api(operator, device, label="field unit")

    token = issued["token"]
    row = DeviceCredential.objects.filter(pk=issued["id"]).values().get()
    assert row["device_id"] == device.pk
    assert row["digest"] != token
    assert not [name for name, value in row.items() if value is not None and token in str(value)]
    shown_again = operator.get(f"/api/v1/credentials/{issued['id']}/")
    assert shown_again.status_code == 200
    assert "token" not in shown_again.json()
    assert token not in shown_again.content.decode()


def test_an_issued_token_works_on_the_device_api(api_as):
    device = DeviceFactory()
    token = issue_via_api(api_as("operator"), device)["token"]

    assert listed_ids(client_with_token(token).get(DEVICES)) == [device.pk]


def test_a_gateway_credential_issued_via_the_api_sees_the_gateways_devices(api_as):
    gateway = GatewayFactory()
    device = DeviceFactory(site=gateway.site, gateway=gateway)

    response = api_as("operator").post(f"/api/v1/gateways/{gateway.pk}/credentials/", {}, format="json")

    assert response.status_code == 201
    assert response.json()["gateway"] == gateway.pk
    assert listed_ids(client_with_token(response.json()["token"]).get(DEVICES)) == [device.pk]


def test_an_analyst_cannot_issue_a_credential(api_as):
    device = DeviceFactory()

    response = api_as("analyst").post(f"/api/v1/devices/{device.pk}/credentials/", {}, format="json")

    assert response.status_code == 403
    assert not DeviceCredential.objects.exists()


def test_rotating_a_credential_replaces_the_token_at_once(api_as):
    operator = api_as("operator")
    old = issue_via_api(operator, DeviceFactory())

    response = operator.post(f"/api/v1/credentials/{old['id']}/rotate/", {}, format="json")

    assert response.status_code == 201
    new_token = response.json()["token"]
    assert new_token != old["token"]
    assert client_with_token(old["token"]).get(DEVICES).status_code == 401
    assert client_with_token(new_token).get(DEVICES).status_code == 200


def test_rotating_with_a_grace_period_keeps_the_old_token_until_it_ends(api_as):
    operator = api_as("operator")
    old = issue_via_api(operator, DeviceFactory())

    response = operator.post(f"/api/v1/credentials/{old['id']}/rotate/", {"grace_minutes": 30}, format="json")
    new_token = response.json()["token"]

    assert client_with_token(old["token"]).get(DEVICES).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(minutes=31), tick=False):
        assert client_with_token(old["token"]).get(DEVICES).status_code == 401
        assert client_with_token(new_token).get(DEVICES).status_code == 200


def test_a_revoked_credential_cannot_be_rotated(api_as):
    operator = api_as("operator")
    old = issue_via_api(operator, DeviceFactory())
    operator.post(f"/api/v1/credentials/{old['id']}/revoke/")

    response = operator.post(f"/api/v1/credentials/{old['id']}/rotate/", {}, format="json")

    assert response.status_code == 409
    assert response.json()["type"] == "credential_revoked"
    assert DeviceCredential.objects.count() == 1


def test_revoking_a_credential_locks_its_token_out(api_as):
    operator = api_as("operator")
    issued = issue_via_api(operator, DeviceFactory())

    response = operator.post(f"/api/v1/credentials/{issued['id']}/revoke/")

    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert response.json()["usable"] is False
    assert client_with_token(issued["token"]).get(DEVICES).status_code == 401
