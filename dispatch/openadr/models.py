"""The OpenADR 3 VTN's objects, and how they map onto the platform's own.

Each object keeps the columns the VTN filters, joins and authorises on, and the rest of
its specification fields as received in `body` (already validated by openadr.schema),
so what a client wrote is what it reads back.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from aggregator.core.access.tokens import HashedToken

# The OpenADR versions the VTN speaks, each at its own base path (/openadr3/<version>/) over the same objects.
V301, V310 = "3.0.1", "3.1.0"
VERSIONS = (V301, V310)
# Each role's scopes in each version's words: 3.1 splits a VEN's reading into read_targets (programs, events)
# and read_ven_objects (its VEN, resources, reports, subscriptions), and names business logic's read_bl.
BL_SCOPES = {
    V301: ("read_all", "write_programs", "write_events", "write_subscriptions", "write_vens"),
    V310: (
        "read_all",
        "read_bl",
        "read_targets",
        "read_ven_objects",
        "write_programs",
        "write_events",
        "write_subscriptions",
        "write_vens",
    ),
}
VEN_SCOPES = {
    V301: ("read_all", "write_reports", "write_subscriptions", "write_vens"),
    V310: ("read_targets", "read_ven_objects", "write_reports", "write_subscriptions", "write_vens"),
}


class Client(HashedToken):
    """OAuth 2.0 client credentials for the VTN: a business-logic system or a VEN.

    The secret (`oac_...`) is shown once and stored as a hash. A VEN client belongs to a
    site: the VEN it registers (or is bound to) controls that site's equipment.
    """

    class Role(models.TextChoices):
        BUSINESS_LOGIC = "bl", "Business logic"
        VEN = "ven", "VEN"

    client_id = models.SlugField(max_length=64, unique=True)
    role = models.CharField(max_length=3, choices=Role.choices)
    site = models.ForeignKey(
        "enrollment.Site",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="For a VEN client: the site whose equipment its VEN controls.",
    )
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "OpenADR client"
        constraints = [
            models.CheckConstraint(
                condition=Q(role="bl", site__isnull=True) | Q(role="ven", site__isnull=False),
                name="openadr_client_site_for_vens_only",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} ({self.get_role_display()})"

    def scopes(self, version: str = V301) -> tuple[str, ...]:
        """The scopes of its role in that version's words."""
        return (BL_SCOPES if self.role == self.Role.BUSINESS_LOGIC else VEN_SCOPES)[version]

    def may_ask_for(self) -> set[str]:
        """The scopes a token request of this client may name: its role's, in any version's words."""
        return {scope for version in VERSIONS for scope in self.scopes(version)}


class AccessToken(HashedToken):
    """A bearer token issued by /auth/token; expires, and dies with its client's revocation."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="tokens")
    scopes = ArrayField(models.CharField(max_length=40))


class Stamped(models.Model):
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    modified_at = models.DateTimeField(default=timezone.now, editable=False)
    body = models.JSONField(default=dict, blank=True, help_text="The object's other specification fields, as written.")

    class Meta:
        abstract = True


class Program(Stamped):
    """An OpenADR program; `platform_program` maps it onto one of the platform's programs."""

    program_name = models.CharField(max_length=128, unique=True)
    platform_program = models.OneToOneField(
        "aggregator.Program", null=True, blank=True, on_delete=models.SET_NULL, related_name="openadr_program"
    )
    targets = models.JSONField(null=True, blank=True)
    profile = models.CharField(
        max_length=20,
        blank=True,
        help_text="A field profile its objects are checked against (openadr.profiles; advisory).",
    )

    class Meta:
        verbose_name = "OpenADR program"

    def __str__(self) -> str:
        return self.program_name


