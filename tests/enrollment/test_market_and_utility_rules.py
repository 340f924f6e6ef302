"""Order 2222's per-DER and per-utility rules as data: a market's smallest DER facility and largest aggregation
injection, a small utility's opt-in and a regulator's opt-out of retail demand response, each refused with its
reason at enrollment (or at submission) and accepted once the data allows it."""

from decimal import Decimal

import pytest

from aggregator.aggregation import services as aggregation
from aggregator.aggregation.models import ResourceMembership, VirtualResource
from aggregator.core.errors import NotEligible
from aggregator.reference.models import Utility
from enrollment import services
from tests.factories import ProgramFactory, active_device, consent_to, eligible_device, market

THERMOSTAT = {
    "device_type": "thermostat",
    "rated_kw": Decimal("3"),
    "max_setpoint_offset_f": Decimal("4"),
    "max_event_hours": Decimal("4"),
    "charge_kw": None,
    "energy_kwh": None,
    "backup_reserve_pct": None,
}


def codes(device, program) -> list[str]:
    return [p.code for p in services.check_eligibility(device=device, program=program)]


def test_a_nyiso_der_under_10_kw_is_refused_and_a_10_kw_facility_accepted(db):
    program = ProgramFactory(market=market("NYISO"))
    small = eligible_device(program, **THERMOSTAT)
    assert codes(small, program) == ["below_minimum_der_size"]
    # A second device at the site makes the facility 3 + 7 = 10 kW.
    eligible_device(program, site=small.site, **{**THERMOSTAT, "rated_kw": Decimal("7")})
    assert codes(small, program) == []
    # PJM sets no minimum.
    pjm = ProgramFactory(market=market("PJM"))
    assert codes(eligible_device(pjm, **THERMOSTAT), pjm) == []


def test_a_small_utility_needs_its_regulators_opt_in(program):
    device = eligible_device(program, **THERMOSTAT)
    utility = Utility.objects.create(name=device.site.utility, state="PA", annual_sales_mwh=Decimal("3500000"))
    assert codes(device, program) == ["small_utility_not_opted_in"]
    with pytest.raises(NotEligible):
        services.apply(device=device, program=program, by="test")
    utility.small_utility_opt_in = True
    utility.save()
    assert codes(device, program) == []
    # Above 4 million MWh a utility is not small: no opt-in needed.
    Utility.objects.filter(pk=utility.pk).update(small_utility_opt_in=False, annual_sales_mwh=Decimal("4000001"))
    assert codes(device, program) == []


def test_a_regulators_opt_out_bars_demand_response_programs_only(db):
    dr = ProgramFactory(market=market("PJM"), service="demand_response")
    energy = ProgramFactory(market=market("PJM"), service="energy")
    device = eligible_device(dr, **THERMOSTAT)
    consent_to(device.site.customer, energy)
    Utility.objects.create(name=device.site.utility, state="PA", retail_dr_opt_out=True)
    assert codes(device, dr) == ["retail_dr_opted_out"]
    assert codes(device, energy) == []


def test_an_aggregation_above_the_markets_injection_limit_is_not_submitted(db):
    program = ProgramFactory(market=market("NYISO"))
    batteries = [
        active_device(
            program,
            device_type="battery",
            rated_kw=Decimal("60"),
            charge_kw=Decimal("60"),
            energy_kwh=Decimal("240"),
            backup_reserve_pct=Decimal("0"),
        )
        for _ in range(2)
    ]
    resource = aggregation.create_resource(
        market=program.market, program=program, name="nyc", scope_kind="pricing_node", scope="N.Y.C.", by="test"
    )
    ResourceMembership.objects.bulk_create(ResourceMembership(resource=resource, device=b) for b in batteries)
    program.market.max_aggregation_injection_kw = Decimal("100")
    program.market.min_aggregation_kw = Decimal("10")
    program.market.save()
    with pytest.raises(NotEligible) as refused:
        aggregation.transition(resource=resource, action="submit", by="test")
    assert refused.value.problems[0].code == "above_maximum_injection"
    assert VirtualResource.objects.get(pk=resource.pk).state == "draft"
    program.market.max_aggregation_injection_kw = Decimal("120")
    program.market.save()
    assert aggregation.transition(resource=resource, action="submit", by="test").state == "submitted"
