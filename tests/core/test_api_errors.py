"""Errors the database raises reach API clients as 4xx/503 bodies in the one error shape, never as a 500."""

import pytest

from aggregator.reference.models import Market, Program
from enrollment import services
from enrollment.models import Customer, Device, Site
from tests.factories import CustomerFactory, DeviceFactory, ProgramFactory, SiteFactory, eligible_device


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
