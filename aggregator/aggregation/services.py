"""Aggregation workflows: virtual resources, their members, their lifecycle, the builder.

Keyword-only functions, one transaction each; refusals are DomainErrors that name
the field, and nothing is half-written.
"""

import heapq
import math
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from aggregator.aggregation import capability
from aggregator.aggregation.models import (
    AggregationProposal,
    ResourceMembership,
    ResourceModification,
    ResourceState,
    ResourceTransition,
    ScopeKind,
    VirtualResource,
)
from aggregator.aggregation.selectors import capability_of, load_fleet
from aggregator.core import state_machine
from aggregator.core.errors import DomainError, InvalidTransition, NotEligible, Problem
from aggregator.core.state_machine import Actor, Transition
from aggregator.reference.models import Market, Program
from enrollment.lifecycle import State as EnrollmentState
from enrollment.models import Device, Enrollment

S = ResourceState
TRANSITIONS = state_machine.table(
    Transition("submit", frozenset({S.DRAFT}), S.SUBMITTED),
    Transition("return_to_draft", frozenset({S.SUBMITTED}), S.DRAFT, reason_required=True),
    Transition("register", frozenset({S.SUBMITTED}), S.REGISTERED),
    Transition("activate", frozenset({S.REGISTERED}), S.ACTIVE),
    Transition("retire", frozenset({S.DRAFT, S.SUBMITTED, S.REGISTERED, S.ACTIVE}), S.RETIRED, reason_required=True),
)
OPERATOR_ACTIONS = tuple(TRANSITIONS)
KW = Decimal("0.001")


def _kw(value: float) -> Decimal:
    return Decimal(str(round(float(value), 3))).quantize(KW)


def event_hours_for(resource: VirtualResource) -> float:
    return float(resource.program.typical_event_hours)


def capability_now(*, resource: VirtualResource, now: datetime | None = None) -> float:
    now = now or timezone.now()
    return capability_of(resource_ids=[resource.pk], now=now, hours=1, event_hours=event_hours_for(resource))[
        resource.pk
    ]["now_kw"]


def _scope_problems(*, market: Market, program: Program, scope_kind: str) -> list[Problem]:
    problems = []
    if program.market_id != market.pk:
        problems.append(Problem("wrong_market", f"Program {program} is not in market {market.code}.", "program"))
    if scope_kind == ScopeKind.ZONE and not market.multi_node_allowed:
        problems.append(
            Problem(
                "multi_node_not_allowed",
                f"{market.code} does not allow aggregations over more than one pricing node.",
                "scope_kind",
            )
        )
    return problems


def resource_problems(
    *,
    market: Market,
    program: Program,
    scope_kind: str,
    name: str,
    max_kw: Decimal | None,
    instance: VirtualResource | None = None,
) -> list[Problem]:
    """What is wrong with a resource's definition (creation and edits alike)."""
    problems = _scope_problems(market=market, program=program, scope_kind=scope_kind)
    if max_kw is not None and max_kw < market.min_aggregation_kw:
        problems.append(
            Problem(
                "out_of_range",
                f"max_kw cannot be below {market.code}'s minimum of {market.min_aggregation_kw} kW.",
                "max_kw",
            )
        )
    same_name = VirtualResource.objects.filter(market=market, name=name)
    if instance is not None:
        same_name = same_name.exclude(pk=instance.pk)
    if same_name.exists():
        problems.append(Problem("unique", f"{market.code} already has a resource named {name!r}.", "name"))
    return problems


@transaction.atomic
def create_resource(
    *,
    market: Market,
    program: Program,
    name: str,
    scope_kind: str,
    scope: str,
    by: Actor,
    max_kw: Decimal | None = None,
    participation_model: str | None = None,
) -> VirtualResource:
    problems = resource_problems(market=market, program=program, scope_kind=scope_kind, name=name, max_kw=max_kw)
    if problems:
        raise DomainError(problems, status=400)
    resource = VirtualResource.objects.create(
        market=market,
        program=program,
        name=name,
        scope_kind=scope_kind,
        scope=scope,
        max_kw=max_kw,
        participation_model=participation_model or program.service,
    )
    _record_transition(resource, action="create", from_state="", by=by, reason="")
    return resource


