"""Enrollment workflows: apply, move through the lifecycle, consents, credentials.

Every function takes keyword arguments, runs in one transaction and raises a
DomainError (never half-writes) when the domain refuses.
"""

import time
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from aggregator.core import state_machine
from aggregator.core.access import tokens
from aggregator.core.errors import InvalidTransition, NotEligible, Problem
from aggregator.core.state_machine import Actor
from aggregator.reference.models import Program
from enrollment import eligibility, signals
from enrollment.lifecycle import TRANSITIONS, State
from enrollment.models import (
    Consent,
    Customer,
    Device,
    DeviceCredential,
    DeviceStatus,
    Enrollment,
    EnrollmentTransition,
    FleetCount,
    Gateway,
    SiteCell,
    SiteOutage,
)
from enrollment.selectors import eligibility_facts, eligibility_facts_many, overdue_reviews


def _user(by: Actor):
    """The user for a change's history row; a job's name (a string) has none."""
    return None if isinstance(by, str) else by


def _reason(action: str, reason: str) -> str:
    return f"{action}: {reason}"[:100] if reason else action


def _record_many(enrollments, *, action, from_states, by, reason, at):
    EnrollmentTransition.objects.bulk_create(
        [
            EnrollmentTransition.entry(
                by=by, enrollment=e, action=action, from_state=f, to_state=e.state, at=at, reason=reason
            )
            for e, f in zip(enrollments, from_states)
        ]
    )


def check_eligibility(*, device: Device, program: Program, ignore_enrollment_id: int | None = None) -> list[Problem]:
    return eligibility.problems(
        eligibility_facts(device=device, program=program, ignore_enrollment_id=ignore_enrollment_id)
    )


@dataclass
class BulkResult:
    """What a bulk operation did, and what it refused and why (by device or enrollment id)."""

    done: list[Enrollment] = field(default_factory=list)
    refused: dict[int, list[Problem]] = field(default_factory=dict)


@transaction.atomic
def apply(*, device: Device, program: Program, by: Actor, reason: str = "") -> Enrollment:
    """Enroll a device in a program (state `applied`), if it is eligible."""
    result = bulk_apply(device_ids=[device.pk], program=program, by=by, reason=reason)
    if result.refused:
        raise NotEligible(result.refused[device.pk])
    return result.done[0]


@transaction.atomic
def bulk_apply(*, device_ids: Iterable[int], program: Program, by: Actor, reason: str = "") -> BulkResult:
    """Enroll many devices at once: the eligible ones are enrolled, the others refused with reasons."""
    ids = sorted(set(device_ids))
    locked = set(
        Device.objects.select_for_update().filter(pk__in=ids).values_list("pk", flat=True)
    )  # serialise per device
    result = BulkResult()
    for missing in set(ids) - locked:
        result.refused[missing] = [Problem("not_found", f"No device {missing}.", "device")]
    facts = eligibility_facts_many(device_ids=locked, program=program)
    eligible = []
    for device_id in sorted(locked):
        problems = eligibility.problems(facts[device_id])
        if problems:
            result.refused[device_id] = problems
        else:
            eligible.append(device_id)
    now = timezone.now()
    try:
        with transaction.atomic():
            result.done = bulk_create_with_history(
                [Enrollment(device_id=d, program=program, state=State.APPLIED, applied_at=now) for d in eligible],
                Enrollment,
                default_user=_user(by),
                default_change_reason=_reason("apply", reason),
            )
    except IntegrityError:  # only when something bypassed the device lock; the index still holds
        raise NotEligible(
            Problem("already_enrolled", "A device is already enrolled in another program.", "device")
        ) from None
    _record_many(result.done, action="apply", from_states=[""] * len(result.done), by=by, reason=reason, at=now)
    return result


@transaction.atomic
def transition(
    *,
    enrollment: Enrollment,
    action: str,
    by: Actor,
    reason: str = "",
    utility_reference: str = "",
    at: datetime | None = None,
) -> Enrollment:
    """Take one lifecycle action on an enrollment, recording who, when and why."""
    current = Enrollment.objects.filter(pk=enrollment.pk).values_list("state", flat=True).first()
    state_machine.check(TRANSITIONS, action=action, state=current, reason=reason, noun="an enrollment")
    result = bulk_transition(
        enrollment_ids=[enrollment.pk], action=action, by=by, reason=reason, utility_reference=utility_reference, at=at
    )
    if result.refused:
        problems = result.refused[enrollment.pk]
        raise (InvalidTransition if problems[0].code == "invalid_transition" else NotEligible)(problems)
    return result.done[0]


