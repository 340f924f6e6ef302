"""The Django admin for aggregation: virtual resources and the builder's proposals."""

from decimal import Decimal

import pytest
from django.urls import reverse

from aggregator.aggregation import services
from aggregator.aggregation.models import AggregationProposal, ResourceMembership, VirtualResource
from enrollment import services as enrollment_services
from tests.factories import ProgramFactory, SiteFactory, eligible_device, market

pytestmark = pytest.mark.django_db

NODE = "PECO_N001"


def generator(program, kw, *, pricing_node=NODE):
    """An active generator in the program (nameplate capability at any hour)."""
    site = SiteFactory(
        market=program.market, pricing_node=pricing_node, zone="PECO", time_zone=program.market.time_zone
    )
    device = eligible_device(
        program,
        site=site,
        device_type="generator",
        manufacturer="Generac",
        model="Protector",
        rated_kw=Decimal(str(kw)),
        min_run_minutes=30,
        fuel="natural_gas",
        charge_kw=None,
        energy_kwh=None,
        backup_reserve_pct=None,
    )
    enrollment = enrollment_services.apply(device=device, program=program, by="test")
    for action in ("submit_for_review", "approve", "activate"):
        enrollment = enrollment_services.transition(enrollment=enrollment, action=action, by="test")
    return device


@pytest.fixture
def resource(program, superuser):
    """A submitted 150 kW resource (so its member changes are modifications) with one more member added."""
    created = services.create_resource(
        market=program.market, program=program, name="PECO node 1", scope_kind="pricing_node", scope=NODE, by=superuser
    )
    for kw in (60, 60):
        services.add_member(resource=created, device=generator(program, kw), by=superuser)
    services.transition(resource=created, action="submit", by=superuser)
    services.add_member(resource=created, device=generator(program, 30), by=superuser, reason="late joiner")
    return created


@pytest.fixture
def proposal(program, superuser):
    for _ in range(3):
        generator(program, 50, pricing_node="NODE_A")
    return services.build_proposal(market=program.market, program=program, by=superuser, scope_kind="pricing_node")


def url(model: str, view: str, *args) -> str:
    return reverse(f"admin:aggregator_{model}_{view}", args=args)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_virtual_resource_changelist_loads(browser, resource):
    response = browser.get(url("virtualresource", "changelist"))

    assert response.status_code == 200
    assert "PECO node 1" in response.text


def test_the_virtual_resource_change_page_shows_capability_now_and_history(browser, resource):
    response = browser.get(url("virtualresource", "change", resource.pk))

    assert response.status_code == 200
    assert "Capability now" in response.text
    assert "150.0" in response.text
    assert "late joiner" in response.text  # the modification inline


def add_form(program, **overrides):
    data = {
        "name": "PECO node 2",
        "market": program.market_id,
        "program": program.pk,
        "participation_model": "capacity",
        "scope_kind": "pricing_node",
        "scope": NODE,
        "max_kw": "",
    }
    for prefix in ("memberships", "modifications", "transitions"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    return {**data, **overrides}


def test_a_resource_added_in_the_admin_goes_through_the_service(browser, program):
    assert browser.get(url("virtualresource", "add")).status_code == 200

    response = browser.post(url("virtualresource", "add"), add_form(program))

    assert response.status_code == 302
    created = VirtualResource.objects.get()
    assert (created.name, created.state, created.scope) == ("PECO node 2", "draft", NODE)
    assert list(created.transitions.values_list("action", "actor_label")) == [("create", "root")]


def test_a_resource_the_market_rules_refuse_is_a_form_error_in_the_admin(browser):
    nyiso = ProgramFactory(market=market("NYISO"))

    response = browser.post(url("virtualresource", "add"), add_form(nyiso, scope_kind="zone", scope="N.Y.C."))

    assert response.status_code == 200
    assert "does not allow aggregations over more than one pricing node" in response.text
    assert not VirtualResource.objects.exists()


def test_the_proposal_changelist_and_change_page_load(browser, proposal):
    listed = browser.get(url("aggregationproposal", "changelist"))
    detail = browser.get(url("aggregationproposal", "change", proposal.pk))

    assert listed.status_code == 200
    assert detail.status_code == 200
    assert f"{proposal.program.code}-NODE_A-1: 3 devices, 150.0 kW" in detail.text


def test_the_accept_action_creates_the_proposed_resources(browser, proposal):
    response = browser.post(
        url("aggregationproposal", "changelist"), {"action": "accept", "_selected_action": [proposal.pk]}, follow=True
    )

    assert response.status_code == 200
    assert any("created 1 resource(s)" in m for m in messages_of(response))
    created = VirtualResource.objects.get()
    assert (created.name, created.state, created.scope) == (f"{proposal.program.code}-NODE_A-1", "draft", "NODE_A")
    assert ResourceMembership.objects.filter(resource=created, left_at__isnull=True).count() == 3
    proposal.refresh_from_db()
    assert proposal.state == AggregationProposal.State.ACCEPTED


def test_accepting_an_accepted_proposal_in_the_admin_reports_an_error(browser, proposal, superuser):
    services.accept_proposal(proposal=proposal, by=superuser)

    response = browser.post(
        url("aggregationproposal", "changelist"), {"action": "accept", "_selected_action": [proposal.pk]}, follow=True
    )

    assert response.status_code == 200
    assert any("already accepted" in m for m in messages_of(response))
    assert VirtualResource.objects.count() == 1
