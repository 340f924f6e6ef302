"""factory_boy factories for the domain. Markets come from the seed migration."""

import itertools
from decimal import Decimal

import factory
from django.utils import timezone

from aggregator.reference.models import Market, Program
from enrollment.models import Consent, Customer, Device, Gateway, RetailProgramParticipation, Site

_serials = itertools.count(1)


def market(code: str = "PJM") -> Market:
    return Market.objects.get(code=code)


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program

    market = factory.LazyFunction(lambda: market("PJM"))
    code = factory.Sequence(lambda n: f"program-{n}")
    name = factory.LazyAttribute(lambda o: o.code.replace("-", " ").title())
    service = Program.Service.CAPACITY
    terms_version = "2026.1"
    excluded_retail_programs = factory.LazyFunction(lambda: ["utility_dr"])


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_ref = factory.Sequence(lambda n: f"C-{n:06d}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    kind = Customer.Kind.RESIDENTIAL
    email = factory.Sequence(lambda n: f"customer{n}@example.com")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    customer = factory.SubFactory(CustomerFactory)
    utility = "PECO"
    meter_id = factory.Sequence(lambda n: f"M{n:09d}")
    market = factory.LazyFunction(lambda: market("PJM"))
    pricing_node = "PECO_N001"
    zone = "PECO"
    time_zone = factory.LazyAttribute(lambda o: o.market.time_zone)


class GatewayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gateway

    site = factory.SubFactory(SiteFactory)
    manufacturer = "Acme"
    serial = factory.LazyFunction(lambda: f"GW{next(_serials):08d}")


class DeviceFactory(factory.django.DjangoModelFactory):
    """A home battery by default."""

    class Meta:
        model = Device

    site = factory.SubFactory(SiteFactory)
    device_type = "battery"
    manufacturer = "Tesla"
    model = "Powerwall 3"
    serial = factory.LazyFunction(lambda: f"SN{next(_serials):08d}")
    rated_kw = Decimal("5")
    charge_kw = Decimal("5")
    energy_kwh = Decimal("13.5")
    backup_reserve_pct = Decimal("20")


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consent

    customer = factory.SubFactory(CustomerFactory)
    kind = Consent.Kind.UTILITY_DATA_SHARING
    terms_version = "2026.1"
    granted_at = factory.LazyFunction(timezone.now)
    granted_by = "Jane Doe"
    method = Consent.Method.WEB


class RetailProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RetailProgramParticipation

    site = factory.SubFactory(SiteFactory)
    kind = RetailProgramParticipation.Kind.UTILITY_DR


def consent_to(customer: Customer, program: Program) -> None:
    """Give a customer both consents a program needs."""
    ConsentFactory(
        customer=customer, kind=Consent.Kind.PROGRAM_TERMS, program=program, terms_version=program.terms_version
    )
    ConsentFactory(customer=customer, kind=Consent.Kind.UTILITY_DATA_SHARING)


def eligible_device(program: Program, **device_kwargs) -> Device:
    """A device at a site in the program's market whose customer has consented."""
    site = device_kwargs.pop("site", None) or SiteFactory(market=program.market, time_zone=program.market.time_zone)
    consent_to(site.customer, program)
    return DeviceFactory(site=site, **device_kwargs)


def active_device(program: Program, **device_kwargs) -> Device:
    """An eligible device whose enrollment in the program is active (review approved)."""
    from enrollment import services

    device = eligible_device(program, **device_kwargs)
    enrollment = services.apply(device=device, program=program, by="factory")
    for action in ("submit_for_review", "approve", "activate"):
        enrollment = services.transition(enrollment=enrollment, action=action, by="factory")
    return device


GENERATOR = {
    "device_type": "generator",
    "rated_kw": Decimal("50"),
    "min_run_minutes": 30,
    "fuel": "natural_gas",
    "charge_kw": None,
    "energy_kwh": None,
    "backup_reserve_pct": None,
}