@transaction.atomic
def bulk_transition(
    *,
    enrollment_ids: Iterable[int],
    action: str,
    by: Actor,
    reason: str = "",
    utility_reference: str = "",
    at: datetime | None = None,
) -> BulkResult:
    """Take one lifecycle action on many enrollments; those it does not apply to are refused with reasons."""
    rule = TRANSITIONS.get(action)
    if rule is None:
        raise InvalidTransition(Problem("unknown_action", f"No lifecycle action {action!r}.", "action"), status=400)
    reason = reason.strip()
    if rule.reason_required and not reason:
        raise InvalidTransition(Problem("required", f"A reason is required to {action}.", "reason"), status=400)
    now = at or timezone.now()
    enrollments = list(
        Enrollment.objects.select_for_update(of=("self",))
        .select_related("program__market")
        .filter(pk__in=list(enrollment_ids))
        .order_by("pk")
    )
    result = BulkResult()
    movable = []
    for enrollment in enrollments:
        if enrollment.state in rule.sources:
            movable.append(enrollment)
        else:
            allowed = ", ".join(sorted(str(s) for s in rule.sources))
            result.refused[enrollment.pk] = [
                Problem(
                    "invalid_transition",
                    f"Cannot {action} an enrollment that is {enrollment.state} (allowed from: {allowed}).",
                    "state",
                )
            ]
    if action in ("submit_for_review", "activate"):
        # Consent can be revoked and retail programs joined while an enrollment waits.
        by_program: dict[int, list[Enrollment]] = {}
        for enrollment in movable:
            by_program.setdefault(enrollment.program_id, []).append(enrollment)
        checked = []
        for group in by_program.values():
            facts = eligibility_facts_many(
                device_ids=[e.device_id for e in group],
                program=group[0].program,
                ignore_enrollment_ids=[e.pk for e in group],
            )
            for enrollment in group:
                problems = eligibility.problems(facts[enrollment.device_id])
                if problems:
                    result.refused[enrollment.pk] = problems
                else:
                    checked.append(enrollment)
        movable = sorted(checked, key=lambda e: e.pk)

    from_states = [e.state for e in movable]
    for enrollment in movable:
        _apply_effects(enrollment, action=action, target=rule.target, utility_reference=utility_reference, now=now)
    bulk_update_with_history(
        movable,
        Enrollment,
        [
            "state",
            "review_started_at",
            "review_deadline",
            "review_outcome",
            "review_decided_at",
            "utility_reference",
            "activated_at",
            "ended_at",
            "updated_at",
        ],
        default_user=_user(by),
        default_change_reason=_reason(action, reason),
    )
    _record_many(movable, action=action, from_states=from_states, by=by, reason=reason, at=now)
    result.done = movable
    return result


def _apply_effects(enrollment: Enrollment, *, action: str, target: str, utility_reference: str, now) -> None:
    """What taking `action` changes on one enrollment besides its state."""
    from_state = enrollment.state
    enrollment.state = target
    enrollment.updated_at = now
    if action == "submit_for_review":
        enrollment.review_started_at = now
        enrollment.review_deadline = review_deadline(
            started=now, days=enrollment.program.review_days, time_zone=enrollment.program.market.time_zone
        )
    elif action in ("approve", "reject", "lapse") and from_state == State.UTILITY_REVIEW:
        enrollment.review_outcome = {"approve": "approved", "reject": "rejected", "lapse": "lapsed"}[action]
        enrollment.review_decided_at = now
    if utility_reference and action in ("submit_for_review", "approve", "reject"):
        enrollment.utility_reference = utility_reference
    if action == "activate":
        enrollment.activated_at = now
    if target in (State.REJECTED, State.WITHDRAWN):
        enrollment.ended_at = now


def review_deadline(*, started: datetime, days: int, time_zone: str) -> datetime:
    """`days` calendar days after `started` at the same wall-clock time in the market's
    zone: a 60-day review that spans a DST change is 60 days and one hour long in UTC."""
    local = started.astimezone(zoneinfo.ZoneInfo(time_zone))
    return (local + timedelta(days=days)).astimezone(UTC)


