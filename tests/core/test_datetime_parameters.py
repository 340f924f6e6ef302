"""Dates and times in query parameters: an offset no clock has is named as that parameter, never a 500.

Real offsets run from -12:00 to +14:00; PostgreSQL stores up to 15:59, so ±16:00 and
beyond are refused where the parameter is read.
"""

import pytest

from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

FAR = "2026-07-15T10:00:00+22:14"


def fields(response) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in response.json()["errors"]]


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/customers/", "created_at__gte"),  # a declared FilterSet
        ("/api/v1/settlement-runs/", "created_at__lt"),  # filterset_fields
        ("/api/v1/enrollments/", "review_deadline__gte"),
    ],
)
def test_a_list_filter_with_an_offset_beyond_16_hours_is_400_naming_it(api_as, path, parameter):
    response = api_as("analyst").get(path, {parameter: FAR})

    assert response.status_code == 400
    assert fields(response) == [(parameter, "invalid_offset")]


@pytest.mark.parametrize("offset", ["+14:00", "-12:00", "+05:45", "Z"])
def test_a_list_filter_with_a_real_offset_filters(api_as, offset):
    response = api_as("analyst").get("/api/v1/customers/", {"created_at__gte": "2026-07-15T10:00:00" + offset})

    assert response.status_code == 200


@pytest.mark.parametrize(("parameter", "value"), [("end", "2026-07-15T10:00:00+20:00"), ("start", FAR)])
def test_the_device_readings_window_with_an_offset_beyond_16_hours_is_400_naming_it(device_client, parameter, value):
    client = device_client(device=DeviceFactory())[0]

    response = client.get("/api/device/v1/readings", {parameter: value})

    assert response.status_code == 400
    assert fields(response) == [(parameter, "invalid_offset")]


def test_the_operator_readings_window_with_an_offset_beyond_16_hours_is_400_naming_it(api_as):
    device = DeviceFactory()

    response = api_as("analyst").get(f"/api/v1/devices/{device.pk}/readings/", {"end": "2026-07-15T10:00:00-16:00"})

    assert response.status_code == 400
    assert fields(response) == [("end", "invalid_offset")]


def test_a_body_date_and_time_with_an_offset_beyond_16_hours_is_400_naming_it(device_client):
    client = device_client(device=DeviceFactory())[0]

    response = client.post("/api/device/v1/opt-outs", {"until": "2099-07-15T10:00:00+20:00"}, format="json")

    assert response.status_code == 400
    assert fields(response) == [("until", "invalid_offset")]


def test_a_device_status_time_with_an_offset_beyond_16_hours_is_400_naming_it(device_client):
    client = device_client(device=DeviceFactory())[0]
    response = client.post("/api/device/v1/status", {"at": FAR, "online": True}, format="json")
    assert response.status_code == 400
    assert ("at", "invalid_offset") in fields(response)


def test_a_credentials_expiry_with_an_offset_beyond_16_hours_is_400_naming_it(api_as):
    device = DeviceFactory()
    response = api_as("admin").post(f"/api/v1/devices/{device.pk}/credentials/", {"expires_at": FAR}, format="json")
    assert response.status_code == 400
    assert fields(response) == [("expires_at", "invalid_offset")]
