"""Enrollment workflows: apply, move through the lifecycle, consents, credentials.

Every function takes keyword arguments, runs in one transaction and raises a
DomainError (never half-writes) when the domain refuses.
"""

import zoneinfo
from datetime import timedelta, timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.utils import timezone

from aggregator import state_machine
from aggregator.access import tokens
from aggregator.errors import InvalidTransition, NotEligible, Problem
from aggregator.models import Program
from enrollment import eligibility
from enrollment.lifecycle import TRANSITIONS, State
from enrollment.models import Consent, Device, DeviceCredential, Enrollment, EnrollmentTransition, Gateway
from enrollment.selectors import eligibility_facts

def _record(enrollment, *, action, from_state, by, reason, at):
    user, label = state_machine.actor(by)
    EnrollmentTransition.objects.create(
        enrollment=enrollment, action=action, from_state=from_state, to_state=enrollment.state,
        at=at, actor=user, actor_label=label, reason=reason,
    )


def check_eligibility(*, device: Device, program: Program, ignore_enrollment_id: int | None = None) -> list[Problem]:
    return eligibility.problems(eligibility_facts(device=device, program=program, ignore_enrollment_id=ignore_enrollment_id))


@transaction.atomic
def apply(*, device: Device, program: Program, by, reason: str = "") -> Enrollment:
    """Enroll a device in a program (state `applied`), if it is eligible."""
    Device.objects.select_for_update().get(pk=device.pk)  # serialise applications for one device
    problems = check_eligibility(device=device, program=program)
    if problems:
        raise NotEligible(problems)
    now = timezone.now()
    try:
        with transaction.atomic():
            enrollment = Enrollment.objects.create(device=device, program=program, state=State.APPLIED, applied_at=now)
    except IntegrityError:
        raise NotEligible(Problem("already_enrolled", "The device is already enrolled in another program.", "device"))
    _record(enrollment, action="apply", from_state="", by=by, reason=reason, at=now)
    return enrollment


@transaction.atomic
def transition(*, enrollment: Enrollment, action: str, by, reason: str = "", utility_reference: str = "", at=None) -> Enrollment:
    """Take one lifecycle action on an enrollment, recording who, when and why."""
    enrollment = Enrollment.objects.select_for_update().select_related("program__market", "device__site__market").get(pk=enrollment.pk)
    rule = state_machine.check(TRANSITIONS, action=action, state=enrollment.state, reason=reason, noun="an enrollment")
    reason = reason.strip()
    now = at or timezone.now()

    if action in ("submit_for_review", "activate"):
        # Consent can be revoked and retail programs joined while an enrollment waits.
        problems = check_eligibility(device=enrollment.device, program=enrollment.program, ignore_enrollment_id=enrollment.pk)
        if problems:
            raise NotEligible(problems)

    from_state = enrollment.state
    enrollment.state = rule.target
    if action == "submit_for_review":
        enrollment.review_started_at = now
        enrollment.review_deadline = review_deadline(started=now, days=enrollment.program.review_days,
                                                     time_zone=enrollment.program.market.time_zone)
        if utility_reference:
            enrollment.utility_reference = utility_reference
    elif action in ("approve", "reject", "lapse") and from_state == State.UTILITY_REVIEW:
        enrollment.review_outcome = {"approve": "approved", "reject": "rejected", "lapse": "lapsed"}[action]
        enrollment.review_decided_at = now
        if utility_reference:
            enrollment.utility_reference = utility_reference
    if action == "activate":
        enrollment.activated_at = now
    if rule.target in (State.REJECTED, State.WITHDRAWN):
        enrollment.ended_at = now
    enrollment.save()
    _record(enrollment, action=action, from_state=from_state, by=by, reason=reason, at=now)
    return enrollment


def review_deadline(*, started, days: int, time_zone: str):
    """`days` calendar days after `started` at the same wall-clock time in the market's
    zone: a 60-day review that spans a DST change is 60 days and one hour long in UTC."""
    local = started.astimezone(zoneinfo.ZoneInfo(time_zone))
    return (local + timedelta(days=days)).astimezone(dt_timezone.utc)


