import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from aggregator.core.errors import InvalidTransition, NotEligible
from enrollment import services
from enrollment.lifecycle import TRANSITIONS, State
from enrollment.models import Consent, Enrollment
from tests.factories import DeviceFactory, ProgramFactory, RetailProgramFactory, eligible_device, market

NEW_YORK = ZoneInfo("America/New_York")


def walk(enrollment, *actions, by="tester", **kwargs):
    for action in actions:
        enrollment = services.transition(enrollment=enrollment, action=action, by=by, reason=f"{action} test", **kwargs)
    return enrollment


def test_enrollment_walks_the_whole_lifecycle_recording_who_when_and_why(program, make_operator):
    operator = make_operator("operator")
    enrollment = services.apply(
        device=eligible_device(program), program=program, by=operator, reason="customer signed up"
    )
    enrollment = walk(
        enrollment, "submit_for_review", "approve", "activate", "suspend", "activate", "withdraw", by=operator
    )

    assert enrollment.state == State.WITHDRAWN
    assert enrollment.review_outcome == "approved"
    assert enrollment.ended_at is not None
    records = list(enrollment.transitions.values_list("action", "from_state", "to_state", "actor", "actor_label"))
    assert records == [
        ("apply", "", "applied", operator.pk, operator.username),
        ("submit_for_review", "applied", "utility_review", operator.pk, operator.username),
        ("approve", "utility_review", "approved", operator.pk, operator.username),
        ("activate", "approved", "active", operator.pk, operator.username),
        ("suspend", "active", "suspended", operator.pk, operator.username),
        ("activate", "suspended", "active", operator.pk, operator.username),
        ("withdraw", "active", "withdrawn", operator.pk, operator.username),
    ]
    assert enrollment.transitions.first().reason == "customer signed up"


@pytest.mark.parametrize("state", list(State))
def test_only_the_transitions_in_the_table_are_allowed(program, state):
    enrollment = services.apply(device=eligible_device(program), program=program, by="tester")
    Enrollment.objects.filter(pk=enrollment.pk).update(state=state)
    for action, rule in TRANSITIONS.items():
        enrollment.refresh_from_db()
        if state in rule.sources:
            continue
        with pytest.raises(InvalidTransition) as error:
            services.transition(enrollment=enrollment, action=action, by="tester", reason="r")
        assert error.value.code == "invalid_transition"
        enrollment.refresh_from_db()
        assert enrollment.state == state
    assert not enrollment.transitions.exclude(action="apply").exists()


@pytest.mark.parametrize("action,setup", [("reject", ()), ("suspend", ("submit_for_review", "approve", "activate"))])
def test_rejecting_or_suspending_needs_a_reason(program, action, setup):
    enrollment = walk(services.apply(device=eligible_device(program), program=program, by="tester"), *setup)
    with pytest.raises(InvalidTransition) as error:
        services.transition(enrollment=enrollment, action=action, by="tester", reason="  ")
    assert error.value.problems[0].field == "reason"
    enrollment.refresh_from_db()
    assert enrollment.state != TRANSITIONS[action].target


def test_utility_rejection_records_the_outcome_and_ends_the_enrollment(program):
    enrollment = walk(
        services.apply(device=eligible_device(program), program=program, by="tester"), "submit_for_review"
    )
    enrollment = services.transition(
        enrollment=enrollment,
        action="reject",
        by="tester",
        reason="feeder hosting capacity exceeded",
        utility_reference="PECO-2026-0042",
    )
    assert (enrollment.state, enrollment.review_outcome, enrollment.utility_reference) == (
        "rejected",
        "rejected",
        "PECO-2026-0042",
    )
    assert enrollment.review_decided_at is not None and enrollment.ended_at is not None


def test_ineligible_device_gets_every_reason_and_no_enrollment(program):
    device = DeviceFactory(site__meter_id="", site__market=program.market)
    RetailProgramFactory(site=device.site, kind="utility_dr")
    with pytest.raises(NotEligible) as error:
        services.apply(device=device, program=program, by="tester")
    codes = sorted(p.code for p in error.value.problems)
    assert codes == ["double_counting", "missing_consent", "missing_consent", "missing_meter"]
    assert not Enrollment.objects.exists()


def test_device_in_another_market_cannot_join(program):
    caiso_program = ProgramFactory(market=market("CAISO"))
    device = eligible_device(program)
    problems = services.check_eligibility(device=device, program=caiso_program)
    assert "wrong_market" in {p.code for p in problems}


def test_consent_to_an_older_terms_version_is_not_enough(program):
    device = eligible_device(program)
    program.terms_version = "2027.1"
    program.save()
    problems = services.check_eligibility(device=device, program=program)
    assert [p.code for p in problems] == ["missing_consent"]
    assert "2027.1" in problems[0].message and "2026.1" in problems[0].message


