"""Dispatch events, their per-interval targets, allocations, and device commands.

An event asks a virtual resource for kW over [start, end) in intervals. The platform
allocates each interval's target over the resource's devices (stored per device, with
why), then issues one command per device carrying the device's absolute schedule. A
re-allocation (opt-out, shortfall, modification, cancellation) is a new allocation
round: devices whose schedule changes get a new command superseding their last one.
"""

import uuid

import numpy as np
from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField, RangeOperators
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from aggregator.aggregation.models import TsTzRange
from aggregator.core.access.tokens import HashedToken
from aggregator.core.history import TransitionRecord
from dispatch.allocation import explain


class EventState(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    NOTIFIED = "notified", "Notified"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATES = (EventState.SCHEDULED, EventState.NOTIFIED, EventState.ACTIVE)


class DispatchEvent(models.Model):
    class Source(models.TextChoices):
        MARKET_INSTRUCTION = "market_instruction", "Market instruction"
        UTILITY_CALL = "utility_call", "Utility program call"
        OPERATOR_TEST = "operator_test", "Operator test"

    class TargetKind(models.TextChoices):
        REDUCTION = "reduction", "kW reduction against the baseline"
        SETPOINT = "setpoint", "kW the resource holds (injection or load drop) per interval"

    resource = models.ForeignKey("aggregator.VirtualResource", on_delete=models.PROTECT, related_name="events")
    source = models.CharField(max_length=20, choices=Source.choices)
    external_ref = models.CharField(
        max_length=100,
        blank=True,
        help_text="The market's or utility's instruction id; a resend with the same id is the same event.",
    )
    target_kind = models.CharField(max_length=20, choices=TargetKind.choices, default=TargetKind.REDUCTION)
    notify_at = models.DateTimeField(help_text="When devices and customers hear of it.")
    start = models.DateTimeField()
    end = models.DateTimeField()
    ramp_seconds = models.PositiveIntegerField(default=0, help_text="Devices reach their kW this long after start.")
    over_commit_pct = models.DecimalField(
        max_digits=5, decimal_places=2, help_text="Extra kW allocated over the target, for devices that under-deliver."
    )
    state = models.CharField(max_length=20, choices=EventState.choices, default=EventState.SCHEDULED, editable=False)
    replaces = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by")
    warnings = models.JSONField(default=list, blank=True, editable=False)
    allocation_round = models.PositiveIntegerField(default=0, editable=False)
    commands_issued_round = models.PositiveIntegerField(
        default=0, editable=False, help_text="The last allocation round whose commands are all issued."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="event_ends_after_start"),
            models.CheckConstraint(condition=Q(notify_at__lte=F("start")), name="event_notified_by_start"),
            models.CheckConstraint(
                condition=Q(over_commit_pct__gte=0, over_commit_pct__lte=100), name="event_over_commit_range"
            ),
            # Instruction ids are the market's (or utility's); one event per id and resource.
            models.UniqueConstraint(
                fields=["resource", "source", "external_ref"],
                condition=~Q(external_ref=""),
                name="event_external_ref_unique",
            ),
            # One open event per resource at any instant, whatever races; a replacement
            # cancels the event it replaces first.
            ExclusionConstraint(
                name="event_no_overlap_per_resource",
                expressions=[
                    ("resource", RangeOperators.EQUAL),
                    (TsTzRange("start", "end", models.Value("[)")), RangeOperators.OVERLAPS),
                ],
                condition=Q(state__in=["scheduled", "notified", "active"]),
            ),
        ]
        indexes = [
            models.Index(fields=["resource", "start"], name="event_resource_start"),
            models.Index(
                fields=["state", "start"], condition=Q(state__in=["scheduled", "notified", "active"]), name="event_open"
            ),
        ]

    def __str__(self) -> str:
        return f"event {self.pk} on {self.resource_id} {self.start:%Y-%m-%d %H:%M}Z"

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