def lapse_overdue_reviews(*, now: datetime | None = None) -> dict[str, int]:
    """Apply the market rule to utility reviews past their deadline.

    Where the market deems a lapsed review approved, approve it; otherwise leave it
    in review (operators see it overdue). Each enrollment in its own transaction.
    """

    now = now or timezone.now()
    lapsed = still_waiting = 0
    for enrollment in overdue_reviews(now=now).select_related("program__market").iterator():
        if enrollment.program.market.review_lapse_approves:
            transition(
                enrollment=enrollment,
                action="lapse",
                by="review-deadline job",
                reason=f"Utility review window ended {enrollment.review_deadline.isoformat()} without a decision; "
                f"{enrollment.program.market.code} deems that approval.",
                at=now,
            )
            lapsed += 1
        else:
            still_waiting += 1
    return {"lapsed": lapsed, "overdue_waiting": still_waiting}


@transaction.atomic
def grant_consent(
    *,
    customer: Customer,
    kind: str,
    terms_version: str,
    granted_by: str,
    method: str,
    by: Actor,
    program: Program | None = None,
    granted_at: datetime | None = None,
    evidence_ref: str = "",
) -> Consent:
    """Record a consent; an earlier active consent of the same kind (and program) is revoked."""
    granted_at = granted_at or timezone.now()
    if granted_at > timezone.now() + timedelta(minutes=5):
        raise NotEligible(Problem("future_timestamp", "granted_at cannot be in the future.", "granted_at"), status=400)
    superseded = list(Consent.objects.filter(customer=customer, kind=kind, program=program, revoked_at__isnull=True))
    for earlier in superseded:
        earlier.revoked_at = granted_at
    bulk_update_with_history(
        superseded, Consent, ["revoked_at"], default_user=_user(by), default_change_reason="superseded"
    )
    return Consent.objects.create(
        customer=customer,
        kind=kind,
        program=program,
        terms_version=terms_version,
        granted_at=granted_at,
        granted_by=granted_by,
        method=method,
        evidence_ref=evidence_ref,
        recorded_by=None if isinstance(by, str) else by,
    )


@transaction.atomic
def revoke_consent(*, consent: Consent, at: datetime | None = None) -> Consent:
    consent = Consent.objects.select_for_update().get(pk=consent.pk)
    if consent.revoked_at is not None:
        raise InvalidTransition(Problem("already_revoked", "This consent is already revoked.", "revoked_at"))
    consent.revoked_at = at or timezone.now()
    consent.save(update_fields=["revoked_at"])
    return consent


def issue_credential(
    *,
    device: Device | None = None,
    gateway: Gateway | None = None,
    label: str = "",
    by: Actor = None,
    expires_at: datetime | None = None,
) -> tuple[DeviceCredential, str]:
    """A new token for a device or gateway: (stored credential, the token shown once)."""
    if (device is None) == (gateway is None):
        raise ValueError("issue a credential for exactly one of device or gateway")
    issued = tokens.issue("dev" if device is not None else "gw")
    credential = DeviceCredential.objects.create(
        device=device,
        gateway=gateway,
        key_id=issued.key_id,
        digest=issued.digest,
        label=label,
        expires_at=expires_at,
        issued_by=None if isinstance(by, str) else by,
    )
    return credential, issued.plaintext


@transaction.atomic
def revoke_credential(*, credential: DeviceCredential, at: datetime | None = None) -> DeviceCredential:
    credential = DeviceCredential.objects.select_for_update().get(pk=credential.pk)
    if credential.revoked_at is None:
        credential.revoked_at = at or timezone.now()
        credential.save(update_fields=["revoked_at"])
    return credential


@transaction.atomic
def rotate_credential(
    *, credential: DeviceCredential, by: Actor, grace: timedelta = timedelta(0)
) -> tuple[DeviceCredential, str]:
    """Issue a replacement; the old token stops working now, or after `grace` so a
    device in the field can pick the new one up before the old one dies."""
    old = DeviceCredential.objects.select_for_update().get(pk=credential.pk)
    if not old.is_usable():
        raise InvalidTransition(
            Problem("credential_revoked", "A revoked or expired credential cannot be rotated.", "credential")
        )
    new, plaintext = issue_credential(device=old.device, gateway=old.gateway, label=old.label, by=by)
    now = timezone.now()
    if grace > timedelta(0):
        old.expires_at = min(old.expires_at, now + grace) if old.expires_at else now + grace
        old.save(update_fields=["expires_at"])
    else:
        old.revoked_at = now
        old.save(update_fields=["revoked_at"])
    return new, plaintext