def lapse_overdue_reviews(*, now=None) -> dict[str, int]:
    """Apply the market rule to utility reviews past their deadline.

    Where the market deems a lapsed review approved, approve it; otherwise leave it
    in review (operators see it overdue). Each enrollment in its own transaction.
    """
    from enrollment.selectors import overdue_reviews

    now = now or timezone.now()
    lapsed = still_waiting = 0
    for enrollment in overdue_reviews(now=now).select_related("program__market").iterator():
        if enrollment.program.market.review_lapse_approves:
            transition(
                enrollment=enrollment, action="lapse", by="review-deadline job",
                reason=f"Utility review window ended {enrollment.review_deadline.isoformat()} without a decision; "
                f"{enrollment.program.market.code} deems that approval.",
                at=now,
            )
            lapsed += 1
        else:
            still_waiting += 1
    return {"lapsed": lapsed, "overdue_waiting": still_waiting}


@transaction.atomic
def grant_consent(*, customer, kind: str, terms_version: str, granted_by: str, method: str, by,
                  program=None, granted_at=None, evidence_ref: str = "") -> Consent:
    """Record a consent; an earlier active consent of the same kind (and program) is revoked."""
    granted_at = granted_at or timezone.now()
    if granted_at > timezone.now() + timedelta(minutes=5):
        raise NotEligible(Problem("future_timestamp", "granted_at cannot be in the future.", "granted_at"), status=400)
    Consent.objects.filter(customer=customer, kind=kind, program=program, revoked_at__isnull=True).update(revoked_at=granted_at)
    return Consent.objects.create(
        customer=customer, kind=kind, program=program, terms_version=terms_version, granted_at=granted_at,
        granted_by=granted_by, method=method, evidence_ref=evidence_ref, recorded_by=None if isinstance(by, str) else by,
    )


@transaction.atomic
def revoke_consent(*, consent: Consent, at=None) -> Consent:
    consent = Consent.objects.select_for_update().get(pk=consent.pk)
    if consent.revoked_at is not None:
        raise InvalidTransition(Problem("already_revoked", "This consent is already revoked.", "revoked_at"))
    consent.revoked_at = at or timezone.now()
    consent.save(update_fields=["revoked_at"])
    return consent


def issue_credential(*, device: Device | None = None, gateway: Gateway | None = None, label: str = "",
                     by=None, expires_at=None) -> tuple[DeviceCredential, str]:
    """A new token for a device or gateway: (stored credential, the token shown once)."""
    if (device is None) == (gateway is None):
        raise ValueError("issue a credential for exactly one of device or gateway")
    issued = tokens.issue("dev" if device is not None else "gw")
    credential = DeviceCredential.objects.create(
        device=device, gateway=gateway, key_id=issued.key_id, digest=issued.digest, label=label,
        expires_at=expires_at, issued_by=None if isinstance(by, str) else by,
    )
    return credential, issued.plaintext


@transaction.atomic
def revoke_credential(*, credential: DeviceCredential, at=None) -> DeviceCredential:
    credential = DeviceCredential.objects.select_for_update().get(pk=credential.pk)
    if credential.revoked_at is None:
        credential.revoked_at = at or timezone.now()
        credential.save(update_fields=["revoked_at"])
    return credential


@transaction.atomic
def rotate_credential(*, credential: DeviceCredential, by, grace: timedelta = timedelta(0)) -> tuple[DeviceCredential, str]:
    """Issue a replacement; the old token stops working now, or after `grace` so a
    device in the field can pick the new one up before the old one dies."""
    old = DeviceCredential.objects.select_for_update().get(pk=credential.pk)
    if not old.is_usable():
        raise InvalidTransition(Problem("credential_revoked", "A revoked or expired credential cannot be rotated.", "credential"))
    new, plaintext = issue_credential(device=old.device, gateway=old.gateway, label=old.label, by=by)
    now = timezone.now()
    if grace > timedelta(0):
        old.expires_at = min(old.expires_at, now + grace) if old.expires_at else now + grace
        old.save(update_fields=["expires_at"])
    else:
        old.revoked_at = now
        old.save(update_fields=["revoked_at"])
    return new, plaintext