@transaction.atomic
def update_resource(*, resource: VirtualResource, **changes: Any) -> VirtualResource:  # name, max_kw
    """Rename a resource or change its size cap; market, program and scope are fixed."""
    resource = VirtualResource.objects.select_for_update().select_related("market", "program").get(pk=resource.pk)
    name = changes.get("name", resource.name)
    max_kw = changes.get("max_kw", resource.max_kw)
    problems = resource_problems(
        market=resource.market,
        program=resource.program,
        scope_kind=resource.scope_kind,
        name=name,
        max_kw=max_kw,
        instance=resource,
    )
    if problems:
        raise DomainError(problems, status=400)
    resource.name, resource.max_kw = name, max_kw
    resource.save(update_fields=["name", "max_kw", "updated_at"])
    return resource


def _record_transition(resource, *, action, from_state, by, reason, at=None):
    ResourceTransition.entry(
        by=by,
        resource=resource,
        action=action,
        from_state=from_state,
        to_state=resource.state,
        at=at or timezone.now(),
        reason=reason,
    ).save()


def membership_problems(*, resource: VirtualResource, device: Device) -> list[Problem]:
    """Why a device may not join a resource (empty when it may)."""
    problems = []
    site = device.site
    enrollment = (
        Enrollment.objects.filter(device=device, program=resource.program)
        .exclude(state__in=[EnrollmentState.REJECTED, EnrollmentState.WITHDRAWN])
        .first()
    )
    if enrollment is None:
        problems.append(Problem("not_enrolled", f"The device is not enrolled in program {resource.program}.", "device"))
    elif enrollment.state != EnrollmentState.ACTIVE:
        detail = (
            "its utility review is pending"
            if enrollment.state == EnrollmentState.UTILITY_REVIEW
            else f"it is {enrollment.state}"
        )
        problems.append(Problem("enrollment_not_active", f"The device's enrollment is not active: {detail}.", "device"))
    if site.market_id != resource.market_id:
        problems.append(
            Problem(
                "wrong_market",
                f"The device's site is in {site.market.code}, the resource in {resource.market.code}.",
                "device",
            )
        )
    elif resource.scope_kind == ScopeKind.PRICING_NODE and site.pricing_node != resource.scope:
        problems.append(
            Problem(
                "outside_scope",
                f"The device is at pricing node {site.pricing_node}; the resource is at {resource.scope} only.",
                "device",
            )
        )
    elif resource.scope_kind == ScopeKind.ZONE and site.zone != resource.scope:
        problems.append(
            Problem(
                "outside_scope",
                f"The device is in zone {site.zone}; the resource covers zone {resource.scope}.",
                "device",
            )
        )
    return problems


def _modification(resource, *, kind, device, before, by, reason, at):
    after = capability_now(resource=resource, now=at)
    user, label = state_machine.actor(by)
    ResourceModification.objects.create(
        resource=resource,
        kind=kind,
        device=device,
        at=at,
        actor=user,
        actor_label=label,
        reason=reason,
        capability_before_kw=_kw(before),
        capability_after_kw=_kw(after),
    )
    resource.registered_capability_kw = _kw(after)
    resource.save(update_fields=["registered_capability_kw", "updated_at"])


@transaction.atomic
def add_member(
    *, resource: VirtualResource, device: Device, by: Actor, reason: str = "", at: datetime | None = None
) -> ResourceMembership:
    resource = VirtualResource.objects.select_for_update().select_related("market", "program").get(pk=resource.pk)
    if resource.state == S.RETIRED:
        raise InvalidTransition(Problem("resource_retired", "A retired resource takes no members.", "resource"))
    device = Device.objects.select_related("site__market").get(pk=device.pk)
    problems = membership_problems(resource=resource, device=device)
    if problems:
        raise NotEligible(problems)
    at = at or timezone.now()
    before = capability_now(resource=resource, now=at) if resource.is_registered else None
    try:
        with transaction.atomic():
            membership = ResourceMembership.objects.create(resource=resource, device=device, joined_at=at)
    except IntegrityError:
        other = (
            ResourceMembership.objects.filter(device=device, left_at__isnull=True)
            .select_related("resource__market")
            .first()
        )
        where = f" ({other.resource})" if other else ""
        raise NotEligible(
            Problem("already_in_resource", f"The device is already in another virtual resource{where}.", "device")
        ) from None
    if before is not None:
        _modification(
            resource,
            kind=ResourceModification.Kind.MEMBER_ADDED,
            device=device,
            before=before,
            by=by,
            reason=reason,
            at=at,
        )
    return membership


