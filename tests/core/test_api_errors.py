"""Errors the database raises reach API clients as 4xx/503 bodies in the one error shape, never as a 500."""

import pytest
from django.db import transaction
from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIClient

from aggregator.reference.models import Market, Program
from enrollment import services
from enrollment.models import Customer, Device, Site
from tests.factories import CustomerFactory, DeviceFactory, ProgramFactory, SiteFactory, eligible_device, market


def messages_of(response) -> list[str]:
    return [error["message"] for error in response.json()["errors"]]


@pytest.mark.django_db
def test_deleting_a_customer_with_sites_is_refused_naming_them(api_as):
    customer = CustomerFactory()
    SiteFactory.create_batch(2, customer=customer)

    response = api_as("admin").delete(f"/api/v1/customers/{customer.pk}/")

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["type"] == "protected" and body["status"] == 409
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(None, "protected")]
    assert messages_of(response) == ["2 sites refer to this customer."]
    assert Customer.objects.filter(pk=customer.pk).exists() and Site.objects.filter(customer=customer).count() == 2


@pytest.mark.django_db
def test_deleting_a_site_with_devices_is_refused_and_nothing_is_deleted(api_as):
    site = SiteFactory()
    DeviceFactory(site=site)

    response = api_as("admin").delete(f"/api/v1/sites/{site.pk}/")

    assert response.status_code == 409, response.content
    assert messages_of(response) == ["1 device refers to this site."]
    assert Site.objects.filter(pk=site.pk).exists() and Device.objects.filter(site=site).count() == 1


@pytest.mark.django_db
def test_deleting_an_enrolled_device_is_refused(api_as, program):
    device = eligible_device(program)
    services.apply(device=device, program=program, by="test")

    response = api_as("admin").delete(f"/api/v1/devices/{device.pk}/")

    assert response.status_code == 409, response.content
    assert messages_of(response) == ["1 enrollment refers to this device."]
    assert Device.objects.filter(pk=device.pk).exists()


@pytest.mark.django_db
def test_deleting_a_program_with_enrollments_and_consents_names_each_kind(api_as, program):
    for _ in range(2):
        services.apply(device=eligible_device(program), program=program, by="test")

    response = api_as("admin").delete(f"/api/v1/programs/{program.pk}/")

    assert response.status_code == 409, response.content
    assert sorted(messages_of(response)) == [
        "2 consents refer to this program.",
        "2 enrollments refer to this program.",
    ]
    assert Program.objects.filter(pk=program.pk).exists()


@pytest.mark.django_db
def test_deleting_a_market_with_programs_is_refused(api_as):
    market = ProgramFactory.create_batch(2)[0].market

    response = api_as("admin").delete(f"/api/v1/markets/{market.pk}/")

    assert response.status_code == 409, response.content
    assert messages_of(response) == ["2 programs refer to this market."]
    assert Market.objects.filter(pk=market.pk).exists()


def errors_of(response) -> list[tuple[str | None, str]]:
    return [(error["field"], error["code"]) for error in response.json()["errors"]]


@pytest.mark.django_db
def test_a_program_with_zero_event_hours_is_refused_naming_the_field(api_as):
    payload = {
        "market": market().pk,
        "code": "zero-hours",
        "name": "Zero hours",
        "service": "capacity",
        "terms_version": "1",
    }

    response = api_as("admin").post("/api/v1/programs/", {**payload, "typical_event_hours": "0"})

    assert response.status_code == 400, response.content
    assert response.json()["type"] == "validation_error"
    assert errors_of(response) == [("typical_event_hours", "out_of_range")]
    assert messages_of(response) == ["Must be greater than 0 and at most 24."]
    assert not Program.objects.filter(code="zero-hours").exists()


@pytest.mark.django_db
def test_a_negative_market_minimum_is_refused_naming_the_field(api_as):
    pjm = market()

    response = api_as("admin").patch(f"/api/v1/markets/{pjm.pk}/", {"min_aggregation_kw": "-60"})

    assert response.status_code == 400, response.content
    assert errors_of(response) == [("min_aggregation_kw", "out_of_range")]
    assert Market.objects.get(pk=pjm.pk).min_aggregation_kw == pjm.min_aggregation_kw