class EventInterval(models.Model):
    """The kW asked of the resource over [start, end)."""

    event = models.ForeignKey(DispatchEvent, on_delete=models.CASCADE, related_name="intervals")
    start = models.DateTimeField()
    end = models.DateTimeField()
    target_kw = models.DecimalField(max_digits=12, decimal_places=3)

    class Meta:
        ordering = ["event_id", "start"]
        constraints = [
            models.UniqueConstraint(fields=["event", "start"], name="event_interval_unique"),
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="event_interval_ends_after_start"),
            models.CheckConstraint(condition=Q(target_kw__gte=0), name="event_interval_target_non_negative"),
        ]


class EventTransition(TransitionRecord):
    event = models.ForeignKey(DispatchEvent, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=20, choices=EventState.choices, blank=True)
    to_state = models.CharField(max_length=20, choices=EventState.choices)


class AllocationRound(models.Model):
    """One allocation of an event over its devices: the first, or a re-allocation and why."""

    event = models.ForeignKey(DispatchEvent, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    reason = models.CharField(max_length=200)
    first_interval = models.PositiveIntegerField(default=0, help_text="Intervals before this one were already served.")
    created_at = models.DateTimeField(default=timezone.now)
    target_kw = ArrayField(models.FloatField(), help_text="Per interval, with the over-commit margin.")
    allocated_kw = ArrayField(models.FloatField(), help_text="Per interval: the sum over devices.")
    devices = models.PositiveIntegerField(help_text="Devices with kW in some interval.")
    commands_needed = models.PositiveIntegerField(default=0, help_text="Devices this round sends a command to.")
    commands_issued = models.PositiveIntegerField(
        default=0, help_text="Of those, how many have their command (chunks add theirs)."
    )
    notify = models.CharField(max_length=20, blank=True, help_text="What customers are told once its commands are out.")
    chunk_bounds = ArrayField(
        models.BigIntegerField(),
        default=list,
        blank=True,
        help_text="First and last device id of each fan-out chunk, flattened.",
    )
    seconds = models.FloatField(default=0)
    rebound_kw = ArrayField(
        models.FloatField(), default=list, blank=True, help_text="Expected rebound per minute from the event's end."
    )
    rebound_within_limit = models.BooleanField(default=True)

    class Meta:
        ordering = ["event_id", "number"]
        constraints = [models.UniqueConstraint(fields=["event", "number"], name="allocation_round_unique")]


class Allocation(models.Model):
    """A device's current share of an event: kW per interval (the event's intervals in order) and why.

    One row per member device, including those given nothing (offline, opted out, no
    headroom), so the operator sees why. `round` is the round that last changed it; what
    each round told the device is kept in its commands.
    """

    class Reason(models.TextChoices):
        ALLOCATED = "allocated", "Allocated"
        NOT_NEEDED = "not_needed", "Target met by devices with a lighter season"
        OFFLINE = "offline", "Offline"
        OFF_GRID = "off_grid", "Islanded or in a grid outage: serving its own site"
        OPTED_OUT = "opted_out", "Opted out by the customer (or a storm watch)"
        NOT_ENROLLED = "not_enrolled", "Not active in the program"
        NO_HEADROOM = "no_headroom", "No kW available for this window"
        SHORT_NOTICE = "short_notice", "The event starts sooner than the device's notice"
        RUN_TOO_LONG = "run_too_long", "Its minimum run is longer than the event"
        UTILITY_OVERRIDE = "utility_override", "Its distribution utility blocked dispatch in its area"
        REBOUND_LIMIT = "rebound_limit", "Held back by the program's rebound limit"

    # No database foreign keys (db_constraint=False) on this table and the commands': a round writes a row for
    # every member device in one statement, from the members it read with the event locked, and PostgreSQL's check
    # of each key at commit (a KEY SHARE lock on the device's and the event's row) cost as much as the insert itself,
    # 41 us a row in a 300,000-device round (bench_dispatch's event, profiled). A device with rows here cannot be
    # deleted (PROTECT) and an event's rows go with it (CASCADE): Django applies on_delete itself.
    event = models.ForeignKey(
        DispatchEvent, on_delete=models.CASCADE, related_name="allocations", db_index=False, db_constraint=False
    )  # the unique (event, device) index leads with it
    round = models.PositiveIntegerField()
    device = models.ForeignKey("enrollment.Device", on_delete=models.PROTECT, related_name="+", db_constraint=False)
    customer_id = models.BigIntegerField()
    kw = ArrayField(models.FloatField())
    available_kw = ArrayField(models.FloatField())
    reason = models.CharField(max_length=20, choices=Reason.choices)
    rank = models.PositiveIntegerField(null=True, help_text="Order of preference by season burden (1 = lightest).")
    customer_events = models.PositiveIntegerField(
        default=0, help_text="The customer's events this season, when ranked."
    )
    customer_hours = models.FloatField(default=0, help_text="The customer's dispatched hours this season, when ranked.")
    needs_command = models.BooleanField(default=False, help_text="Its round changed what the device must do.")
    customer_cost_per_kwh = models.FloatField(
        null=True,
        blank=True,
        help_text="What a kWh from it costs its customer's bill over the event "
        "(its battery plan's value of stored energy); empty without a plan.",
    )
    restore_offset_seconds = models.PositiveIntegerField(
        default=0, help_text="How long after the event's end it is restored (staggered to hold the rebound down)."
    )

    class Meta:
        ordering = ["event_id", "device_id"]
        constraints = [models.UniqueConstraint(fields=["event", "device"], name="allocation_unique")]
        # (event, round, device): a fan-out chunk reads its devices' range of the round, not the whole event's
        # allocations (which it did through (event, round) alone: every chunk scanned all of them).
        indexes = [models.Index(fields=["event", "round", "device"], name="allocation_event_round_device")]

    @property
    def explanation(self) -> str:

        return explain(
            kind=self.device.device_type,
            available=np.array(self.available_kw),
            kw=np.array(self.kw),
            reason=self.reason,
            rank=self.rank,
            of=getattr(self, "of", None),
            customer_events=self.customer_events,
            customer_hours=self.customer_hours,
            customer_cost=self.customer_cost_per_kwh,
        )


class DeviceCommand(models.Model):
    """What a device is told: its absolute schedule for an event, or that the event is off for it.

    `id` is the command id devices acknowledge; (event, device, sequence) is unique,
    so re-running the fan-out never issues a command twice.
    """

    class Kind(models.TextChoices):
        DISPATCH = "dispatch", "Dispatch"
        UPDATE = "update", "Updated schedule"
        CANCEL = "cancel", "Cancel: return to normal operation"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        OPTED_OUT = "opted_out", "Opted out"
        SUPERSEDED = "superseded", "Superseded by a newer command"
        EXPIRED = "expired", "Expired unacknowledged"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No database foreign keys: see Allocation (a fan-out chunk writes thousands of commands in one statement).
    event = models.ForeignKey(
        DispatchEvent, on_delete=models.CASCADE, related_name="commands", db_index=False, db_constraint=False
    )  # the unique (event, device, ...) indexes lead with it
    device = models.ForeignKey("enrollment.Device", on_delete=models.PROTECT, related_name="+", db_constraint=False)
    sequence = models.PositiveIntegerField(help_text="1 for the first command of the event to this device, then 2, ...")
    round = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    schedule = models.JSONField(help_text='[{"start", "end", "kw"}] in absolute UTC times; kW positive = reduce.')
    ramp_seconds = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(help_text="Execute from here (the event's start; notification comes earlier).")
    expires_at = models.DateTimeField(help_text="The event's end: a command seen after it is not executed.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="First seen by the device (poll or push).")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True, help_text="The device's reason for rejecting or opting out.")

    class Meta:
        ordering = ["event_id", "device_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["event", "device", "sequence"], name="command_sequence_unique"),
            models.UniqueConstraint(fields=["event", "device", "round"], name="command_round_unique"),
        ]
        indexes = [
            # The poll: a device's live commands.
            models.Index(
                fields=["device", "expires_at"], condition=Q(status__in=["pending", "accepted"]), name="command_live"
            ),
        ]


class DeviceOptOut(models.Model):
    """The customer overrode the platform: the device serves no event over [start, end)."""

    device = models.ForeignKey("enrollment.Device", on_delete=models.CASCADE, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    event = models.ForeignKey(
        DispatchEvent,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="opt_outs",
        help_text="The event it was reported against, if any.",
    )
    reason = models.CharField(max_length=200, blank=True)
    storm_watch = models.ForeignKey(
        "StormWatch",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="opt_outs",
        help_text="Set when an operator's storm watch, not the customer, took the device out.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-start"]
        constraints = [models.CheckConstraint(condition=Q(end__gt=F("start")), name="opt_out_ends_after_start")]
        indexes = [models.Index(fields=["device", "end"], name="opt_out_device_end")]


class DeliveryReport(models.Model):
    """A device's measured kW of reduction for an interval of an event (the closed loop reads these)."""

    event = models.ForeignKey(DispatchEvent, on_delete=models.CASCADE, related_name="reports")
    device = models.ForeignKey("enrollment.Device", on_delete=models.PROTECT, related_name="+")
    interval_start = models.DateTimeField()
    delivered_kw = models.FloatField()
    reported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "device", "interval_start"], name="delivery_report_unique")
        ]