def record_heartbeat(
    *,
    device_id: int,
    at: datetime,
    online: bool = True,
    state_of_charge_pct: Decimal | float | None = None,  # a float from OpenADR reports
    power_kw: Decimal | None = None,
    ev_plugged_in: bool | None = None,
    outdoor_temperature_f: float | None = None,
    mode: str = "",
    firmware: str = "",
    grid_status: str = "",
) -> DeviceStatus:
    """A device's latest status (one upsert). A heartbeat older than the stored one is ignored.

    A device that reports itself islanded or in a grid outage leaves every event it is
    serving (as a customer override would: others replace it) until it is back on the grid.
    """
    from django.db.models import Q

    defaults = {
        "online": online,
        "last_seen_at": at,
        "state_of_charge_pct": state_of_charge_pct,
        "power_kw": power_kw,
        "ev_plugged_in": ev_plugged_in,
        "outdoor_temperature_f": outdoor_temperature_f,
        "mode": mode,
        "firmware": firmware,
        "grid_status": grid_status,
    }
    updated = DeviceStatus.objects.filter(Q(device_id=device_id), Q(last_seen_at__lte=at)).update(
        **defaults, updated_at=timezone.now()
    )
    if not updated:
        DeviceStatus.objects.get_or_create(device_id=device_id, defaults=defaults)
    status = DeviceStatus.objects.get(device_id=device_id)
    if status.last_seen_at == at:  # this heartbeat is the latest: it moves the site's outage record
        _record_outage(device_id=device_id, at=at, grid_status=status.grid_status)
    if status.grid_status in ("islanded", "outage"):
        signals.device_off_grid.send(sender=DeviceStatus, device_id=device_id, status=status.grid_status)
    return status


def _record_outage(*, device_id: int, at, grid_status: str) -> None:
    """Open the site's outage when a device reports one; close it when a device reports the grid back.

    Every heartbeat passes here, most of them grid-connected with no outage open: that case
    is one UPDATE on the partial index of open outages, touching no row.
    """
    from django.db import IntegrityError, transaction

    if grid_status == "outage":
        site_id = Device.objects.filter(pk=device_id).values_list("site_id", flat=True).get()
        try:
            with transaction.atomic():
                SiteOutage.objects.get_or_create(
                    site_id=site_id, end__isnull=True, defaults={"start": at, "reported_by_id": device_id}
                )
        except IntegrityError:
            pass  # another device of the site opened it at the same moment
    elif grid_status == "grid_connected":
        SiteOutage.objects.filter(site__devices=device_id, end__isnull=True, start__lte=at).update(end=at)


def mark_silent_devices_offline(*, now: datetime | None = None, missed_heartbeats: int = 3) -> int:
    """Devices whose last heartbeat is older than `missed_heartbeats` telemetry intervals go offline (one UPDATE)."""
    from django.db import connection

    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE enrollment_devicestatus st SET online = false, updated_at = %s
            FROM enrollment_device d
            WHERE d.id = st.device_id AND st.online
              AND st.last_seen_at < %s - make_interval(secs => d.telemetry_interval_seconds * %s)
            """,
            [now, now, missed_heartbeats],
        )
        return cursor.rowcount


def count_fleet(*, now: datetime | None = None) -> FleetCount:
    """Counts the fleet (three set-based queries: devices by node and type, with their status; sites by node;
    enrollments by state) and keeps this count as the latest, deleting the ones before it."""
    now = now or timezone.now()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT m.code, site.pricing_node, d.device_type, count(*), count(*) FILTER (WHERE s.online),
                   coalesce(sum(d.rated_kw), 0)::float8
            FROM enrollment_device d JOIN enrollment_site site ON site.id = d.site_id
            JOIN aggregator_market m ON m.id = site.market_id
            LEFT JOIN enrollment_devicestatus s ON s.device_id = d.id
            GROUP BY m.code, site.pricing_node, d.device_type""")
        groups = cursor.fetchall()
        cursor.execute("""
            SELECT m.code, site.pricing_node, count(*) FROM enrollment_site site
            JOIN aggregator_market m ON m.id = site.market_id GROUP BY m.code, site.pricing_node""")
        sites = cursor.fetchall()
        cursor.execute("SELECT state, count(*) FROM enrollment_enrollment GROUP BY state ORDER BY count(*) DESC, state")
        enrollment = [list(row) for row in cursor.fetchall()]
    types: dict[str, list] = {}
    per_node: dict[tuple[str, str], list] = {(code, node): [n, 0, 0, 0.0] for code, node, n in sites}
    for code, node, device_type, n, up, kw in groups:
        t = types.setdefault(device_type, [0, 0, 0, 0.0])
        t[0], t[1], t[2], t[3] = t[0] + up, t[1] + n - up, t[2] + n, t[3] + kw
        row = per_node.setdefault((code, node), [0, 0, 0, 0.0])
        row[1], row[2], row[3] = row[1] + n, row[2] + up, row[3] + kw
    with transaction.atomic():
        count = FleetCount.objects.create(
            counted_at=now,
            seconds=round(time.perf_counter() - started, 3),
            by_type=[[t, *figures] for t, figures in sorted(types.items())],
            nodes=[[code, node, *figures] for (code, node), figures in sorted(per_node.items())],
            enrollment=enrollment,
        )
        FleetCount.objects.filter(counted_at__lt=now).delete()  # a count made at the same time as this one stays
    return count