class Ven(Stamped):
    """A VEN: a client with the VEN role and the site whose equipment it controls."""

    ven_name = models.CharField(max_length=128, unique=True)
    client = models.OneToOneField(
        Client,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ven",
        help_text="The VEN client that acts as this VEN.",
    )
    site = models.ForeignKey("enrollment.Site", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    attributes = models.JSONField(null=True, blank=True)
    targets = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = "VEN"

    def __str__(self) -> str:
        return self.ven_name


class Resource(Stamped):
    """A VEN's resource; `device` maps it onto an enrolled device, which then takes part in dispatch through it."""

    class Signal(models.TextChoices):
        SETPOINT = "DISPATCH_SETPOINT_RELATIVE", "kW relative to normal operation (negative: less import)"
        SIMPLE = "SIMPLE", "SIMPLE level 0-3, for devices that take only levels"

    ven = models.ForeignKey(Ven, on_delete=models.CASCADE, related_name="resources")
    resource_name = models.CharField(max_length=128)
    device = models.OneToOneField(
        "enrollment.Device", null=True, blank=True, on_delete=models.SET_NULL, related_name="openadr_resource"
    )
    signal = models.CharField(
        max_length=30,
        choices=Signal.choices,
        default=Signal.SETPOINT,
        help_text="What the VTN's events for this resource carry.",
    )
    attributes = models.JSONField(null=True, blank=True)
    targets = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = "VEN resource"
        constraints = [models.UniqueConstraint("ven", "resource_name", name="openadr_resource_name_unique_per_ven")]

    def __str__(self) -> str:
        return f"{self.ven.ven_name}/{self.resource_name}"


class LiveEvents(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class Event(Stamped):
    """An OpenADR event: written by a business-logic client, or made by the platform from a dispatch event
    (one per device resource, targeted at its VEN and resource, carrying the device's allocation)."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="events")
    event_name = models.CharField(max_length=256, null=True, blank=True)
    priority = models.PositiveIntegerField(null=True, blank=True)
    targets = models.JSONField(null=True, blank=True)
    target_keys = ArrayField(
        models.CharField(max_length=300),
        default=list,
        blank=True,
        help_text='"TYPE:value" of every target, for filtering.',
    )
    dispatch_event = models.ForeignKey(
        "dispatch.DispatchEvent", null=True, blank=True, on_delete=models.CASCADE, related_name="openadr_events"
    )
    resource = models.ForeignKey(Resource, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    deleted_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Deleted through the API or by a cancellation, but kept: reports refer to it.",
    )

    objects = models.Manager()
    live = LiveEvents()

    class Meta:
        verbose_name = "OpenADR event"
        constraints = [
            models.UniqueConstraint("dispatch_event", "resource", name="openadr_event_once_per_dispatch_resource")
        ]
        indexes = [models.Index(fields=["program", "id"])]

    def remove(self) -> None:
        """Delete it, or where reports refer to it, hide it from the API for good."""
        if self.reports.exists():
            self.deleted_at = timezone.now()
            self.save(update_fields=["deleted_at"])
        else:
            self.delete()


class Report(Stamped):
    """A report a VEN posted for an event; its readings land in the platform's telemetry (openadr.mapping)."""

    class PeriodFrom(models.TextChoices):
        REPORT = "report", "The report's own intervalPeriods"
        EVENT = "event", "The event's intervalPeriods, the report giving none for some intervals"
        RECEIPT = "receipt", "The time the report was received, neither the report nor its event giving one"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="reports")
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="reports")
    client_name = models.CharField(max_length=128)
    report_name = models.CharField(max_length=256, null=True, blank=True)
    ven = models.ForeignKey(Ven, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+")
    period_from = models.CharField(
        max_length=8,
        choices=PeriodFrom.choices,
        default=PeriodFrom.REPORT,
        help_text="Where the times of its readings came from (intervalPeriod is optional in a report).",
    )

    class Meta:
        verbose_name = "OpenADR report"


class Subscription(Stamped):
    """A client's webhook for operations on a program's objects."""

    program = models.ForeignKey(
        Program,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        help_text="None: every program's objects (3.1 makes programID optional).",
    )
    client_name = models.CharField(max_length=128)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="subscriptions")
    object_operations = models.JSONField(help_text="As written, with operations in the definition's words (CREATE…).")
    targets = models.JSONField(null=True, blank=True)
    version = models.CharField(
        max_length=8,
        default="3.0.1",
        help_text="The OpenADR version it was written through: its notifications speak that version.",
    )

    class Meta:
        verbose_name = "OpenADR subscription"