def test_retail_program_that_ended_does_not_count_as_double_counting(program):
    device = eligible_device(program)
    RetailProgramFactory(site=device.site, kind="utility_dr", starts_on="2024-01-01", ends_on="2025-12-31")
    assert services.check_eligibility(device=device, program=program) == []


def test_activation_rechecks_consent_revoked_during_review(program):
    device = eligible_device(program)
    enrollment = walk(services.apply(device=device, program=program, by="tester"), "submit_for_review", "approve")
    services.revoke_consent(consent=Consent.objects.get(customer=device.site.customer, kind="utility_data_sharing"))
    with pytest.raises(NotEligible) as error:
        services.transition(enrollment=enrollment, action="activate", by="tester")
    assert error.value.code == "missing_consent"
    enrollment.refresh_from_db()
    assert enrollment.state == State.APPROVED


def test_a_device_enrolls_in_one_program_at_a_time_and_again_after_withdrawal(program):
    device = eligible_device(program)
    other = ProgramFactory(market=program.market)
    first = services.apply(device=device, program=program, by="tester")
    from tests.factories import consent_to

    consent_to(device.site.customer, other)
    with pytest.raises(NotEligible) as error:
        services.apply(device=device, program=other, by="tester")
    assert error.value.code == "already_enrolled"
    walk(first, "withdraw")
    assert services.apply(device=device, program=other, by="tester").state == State.APPLIED


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_applications_for_one_device_make_one_enrollment():
    program = ProgramFactory()
    device = eligible_device(program)
    barrier = threading.Barrier(2)
    outcomes = []

    def apply_once():
        try:
            barrier.wait()
            services.apply(device=device, program=program, by="tester")
            outcomes.append("enrolled")
        except NotEligible as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=apply_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_enrolled", "enrolled"]
    assert Enrollment.objects.filter(device=device).count() == 1


def test_review_deadline_is_sixty_calendar_days_in_market_time_across_dst(program):
    # Review opens on a September afternoon in New York (EDT, UTC-4); 60 days later it is EST (UTC-5).
    started = datetime(2026, 9, 20, 14, 0, tzinfo=NEW_YORK)
    with time_machine.travel(started, tick=False):
        enrollment = walk(
            services.apply(device=eligible_device(program), program=program, by="tester"), "submit_for_review"
        )
    assert enrollment.review_deadline.astimezone(NEW_YORK) == datetime(2026, 11, 19, 14, 0, tzinfo=NEW_YORK)
    assert enrollment.review_deadline - enrollment.review_started_at == timedelta(days=60, hours=1)


def test_program_can_shorten_the_markets_review_period(program):
    program.utility_review_days = 30
    program.save()
    enrollment = _in_review(program, datetime(2026, 6, 1, 9, 0, tzinfo=NEW_YORK))
    assert enrollment.review_deadline - enrollment.review_started_at == timedelta(days=30)


def _in_review(program, started):
    with time_machine.travel(started, tick=False):
        return walk(services.apply(device=eligible_device(program), program=program, by="tester"), "submit_for_review")


def test_lapsed_review_counts_as_approval_where_the_market_says_so(program):
    program.market.review_lapse_approves = True
    program.market.save()
    started = datetime(2026, 3, 2, 9, 0, tzinfo=NEW_YORK)
    enrollment = _in_review(program, started)

    assert services.lapse_overdue_reviews(now=started + timedelta(days=59)) == {"lapsed": 0, "overdue_waiting": 0}
    result = services.lapse_overdue_reviews(now=enrollment.review_deadline + timedelta(minutes=1))

    enrollment.refresh_from_db()
    assert result == {"lapsed": 1, "overdue_waiting": 0}
    assert (enrollment.state, enrollment.review_outcome) == (State.APPROVED, "lapsed")
    last = enrollment.transitions.last()
    assert (last.action, last.actor, last.actor_label) == ("lapse", None, "review-deadline job")


def test_lapsed_review_waits_where_the_market_needs_an_explicit_decision(program):
    enrollment = _in_review(program, datetime(2026, 3, 2, 9, 0, tzinfo=NEW_YORK))
    result = services.lapse_overdue_reviews(now=enrollment.review_deadline + timedelta(days=1))
    enrollment.refresh_from_db()
    assert result == {"lapsed": 0, "overdue_waiting": 1}
    assert enrollment.state == State.UTILITY_REVIEW


def test_lapse_is_not_an_operator_action(program):
    enrollment = _in_review(program, timezone.now())
    from enrollment.lifecycle import allowed_actions

    assert "lapse" not in allowed_actions(enrollment.state)
    assert set(allowed_actions(enrollment.state)) == {"approve", "reject", "withdraw"}