@transaction.atomic
def remove_member(
    *, resource: VirtualResource, device: Device, by: Actor, reason: str = "", at: datetime | None = None
) -> ResourceMembership:
    resource = VirtualResource.objects.select_for_update().select_related("market", "program").get(pk=resource.pk)
    membership = (
        ResourceMembership.objects.select_for_update()
        .filter(resource=resource, device=device, left_at__isnull=True)
        .first()
    )
    if membership is None:
        raise DomainError(
            Problem("not_a_member", "The device is not a current member of this resource.", "device"), status=404
        )
    at = at or timezone.now()
    before = capability_now(resource=resource, now=at) if resource.is_registered else None
    membership.left_at = at
    membership.save(update_fields=["left_at"])
    if before is not None:
        _modification(
            resource,
            kind=ResourceModification.Kind.MEMBER_REMOVED,
            device=device,
            before=before,
            by=by,
            reason=reason,
            at=at,
        )
    return membership


INJECTING_TYPES = ("battery", "solar_pv", "generator", "chp")


def injection_kw(*, resource: VirtualResource) -> float:
    """What the resource's current members could inject together: the rated kW of its batteries, solar, engines and
    bidirectional chargers."""
    members = Device.objects.filter(memberships__resource=resource, memberships__left_at__isnull=True).filter(
        Q(device_type__in=INJECTING_TYPES) | Q(device_type="ev_charger", bidirectional=True)
    )
    return float(members.aggregate(total=Sum("rated_kw"))["total"] or 0)


@transaction.atomic
def transition(
    *,
    resource: VirtualResource,
    action: str,
    by: Actor,
    reason: str = "",
    market_resource_id: str = "",
    at: datetime | None = None,
) -> VirtualResource:
    resource = VirtualResource.objects.select_for_update().select_related("market", "program").get(pk=resource.pk)
    rule = state_machine.check(
        TRANSITIONS, action=action, state=resource.state, reason=reason, noun="a virtual resource"
    )
    now = at or timezone.now()
    if action == "submit":
        kw = capability_now(resource=resource, now=now)
        minimum = float(resource.market.min_aggregation_kw)
        if kw < minimum:
            raise NotEligible(
                Problem(
                    "below_minimum_size",
                    f"Capability is {kw:.1f} kW, {minimum - kw:.1f} kW short of {resource.market.code}'s minimum of {minimum:g} kW.",
                    "capability",
                )
            )
        limit = resource.market.max_aggregation_injection_kw
        if limit is not None:
            injecting = injection_kw(resource=resource)
            if injecting > float(limit):
                raise NotEligible(
                    Problem(
                        "above_maximum_injection",
                        f"Members could inject {injecting:,.1f} kW together, above {resource.market.code}'s maximum "
                        f"of {float(limit):,.0f} kW for an aggregation.",
                        "members",
                    )
                )
        resource.registered_capability_kw = _kw(kw)
        resource.submitted_at = now
    elif action == "register":
        if not market_resource_id.strip():
            raise InvalidTransition(
                Problem("required", "The market's resource id is required to register.", "market_resource_id"),
                status=400,
            )
        resource.market_resource_id = market_resource_id.strip()
        resource.registered_at = now
    elif action == "activate":
        resource.activated_at = now
    elif action == "retire":
        resource.retired_at = now
        resource.memberships.filter(left_at__isnull=True).update(left_at=now)
    from_state = resource.state
    resource.state = rule.target
    resource.save()
    _record_transition(resource, action=action, from_state=from_state, by=by, reason=reason.strip(), at=now)
    return resource


# --- the aggregation builder -------------------------------------------------------

_CANDIDATES = """
JOIN enrollment_enrollment e ON e.device_id = d.id AND e.program_id = %s AND e.state = 'active'
"""