def recount_fleet(*, now: datetime | None = None) -> FleetCount:
    """The fleet counted (count_fleet) and the map's site states refreshed with it (refresh_site_states), so the
    map's "as counted" time holds for both: beat's minute, a fleet import's end, the console's Count now."""
    count = count_fleet(now=now)
    refresh_site_states()
    return count


def refresh_site_states() -> int:
    """Each site's devices, devices online and state again, for the fleet map (SiteState): one pass over the
    devices, and only the sites whose figures changed (or that are new) written, those without coordinates or gone
    deleted; then the grid cells' sums (SiteCell) from them. Returns the sites written."""
    with transaction.atomic(), connection.cursor() as cursor:
        # One refresh at a time (beat's and a fleet import's may meet): a second one's snapshot would not see the
        # first's new cells, and would add its own beside them.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('enrollment.refresh_site_states'))")
        cursor.execute("SET LOCAL work_mem = '128MB'")  # the grouping and the comparison stay in memory at 1M devices
        cursor.execute("""
            WITH counted AS (
                SELECT s.id AS site_id, s.market_id, s.pricing_node, s.latitude::float8 AS latitude,
                       s.longitude::float8 AS longitude, coalesce(n.devices, 0) AS devices, coalesce(n.online, 0) AS online
                FROM enrollment_site s LEFT JOIN (
                    SELECT d.site_id, count(*)::int AS devices, (count(*) FILTER (WHERE st.online))::int AS online
                    FROM enrollment_device d LEFT JOIN enrollment_devicestatus st ON st.device_id = d.id
                    GROUP BY d.site_id
                ) n ON n.site_id = s.id
                WHERE s.latitude IS NOT NULL AND s.longitude IS NOT NULL
            ), fresh AS (
                SELECT *, CASE WHEN devices = 0 THEN 'empty' WHEN online = devices THEN 'online'
                               WHEN online > 0 THEN 'partial' ELSE 'offline' END AS state
                FROM counted
            )
            INSERT INTO enrollment_sitestate
                (site_id, market_id, pricing_node, latitude, longitude, devices, online, state)
            SELECT f.* FROM fresh f LEFT JOIN enrollment_sitestate old ON old.site_id = f.site_id
            WHERE old.site_id IS NULL
               OR (old.market_id, old.pricing_node, old.latitude, old.longitude, old.devices, old.online)
                  IS DISTINCT FROM (f.market_id, f.pricing_node, f.latitude, f.longitude, f.devices, f.online)
            ON CONFLICT (site_id) DO UPDATE SET market_id = EXCLUDED.market_id, pricing_node = EXCLUDED.pricing_node,
                latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, devices = EXCLUDED.devices,
                online = EXCLUDED.online, state = EXCLUDED.state""")
        written = cursor.rowcount
        cursor.execute("""
            DELETE FROM enrollment_sitestate old WHERE NOT EXISTS (
                SELECT 1 FROM enrollment_site s
                WHERE s.id = old.site_id AND s.latitude IS NOT NULL AND s.longitude IS NOT NULL)""")
        written += cursor.rowcount
        cursor.execute("DELETE FROM enrollment_sitecell")  # the map reads the cells before this until the commit
        cursor.execute(
            """
            INSERT INTO enrollment_sitecell
                (row, col, market_id, pricing_node, state, sites, devices, online, latitude_sum, longitude_sum)
            SELECT floor(latitude / %(size)s)::int, floor(longitude / %(size)s)::int, market_id, pricing_node, state,
                   count(*), sum(devices), sum(online), sum(latitude), sum(longitude)
            FROM enrollment_sitestate GROUP BY 1, 2, 3, 4, 5""",
            {"size": SiteCell.SIZE},
        )
        return written
