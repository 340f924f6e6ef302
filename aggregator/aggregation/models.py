"""Virtual resources (DER aggregations), their members over time, and their history."""

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import RangeOperators
from django.db import models
from django.db.models import F, Func, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from aggregator.core.history import TransitionRecord
from aggregator.reference.models import Market, Program


class ResourceState(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted to the market"
    REGISTERED = "registered", "Registered"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class ScopeKind(models.TextChoices):
    PRICING_NODE = "pricing_node", "One pricing node"
    ZONE = "zone", "A zone (multi-node, where the market allows it)"


class VirtualResource(models.Model):
    """A DER aggregation the grid operator registers and dispatches like one plant."""

    name = models.CharField(max_length=100)
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="virtual_resources")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="virtual_resources")
    participation_model = models.CharField(max_length=20, choices=Program.Service.choices)
    scope_kind = models.CharField(max_length=20, choices=ScopeKind.choices, default=ScopeKind.PRICING_NODE)
    scope = models.CharField(max_length=64, help_text="The pricing node or zone every member must be in.")
    max_kw = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="Largest capability to build up to (the builder's cap).",
    )
    state = models.CharField(max_length=20, choices=ResourceState.choices, default=ResourceState.DRAFT, editable=False)
    registered_capability_kw = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        editable=False,
        help_text="Capability at submission, updated by every modification after it.",
    )
    market_resource_id = models.CharField(max_length=64, blank=True, help_text="The ISO's id once registered.")
    submitted_at = models.DateTimeField(null=True, blank=True, editable=False)
    registered_at = models.DateTimeField(null=True, blank=True, editable=False)
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    # Operators' edits, who and when (the console's and the admin's history); set-based writes (the fleet import's SQL, plain bulk_create) leave none; see README, Console.
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["market__code", "name"]
        constraints = [
            models.UniqueConstraint(fields=["market", "name"], name="resource_name_unique_per_market"),
            models.CheckConstraint(condition=Q(max_kw__isnull=True) | Q(max_kw__gt=0), name="resource_max_kw_positive"),
        ]
        indexes = [models.Index(fields=["market", "state"], name="resource_market_state")]

    def __str__(self) -> str:
        return f"{self.market.code}/{self.name}"

    @property
    def is_registered(self) -> bool:
        """Changes to a resource the market knows about are reported as modifications."""
        return self.state in (ResourceState.SUBMITTED, ResourceState.REGISTERED, ResourceState.ACTIVE)


class ResourceTransition(TransitionRecord):
    resource = models.ForeignKey(VirtualResource, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=20, choices=ResourceState.choices, blank=True)
    to_state = models.CharField(max_length=20, choices=ResourceState.choices)


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = models.DateTimeField()  # only used inside the exclusion constraint


class ResourceMembership(models.Model):
    """A device's membership of a resource over [joined_at, left_at); left_at null while it lasts.

    Settlement asks who was in a resource on a given day, so rows are closed, never deleted.
    The exclusion constraint keeps one device's periods from overlapping across all
    resources: a device is in at most one resource at any instant, whatever races.
    """

    resource = models.ForeignKey(VirtualResource, on_delete=models.PROTECT, related_name="memberships")
    device = models.ForeignKey("enrollment.Device", on_delete=models.PROTECT, related_name="memberships")
    joined_at = models.DateTimeField(default=timezone.now)
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["resource_id", "joined_at"]
        constraints = [
            ExclusionConstraint(
                name="membership_no_overlap_per_device",
                expressions=[
                    ("device", RangeOperators.EQUAL),
                    (TsTzRange("joined_at", "left_at", models.Value("[)")), RangeOperators.OVERLAPS),
                ],
            ),
            models.CheckConstraint(
                condition=Q(left_at__isnull=True) | Q(left_at__gt=F("joined_at")), name="membership_left_after_joined"
            ),
        ]
        indexes = [
            models.Index(fields=["resource"], condition=Q(left_at__isnull=True), name="membership_current"),
            models.Index(fields=["device", "joined_at"], name="membership_device_history"),
        ]

    def __str__(self) -> str:
        return f"device {self.device_id} in {self.resource_id} from {self.joined_at:%Y-%m-%d}"


class ResourceModification(models.Model):
    """A change to a resource the market knows about, with its effect on capability."""

    class Kind(models.TextChoices):
        MEMBER_ADDED = "member_added", "Member added"
        MEMBER_REMOVED = "member_removed", "Member removed"

    resource = models.ForeignKey(VirtualResource, on_delete=models.CASCADE, related_name="modifications")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    device = models.ForeignKey("enrollment.Device", on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    capability_before_kw = models.DecimalField(max_digits=12, decimal_places=3)
    capability_after_kw = models.DecimalField(max_digits=12, decimal_places=3)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    reported_at = models.DateTimeField(null=True, blank=True, help_text="When it was reported to the market.")

    class Meta:
        ordering = ["at", "id"]

    @property
    def capability_change_kw(self):
        return self.capability_after_kw - self.capability_before_kw


class DevicePerformance(models.Model):
    """What a device delivered in past events against what it was asked for (dispatch writes it)."""

    device = models.OneToOneField(
        "enrollment.Device", primary_key=True, on_delete=models.CASCADE, related_name="performance"
    )
    events = models.PositiveIntegerField(default=0)
    delivered_ratio = models.DecimalField(
        max_digits=6, decimal_places=4, help_text="Delivered kWh / allocated kWh over past events."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(delivered_ratio__gte=0), name="performance_ratio_non_negative"),
        ]


class AggregationProposal(models.Model):
    """The aggregation builder's proposal: resources to create, and what it could not place."""

    class State(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        ACCEPTED = "accepted", "Accepted"
        DISCARDED = "discarded", "Discarded"

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    scope_kind = models.CharField(max_length=20, choices=ScopeKind.choices)
    max_kw = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    event_hours = models.DecimalField(max_digits=4, decimal_places=2)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PROPOSED, editable=False)
    resources = models.JSONField(default=list, help_text="[{name, scope, capability_kw, device_ids}]")
    unplaced = models.JSONField(default=list, help_text="[{scope, reason, code, devices, capability_kw}]")
    ineligible = models.JSONField(
        default=dict, help_text="Devices in the program not eligible to aggregate, by reason."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    seconds = models.FloatField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at"]
