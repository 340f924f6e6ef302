import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone as django_timezone

from aggregator.aggregation import services
from aggregator.aggregation.models import ResourceMembership, ResourceModification
from aggregator.aggregation.selectors import members_on
from aggregator.core.errors import NotEligible
from enrollment.models import DeviceStatus
from tests.factories import GENERATOR, ProgramFactory, SiteFactory, active_device, eligible_device, market

NEW_YORK = ZoneInfo("America/New_York")


def resource(program, *, scope="PECO_N001", scope_kind="pricing_node", name=None):
    return services.create_resource(
        market=program.market,
        program=program,
        name=name or f"vr-{scope}-{scope_kind}",
        scope_kind=scope_kind,
        scope=scope,
        by="tester",
    )


def at_node(program, node, zone="PECO", **kwargs):
    site = SiteFactory(market=program.market, pricing_node=node, zone=zone)
    return active_device(program, site=site, **{**GENERATOR, **kwargs})


def test_device_from_another_pricing_node_is_refused_on_a_single_node_resource(program):
    with pytest.raises(NotEligible) as error:
        services.add_member(resource=resource(program), device=at_node(program, "PECO_N002"), by="tester")
    assert error.value.code == "outside_scope" and "PECO_N002" in str(error.value)


def test_device_from_another_node_joins_a_zone_resource_where_the_market_allows_it(program):
    assert program.market.multi_node_allowed  # PJM
    zone_resource = resource(program, scope="PECO", scope_kind="zone")
    services.add_member(resource=zone_resource, device=at_node(program, "PECO_N001"), by="tester")
    services.add_member(resource=zone_resource, device=at_node(program, "PECO_N002"), by="tester")
    assert zone_resource.memberships.filter(left_at__isnull=True).count() == 2


def test_zone_resources_are_refused_where_the_market_needs_one_node(db):
    nyiso = ProgramFactory(market=market("NYISO"))
    with pytest.raises(Exception) as error:
        resource(nyiso, scope="NYC", scope_kind="zone")
    assert error.value.code == "multi_node_not_allowed"


def test_device_whose_utility_review_is_pending_cannot_join(program):
    from enrollment import services as enrollment

    device = eligible_device(program, site=SiteFactory(market=program.market, pricing_node="PECO_N001"), **GENERATOR)
    enrollment.transition(
        enrollment=enrollment.apply(device=device, program=program, by="t"), action="submit_for_review", by="t"
    )
    with pytest.raises(NotEligible) as error:
        services.add_member(resource=resource(program), device=device, by="tester")
    assert error.value.code == "enrollment_not_active" and "utility review is pending" in str(error.value)
    assert not ResourceMembership.objects.exists()


def test_the_same_device_cannot_be_in_two_resources(program):
    device = at_node(program, "PECO_N001")
    services.add_member(resource=resource(program, name="a"), device=device, by="tester")
    with pytest.raises(NotEligible) as error:
        services.add_member(resource=resource(program, name="b"), device=device, by="tester")
    assert error.value.code == "already_in_resource" and "a" in str(error.value)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_joins_of_one_device_leave_it_in_exactly_one_resource():
    program = ProgramFactory()
    device = at_node(program, "PECO_N001")
    targets = [resource(program, name="first"), resource(program, name="second")]
    barrier = threading.Barrier(2)
    outcomes = []

    def join(target):
        try:
            barrier.wait()
            services.add_member(resource=target, device=device, by="tester")
            outcomes.append("joined")
        except NotEligible as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=join, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_in_resource", "joined"]
    assert ResourceMembership.objects.filter(device=device, left_at__isnull=True).count() == 1