def _ineligible_summary(program: Program, market: Market) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT e.state, count(*) FROM enrollment_enrollment e
            JOIN enrollment_device d ON d.id = e.device_id JOIN enrollment_site s ON s.id = d.site_id
            WHERE e.program_id = %s AND s.market_id = %s AND e.state IN ('applied', 'utility_review', 'approved', 'suspended')
            GROUP BY e.state
            """,
            [program.pk, market.pk],
        )
        return {f"enrollment_{state}": count for state, count in cursor.fetchall()}


def _balance(kw: np.ndarray, bins: int) -> list[list[int]]:
    """Split device indices into `bins` groups of near-equal kW (largest first, to the lightest bin)."""
    heap = [(0.0, b) for b in range(bins)]
    groups: list[list[int]] = [[] for _ in range(bins)]
    for i in np.argsort(-kw, kind="stable"):
        load, b = heapq.heappop(heap)
        groups[b].append(int(i))
        heapq.heappush(heap, (load + float(kw[i]), b))
    return groups


def _groups(keys: np.ndarray):
    """(key, indices) for each distinct key, in key order: one sort, not a scan per key."""
    if not len(keys):
        return
    names, inverse = np.unique(keys.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(names) + 1))
    for i, name in enumerate(names):
        yield str(name), order[bounds[i] : bounds[i + 1]]


def build_proposal(
    *,
    market: Market,
    program: Program,
    by: Actor,
    scope_kind: str | None = None,
    max_kw: Decimal | None = None,
    now: datetime | None = None,
) -> AggregationProposal:
    """Group eligible, unassigned devices by location scope into resources of at least the
    market's minimum (and at most max_kw), and say what could not be placed and why."""
    started = time.perf_counter()
    scope_kind = scope_kind or (ScopeKind.ZONE if market.multi_node_allowed else ScopeKind.PRICING_NODE)
    problems = _scope_problems(market=market, program=program, scope_kind=scope_kind)
    minimum = float(market.min_aggregation_kw)
    if max_kw is not None and float(max_kw) < minimum:
        problems.append(
            Problem("out_of_range", f"max_kw cannot be below {market.code}'s minimum of {minimum:g} kW.", "max_kw")
        )
    if problems:
        raise DomainError(problems, status=400)
    now = now or timezone.now()
    event_hours = float(program.typical_event_hours)
    scope_column = "s.zone" if scope_kind == ScopeKind.ZONE else "s.pricing_node"
    fleet, (scopes,) = load_fleet(
        where=(
            "s.market_id = %s AND NOT EXISTS (SELECT 1 FROM aggregator_resourcemembership m "
            "WHERE m.device_id = d.id AND m.left_at IS NULL)"
        ),
        params=[program.pk, market.pk],
        joins=_CANDIDATES,
        extra=(scope_column,),
    )
    kw = capability.available_kw(fleet, now=now, instants=[now], event_hours=event_hours)[:, 0]
    resources, unplaced = [], []
    existing = set(VirtualResource.objects.filter(market=market).values_list("name", flat=True))
    for scope, members in _groups(scopes):
        empty = members[kw[members] <= 0]
        if len(empty):
            unplaced.append(
                {
                    "scope": scope,
                    "code": "no_capability",
                    "devices": len(empty),
                    "capability_kw": 0.0,
                    "reason": f"{len(empty)} device(s) offer no kW now (offline, at backup reserve or out of season).",
                }
            )
        members = members[kw[members] > 0]
        if not len(members):
            continue
        total = float(kw[members].sum())
        if total < minimum:
            unplaced.append(
                {
                    "scope": scope,
                    "code": "scope_too_small",
                    "devices": len(members),
                    "capability_kw": round(total, 3),
                    "reason": f"{total:.1f} kW in {scope} is {minimum - total:.1f} kW short of the {minimum:g} kW minimum.",
                }
            )
            continue
        bins = 1 if max_kw is None else max(1, min(math.ceil(total / float(max_kw)), int(total // minimum)))
        groups = _balance(kw[members], bins)
        while bins > 1 and min(float(kw[members[g]].sum()) for g in groups) < minimum:
            bins -= 1  # balancing left one group short of the minimum: use fewer, larger groups
            groups = _balance(kw[members], bins)
        for n, group in enumerate(groups, start=1):
            name = f"{program.code}-{scope}-{n}"
            while name in existing:
                name += "x"
            existing.add(name)
            ids = fleet.device_id[members[group]]
            resources.append(
                {
                    "name": name,
                    "scope": scope,
                    "capability_kw": round(float(kw[members[group]].sum()), 3),
                    "devices": len(ids),
                    "device_ids": ids.tolist(),
                }
            )
    user, _ = state_machine.actor(by)
    return AggregationProposal.objects.create(
        market=market,
        program=program,
        scope_kind=scope_kind,
        max_kw=max_kw,
        event_hours=Decimal(str(event_hours)),
        resources=resources,
        unplaced=unplaced,
        ineligible=_ineligible_summary(program, market),
        created_by=user,
        seconds=round(time.perf_counter() - started, 3),
    )


@transaction.atomic
def accept_proposal(*, proposal: AggregationProposal, by: Actor) -> list[VirtualResource]:
    """Create the proposed resources (as drafts) with their members, all or nothing."""
    proposal = AggregationProposal.objects.select_for_update().select_related("market", "program").get(pk=proposal.pk)
    if proposal.state != AggregationProposal.State.PROPOSED:
        raise InvalidTransition(Problem("invalid_transition", f"This proposal is already {proposal.state}.", "state"))
    now = timezone.now()
    specs = proposal.resources
    taken = set(
        VirtualResource.objects.filter(market=proposal.market, name__in=[r["name"] for r in specs]).values_list(
            "name", flat=True
        )
    )
    if taken:
        raise DomainError(
            Problem(
                "stale_proposal",
                f"Resource name(s) {', '.join(sorted(taken))} were taken since the proposal "
                "was made; build a new proposal.",
                "proposal",
            )
        )
    created = VirtualResource.objects.bulk_create(
        [
            VirtualResource(
                market=proposal.market,
                program=proposal.program,
                name=r["name"],
                scope_kind=proposal.scope_kind,
                scope=r["scope"],
                max_kw=proposal.max_kw,
                participation_model=proposal.program.service,
                created_at=now,
            )
            for r in specs
        ]
    )
    user, label = state_machine.actor(by)
    ResourceTransition.objects.bulk_create(
        [
            ResourceTransition(
                resource=r,
                action="create",
                from_state="",
                to_state=r.state,
                at=now,
                actor=user,
                actor_label=label,
                reason=f"accepted aggregation proposal {proposal.pk}",
            )
            for r in created
        ]
    )
    resource_ids = [r.pk for r, spec in zip(created, specs) for _ in spec["device_ids"]]
    device_ids = [d for spec in specs for d in spec["device_ids"]]
    with connection.cursor() as cursor:
        try:
            with transaction.atomic():
                cursor.execute(
                    """
                    INSERT INTO aggregator_resourcemembership (resource_id, device_id, joined_at, left_at)
                    SELECT u.resource_id, u.device_id, %s, NULL
                    FROM unnest(%s::bigint[], %s::bigint[]) AS u(resource_id, device_id)
                    JOIN enrollment_enrollment e ON e.device_id = u.device_id AND e.program_id = %s AND e.state = 'active'
                    """,
                    [now, resource_ids, device_ids, proposal.program_id],
                )
        except IntegrityError:
            raise DomainError(
                Problem(
                    "stale_proposal",
                    "Some of the proposed devices joined other resources since the "
                    "proposal was made; build a new proposal.",
                    "proposal",
                )
            ) from None
        if cursor.rowcount != len(device_ids):
            raise DomainError(
                Problem(
                    "stale_proposal",
                    f"{len(device_ids) - cursor.rowcount} proposed device(s) are no "
                    "longer actively enrolled; build a new proposal.",
                    "proposal",
                )
            )
    proposal.state = AggregationProposal.State.ACCEPTED
    proposal.decided_at = now
    proposal.save(update_fields=["state", "decided_at"])
    return created


def discard_proposal(*, proposal: AggregationProposal) -> AggregationProposal:
    updated = AggregationProposal.objects.filter(pk=proposal.pk, state=AggregationProposal.State.PROPOSED).update(
        state=AggregationProposal.State.DISCARDED, decided_at=timezone.now()
    )
    if not updated:
        raise InvalidTransition(Problem("invalid_transition", "Only a proposed proposal can be discarded.", "state"))
    proposal.refresh_from_db()
    return proposal