@pytest.mark.django_db
@pytest.mark.parametrize("interval", [0, 3601])
def test_a_device_telemetry_interval_outside_its_range_is_refused_naming_the_field(api_as, interval):
    device = DeviceFactory()

    response = api_as("operator").patch(f"/api/v1/devices/{device.pk}/", {"telemetry_interval_seconds": interval})

    assert response.status_code == 400, response.content
    assert errors_of(response) == [("telemetry_interval_seconds", "out_of_range")]
    assert messages_of(response) == ["Must be at least 1 and at most 3600."]
    device.refresh_from_db()
    assert device.telemetry_interval_seconds == 300


@pytest.mark.django_db
def test_a_value_inside_the_constraint_is_still_accepted(api_as):
    device = DeviceFactory()

    response = api_as("operator").patch(f"/api/v1/devices/{device.pk}/", {"telemetry_interval_seconds": 60})

    assert response.status_code == 200, response.content
    device.refresh_from_db()
    assert device.telemetry_interval_seconds == 60


@api_view(["POST"])
@permission_classes([AllowAny])
def _write_computed_interval(request, pk):
    """A write whose value no serializer saw, as a service's computed value would be."""
    with transaction.atomic():
        Device.objects.filter(pk=pk).update(telemetry_interval_seconds=request.data["seconds"])
    return Response(status=204)


urlpatterns = [path("computed-interval/<int:pk>/", _write_computed_interval)]


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_a_check_constraint_the_database_enforces_is_a_400_naming_the_field():
    device = DeviceFactory()

    response = APIClient().post(f"/computed-interval/{device.pk}/", {"seconds": 0})

    assert response.status_code == 400, response.content
    assert errors_of(response) == [("telemetry_interval_seconds", "out_of_range")]
    device.refresh_from_db()
    assert device.telemetry_interval_seconds == 300


@pytest.mark.django_db
def test_a_site_latitude_beyond_the_pole_is_refused_naming_the_field(api_as):
    site = SiteFactory()

    response = api_as("operator").patch(f"/api/v1/sites/{site.pk}/", {"latitude": "95", "longitude": "-75"})

    assert response.status_code == 400, response.content
    assert errors_of(response) == [("latitude", "out_of_range")]
    assert messages_of(response) == ["Must be at least -90 and at most 90."]


@api_view(["POST"])
@permission_classes([AllowAny])
def _create_customer_directly(request):
    """A create that no serializer validated, as a service's would be."""
    with transaction.atomic():
        Customer.objects.create(external_ref=request.data["external_ref"], name="Direct")
    return Response(status=201)


@api_view(["POST"])
@permission_classes([AllowAny])
def _create_device_directly(request, pk):
    device = Device.objects.get(pk=pk)
    with transaction.atomic():
        Device.objects.create(
            site=device.site, device_type="battery", manufacturer=device.manufacturer.upper(), serial=device.serial,
            rated_kw=5, charge_kw=5, energy_kwh=13.5, backup_reserve_pct=20,
        )  # fmt: skip
    return Response(status=201)


urlpatterns += [
    path("direct-customer/", _create_customer_directly),
    path("direct-device/<int:pk>/", _create_device_directly),
]


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_a_unique_column_the_database_enforces_is_a_400_naming_the_field():
    CustomerFactory(external_ref="C-1")

    response = APIClient().post("/direct-customer/", {"external_ref": "C-1"})

    assert response.status_code == 400, response.content
    assert errors_of(response) == [("external_ref", "unique")]
    assert messages_of(response) == ["Customer with this External ref already exists."]
    assert Customer.objects.filter(external_ref="C-1").count() == 1


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_a_unique_constraint_on_an_expression_is_a_400_naming_its_last_field():
    device = DeviceFactory()

    response = APIClient().post(f"/direct-device/{device.pk}/")

    assert response.status_code == 400, response.content
    assert errors_of(response) == [("serial", "unique")]
    assert Device.objects.filter(serial=device.serial).count() == 1


@pytest.mark.django_db
def test_a_multipart_body_with_too_many_fields_is_a_json_400(api_as, settings):
    fields = {f"field{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}

    response = api_as("operator").post("/api/v1/customers/", fields, format="multipart")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert (body["type"], body["status"]) == ("malformed_request", 400)
    assert "fields" in body["title"]


@pytest.mark.django_db
def test_a_multipart_body_over_the_size_limit_is_a_json_413(api_as, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = api_as("operator").post("/api/v1/customers/", {"name": "x" * 2000}, format="multipart")

    assert response.status_code == 413, response.content
    body = response.json()
    assert (body["type"], body["status"], body["errors"]) == ("too_large", 413, [])
