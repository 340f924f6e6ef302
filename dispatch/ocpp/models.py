"""EV chargers that speak OCPP to the platform: their identity and password, their connection, their sessions."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from aggregator.core.access.tokens import HashedToken


class Charger(models.Model):
    """An enrolled EV charger reached over OCPP: who it is on the wire, where it is connected, what it reported.

    One row per device, made when its first password is issued. The identity (its charge point id, the
    last segment of the URL it connects to) is the device's serial number.
    """

    class Protocol(models.TextChoices):
        V16 = "ocpp1.6", "OCPP 1.6J"
        V201 = "ocpp2.0.1", "OCPP 2.0.1"

    device = models.OneToOneField("enrollment.Device", on_delete=models.CASCADE, related_name="ocpp_charger")
    identity = models.CharField(max_length=48, unique=True, help_text="Its charge point id: the enrolled serial.")
    protocol = models.CharField(max_length=12, choices=Protocol.choices, blank=True, help_text="As last negotiated.")
    connected = models.BooleanField(default=False)
    node = models.CharField(max_length=120, blank=True, help_text="The OCPP server process holding its connection.")
    connected_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_action = models.CharField(max_length=40, blank=True, help_text="The last message it sent.")
    vendor = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=50, blank=True)
    serial_number = models.CharField(max_length=50, blank=True, help_text="As its BootNotification says.")
    firmware = models.CharField(max_length=60, blank=True)
    booted_at = models.DateTimeField(null=True, blank=True)
    connectors = models.JSONField(default=dict, blank=True, help_text="Connector (EVSE) id -> its last status.")
    register_wh = models.FloatField(
        null=True, blank=True, help_text="Its energy register at the last clock-aligned meter value (Wh)."
    )
    register_at = models.DateTimeField(null=True, blank=True)
    applies_profile = models.BooleanField(
        null=True,
        blank=True,
        help_text="Whether its composite schedule (GetCompositeSchedule) holds its last accepted dispatch profile's "
        "limit; empty: not known (not asked, or it did not answer).",
    )
    composite_checked_at = models.DateTimeField(null=True, blank=True)
    plan_answer = models.CharField(max_length=20, blank=True, help_text="Its answer to the nightly plan's profile.")
    plan_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["identity"]

    def __str__(self) -> str:
        return f"OCPP charger {self.identity}"


class ChargerCredential(HashedToken):
    """A charger's HTTP Basic password (OCPP security profiles 1 and 2), shown once and kept as a hash."""

    charger = models.ForeignKey(Charger, on_delete=models.CASCADE, related_name="credentials")
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"password {self.key_id} of {self.charger}"


class ChargingSession(models.Model):
    """A charging transaction as the charger reported it (StartTransaction / StopTransaction, TransactionEvent)."""

    charger = models.ForeignKey(Charger, on_delete=models.CASCADE, related_name="sessions")
    device = models.ForeignKey("enrollment.Device", on_delete=models.CASCADE, related_name="+")
    transaction_id = models.CharField(
        max_length=36, help_text="2.0.1: the charger's; 1.6: the platform's (this row's id)."
    )
    connector = models.PositiveIntegerField(default=1)
    id_tag = models.CharField(max_length=36, blank=True)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    meter_start_wh = models.FloatField(null=True, blank=True)
    meter_stop_wh = models.FloatField(null=True, blank=True, help_text="The register at its end, or as last reported.")
    energy_kwh = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    stop_reason = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["charger", "transaction_id"], name="ocpp_session_unique"),
            models.CheckConstraint(
                condition=Q(stopped_at__isnull=True) | Q(stopped_at__gte=models.F("started_at")),
                name="ocpp_session_stops_after_start",
            ),
        ]
        indexes = [models.Index(fields=["device", "started_at"], name="ocpp_session_device_start")]