def test_the_database_refuses_overlapping_memberships_even_around_the_services(program):
    device = at_node(program, "PECO_N001")
    a, b = resource(program, name="a"), resource(program, name="b")
    ResourceMembership.objects.create(
        resource=a,
        device=device,
        joined_at=datetime(2026, 1, 1, tzinfo=NEW_YORK),
        left_at=datetime(2026, 3, 1, tzinfo=NEW_YORK),
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        ResourceMembership.objects.create(resource=b, device=device, joined_at=datetime(2026, 2, 1, tzinfo=NEW_YORK))
    ResourceMembership.objects.create(resource=b, device=device, joined_at=datetime(2026, 3, 1, tzinfo=NEW_YORK))


def test_membership_history_answers_who_was_in_the_resource_on_a_day(program):
    device = at_node(program, "PECO_N001")
    a, b = resource(program, name="a"), resource(program, name="b")
    # 03:00 on the spring-forward morning. Instant arithmetic is done in UTC: in New York
    # wall-clock terms "one second earlier" would be 02:59:59, which that morning never had.
    moved = datetime(2026, 3, 8, 3, 0, tzinfo=NEW_YORK).astimezone(UTC)
    services.add_member(resource=a, device=device, by="tester", at=datetime(2026, 1, 5, tzinfo=NEW_YORK))
    services.remove_member(resource=a, device=device, by="tester", at=moved)
    services.add_member(resource=b, device=device, by="tester", at=moved)
    assert members_on(resource=a, at=moved - timedelta(seconds=1)).count() == 1
    assert members_on(resource=a, at=moved).count() == 0
    assert members_on(resource=b, at=moved).count() == 1
    assert ResourceMembership.objects.filter(device=device).count() == 2


def test_a_resource_under_the_minimum_cannot_be_submitted_and_the_error_says_by_how_much(program):
    target = resource(program)
    for _ in range(3):
        services.add_member(resource=target, device=at_node(program, "PECO_N001", rated_kw=Decimal("25")), by="tester")
    with pytest.raises(NotEligible) as error:
        services.transition(resource=target, action="submit", by="tester")
    assert error.value.code == "below_minimum_size"
    assert "75.0 kW" in str(error.value) and "25.0 kW short" in str(error.value)
    target.refresh_from_db()
    assert target.state == "draft"


def test_changes_to_a_registered_resource_are_recorded_as_modifications(program):
    target = resource(program)
    for _ in range(3):
        services.add_member(resource=target, device=at_node(program, "PECO_N001"), by="tester")
    for action in ("submit", "register", "activate"):
        services.transition(resource=target, action=action, by="tester", market_resource_id="PJM-DER-0042")
    assert target.modifications.count() == 0
    newcomer = at_node(program, "PECO_N001", rated_kw=Decimal("40"))
    services.add_member(resource=target, device=newcomer, by="tester", reason="new customer")
    services.remove_member(resource=target, device=newcomer, by="tester", reason="customer moved")
    added, removed = ResourceModification.objects.filter(resource=target).order_by("at", "id")
    assert (added.kind, added.capability_before_kw, added.capability_after_kw) == ("member_added", 150, 190)
    assert (removed.kind, removed.capability_change_kw) == ("member_removed", -40)
    target.refresh_from_db()
    assert target.registered_capability_kw == 150


def test_capability_changes_as_a_batterys_state_of_charge_changes(program):
    battery = active_device(program, site=SiteFactory(market=program.market, pricing_node="PECO_N001"))
    target = resource(program)
    services.add_member(resource=target, device=battery, by="tester")
    status = DeviceStatus.objects.create(
        device=battery, online=True, last_seen_at=django_timezone.now(), state_of_charge_pct=90
    )
    full = services.capability_now(resource=target)
    status.state_of_charge_pct = 30
    status.save()
    low = services.capability_now(resource=target)
    assert full == pytest.approx(min(5, 13.5 * 0.7 * 0.95 / 4), abs=1e-3)
    assert low == pytest.approx(13.5 * 0.1 * 0.95 / 4, abs=1e-3)


def test_retiring_closes_memberships_but_keeps_the_history(program):
    target = resource(program)
    device = at_node(program, "PECO_N001")
    services.add_member(resource=target, device=device, by="tester")
    services.transition(resource=target, action="retire", by="tester", reason="program ended")
    membership = ResourceMembership.objects.get(device=device)
    assert membership.left_at is not None
    services.add_member(resource=resource(program, name="next"), device=device, by="tester")