class DeviceSeasonBurden(models.Model):
    """How often and how long a device has been dispatched this season (fairness)."""

    device = models.ForeignKey("enrollment.Device", on_delete=models.CASCADE, related_name="+")
    season = models.PositiveSmallIntegerField(help_text="The calendar year, in the market's time zone.")
    events = models.PositiveIntegerField(default=0)
    hours = models.FloatField(default=0)
    opt_outs = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "season"], name="burden_unique")]


class CustomerNotification(models.Model):
    """What a customer was told about an event, through which channel, and whether it went."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(DispatchEvent, on_delete=models.CASCADE, related_name="notifications")
    customer = models.ForeignKey("enrollment.Customer", on_delete=models.PROTECT, related_name="notifications")
    kind = models.CharField(max_length=20, help_text="notified, cancelled, updated")
    channel = models.CharField(max_length=20, help_text="in_app, email, sms")
    message = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["event", "customer", "kind", "channel"], name="notification_once")
        ]


class MarketCredential(HashedToken):
    """A token for the market or utility side to send dispatch instructions (`mkt_...`)."""

    market = models.ForeignKey("aggregator.Market", on_delete=models.CASCADE, related_name="+")
    source = models.CharField(
        max_length=20,
        choices=DispatchEvent.Source.choices[:2],
        help_text="What its instructions are: market instructions or utility calls.",
    )
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.market_id} {self.source} {self.key_id}"


class PushEndpoint(models.Model):
    """Where the platform pushes a device's (or a gateway's devices') new commands, signed.

    Polling stays the source of truth: a push only saves a device the wait for its next
    poll, so a failed push is recorded and retried a few times, never blocking a fan-out.
    """

    device = models.OneToOneField(
        "enrollment.Device", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    gateway = models.OneToOneField(
        "enrollment.Gateway", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    url = models.URLField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(device__isnull=False, gateway__isnull=True) | Q(device__isnull=True, gateway__isnull=False),
                name="push_for_device_xor_gateway",
            )
        ]

    def __str__(self) -> str:
        return f"push to {self.url}"


class DeviceSchedule(models.Model):
    """A battery's standing plan for one local day, made to cut its site's bill (dispatch.schedules).

    The device follows it outside dispatch events; a dispatch command overrides it for the
    command's window. kW positive = discharge (less import), negative = charge.
    """

    device = models.ForeignKey("enrollment.Device", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="The local day (the site's time zone) it covers.")
    start = models.DateTimeField(help_text="The day's first interval start.")
    step_seconds = models.PositiveIntegerField()
    kw = ArrayField(models.FloatField())
    energy_kwh = ArrayField(models.FloatField(), help_text="Planned state of energy at each interval's end.")
    reserve_kwh = models.FloatField(help_text="The backup reserve the plan keeps.")
    value_per_kwh = ArrayField(
        models.FloatField(),
        default=list,
        blank=True,
        help_text="$ a kWh in store at each interval's end saves the site's bill (the plan's dual "
        "prices): what a dispatch event taking it costs the customer.",
    )
    site_cost = models.DecimalField(
        max_digits=12, decimal_places=4, help_text="The site's day with this plan ($, forecast)."
    )
    site_cost_without = models.DecimalField(
        max_digits=12, decimal_places=4, help_text="The same day with the battery idle."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "day"], name="device_schedule_once_a_day")]


class StormWatch(models.Model):
    """Ahead of severe weather, an operator keeps a zone's (or some pricing nodes') devices home for a window:
    batteries hold a full charge, and every device leaves the events overlapping the window (dispatch.resilience)."""

    market = models.ForeignKey("aggregator.Market", on_delete=models.PROTECT, related_name="+")
    zone = models.CharField(max_length=64, blank=True)
    pricing_nodes = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200)
    devices = models.PositiveIntegerField(default=0, help_text="Devices it covered when declared.")
    events = models.PositiveIntegerField(default=0, help_text="Events its devices left when declared.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="storm_watch_ends_after_start"),
            models.CheckConstraint(condition=~Q(zone="") | ~Q(pricing_nodes=[]), name="storm_watch_has_a_scope"),
        ]

    def __str__(self) -> str:
        return f"storm watch {self.pk}: {self.zone or ', '.join(self.pricing_nodes)} {self.start:%Y-%m-%d %H:%M}"


class UtilityCredential(HashedToken):
    """A distribution utility's token for its overrides API (`utl_...`, /api/utility/v1/)."""

    utility = models.ForeignKey("aggregator.Utility", on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"{self.utility_id} {self.key_id}"


class UtilityOverride(models.Model):
    """A distribution utility blocks (cap empty) or caps dispatch of its customers' devices in an area for a window
    (a feeder outage, a switching order, a loaded substation). Allocation respects it (dispatch.selectors) and the
    event page says which kW it took."""

    utility = models.ForeignKey("aggregator.Utility", on_delete=models.PROTECT, related_name="overrides")
    market = models.ForeignKey("aggregator.Market", on_delete=models.PROTECT, related_name="+")
    zone = models.CharField(max_length=64, blank=True, help_text="The market zone of the area, or…")
    pricing_nodes = ArrayField(models.CharField(max_length=64), default=list, blank=True, help_text="…its nodes.")
    start = models.DateTimeField()
    end = models.DateTimeField()
    cap_kw = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="kW the area's devices may give together; empty: none (blocked).",
    )
    reason = models.CharField(max_length=200)
    created_by_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="utility_override_window"),
            models.CheckConstraint(
                condition=Q(cap_kw__isnull=True) | Q(cap_kw__gte=0), name="utility_override_cap_range"
            ),
        ]
        indexes = [models.Index(fields=["market", "end"], name="utility_override_market_end")]

    def __str__(self) -> str:
        what = "blocks" if self.cap_kw is None else f"caps at {self.cap_kw} kW"
        return f"{self.utility} {what} {self.zone or ', '.join(self.pricing_nodes)} {self.start:%Y-%m-%d %H:%M}"
