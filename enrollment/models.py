"""Customers, their sites and devices, consents, and enrollments in programs."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from simple_history.models import HistoricalRecords

from aggregator.core.access.tokens import HashedToken
from aggregator.core.history import TransitionRecord
from aggregator.core.queries import trigram_indexes
from aggregator.core.uploads import UploadJob
from aggregator.reference.models import Market, Program, validate_time_zone
from enrollment.device_types import DeviceType, Fuel, type_constraints
from enrollment.lifecycle import TERMINAL, State


class Customer(models.Model):
    class Kind(models.TextChoices):
        RESIDENTIAL = "residential", "Residential"
        COMMERCIAL = "commercial", "Commercial"
        INDUSTRIAL = "industrial", "Industrial"

    external_ref = models.CharField(
        max_length=64, unique=True, help_text="The aggregator's own customer number (CRM or contract id)."
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    contact_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_ref"]
        indexes = [
            models.Index(Lower("name"), name="customer_name_lower"),
            *trigram_indexes("customer", ("external_ref", "name", "email", "contact_name")),  # the console's search
        ]

    def __str__(self) -> str:
        return f"{self.external_ref} {self.name}"


class Consent(models.Model):
    """What a customer agreed to, when, to which version of the terms.

    Consent records are evidence: never edited, only revoked (and a new one granted).
    """

    class Kind(models.TextChoices):
        PROGRAM_TERMS = "program_terms", "Program terms"
        UTILITY_DATA_SHARING = "utility_data_sharing", "Data sharing with the utility and ISO"
        TELEMETRY = "telemetry", "Device telemetry collection"

    class Method(models.TextChoices):
        WEB = "web", "Web form"
        PAPER = "paper", "Signed paper form"
        PHONE = "phone", "Recorded phone call"
        IMPORT = "import", "Imported from a partner"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="consents")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    program = models.ForeignKey(Program, null=True, blank=True, on_delete=models.PROTECT, related_name="consents")
    terms_version = models.CharField(max_length=20)
    granted_at = models.DateTimeField()
    granted_by = models.CharField(max_length=200, help_text="The person who agreed, as they identified themselves.")
    method = models.CharField(max_length=10, choices=Method.choices)
    evidence_ref = models.CharField(max_length=200, blank=True, help_text="Document, recording or form id.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)

    # Operators' edits, who and when (the console's and the admin's history); set-based writes (the fleet import's SQL, plain bulk_create) leave none; see README, Console.
    history = HistoricalRecords()

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="program_terms", program__isnull=False)
                | (~Q(kind="program_terms") & Q(program__isnull=True)),
                name="consent_program_iff_program_terms",
            ),
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | Q(revoked_at__gte=models.F("granted_at")),
                name="consent_revoked_after_granted",
            ),
        ]
        indexes = [models.Index(fields=["customer", "kind"], name="consent_customer_kind")]

    def __str__(self) -> str:
        return f"{self.customer.external_ref} {self.kind} v{self.terms_version}"


class Site(models.Model):
    """A service point: one utility revenue meter and the devices behind it."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="sites")
    name = models.CharField(max_length=200, blank=True)
    utility = models.CharField(max_length=100, help_text="Distribution utility that owns the meter.")
    meter_id = models.CharField(
        max_length=64, blank=True, help_text="Revenue meter id, unique per utility. Empty until known."
    )
    load_serving_entity = models.CharField(max_length=100, blank=True)
    retail_tariff = models.CharField(max_length=100, blank=True)
    weather_station = models.CharField(
        max_length=32,
        blank=True,
        default="",
        db_default="",  # the fleet importer's COPY names only the columns it fills
        help_text="The weather station whose temperatures weather-driven baselines use.",
    )
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="sites")
    pricing_node = models.CharField(max_length=64, help_text="The market's pricing node (pnode) of the site.")
    zone = models.CharField(max_length=64, help_text="The market's load zone of the site.")
    time_zone = models.CharField(max_length=64, validators=[validate_time_zone])
    address = models.CharField(max_length=250, blank=True)
    city = models.CharField(max_length=100, blank=True)
    region = models.CharField(max_length=50, blank=True, help_text="State or province.")
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, default="US")
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    export_limit_kw = models.DecimalField(
        max_digits=10,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="The most the site may export (its interconnection agreement); empty: no limit known.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    # Operators' edits, who and when (the console's and the admin's history); set-based writes (the fleet import's SQL, plain bulk_create) leave none; see README, Console.
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["utility", "meter_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["utility", "meter_id"], condition=~Q(meter_id=""), name="site_meter_unique_per_utility"
            ),
            models.CheckConstraint(
                condition=Q(latitude__isnull=True) | Q(latitude__gte=-90, latitude__lte=90), name="site_latitude_range"
            ),
            models.CheckConstraint(
                condition=Q(longitude__isnull=True) | Q(longitude__gte=-180, longitude__lte=180),
                name="site_longitude_range",
            ),
            models.CheckConstraint(
                condition=Q(export_limit_kw__isnull=True) | Q(export_limit_kw__gte=0), name="site_export_limit_range"
            ),
        ]
        indexes = [
            models.Index(fields=["market", "pricing_node"], name="site_market_pnode"),
            # The console's sites list is ordered by meter: without it every page sorted every site (~1 s at 750,000).
            models.Index(fields=["meter_id", "id"], name="site_meter_order"),
        ]

    def __str__(self) -> str:
        return f"{self.utility} {self.meter_id or '(no meter)'}"


class RetailProgramParticipation(models.Model):
    """A retail program the site already takes part in, for the double-counting check."""

    class Kind(models.TextChoices):
        UTILITY_DR = "utility_dr", "Utility demand response"
        NET_METERING = "net_metering", "Net metering"
        TIME_OF_USE_EXPORT = "tou_export", "Export compensation program"
        OTHER = "other", "Other retail program"

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="retail_programs")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    name = models.CharField(max_length=150, blank=True)
    starts_on = models.DateField(null=True, blank=True)
    ends_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["site_id", "kind"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(starts_on__isnull=True) | Q(ends_on__gte=models.F("starts_on")),
                name="retail_program_dates_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.site} {self.kind}"


class Gateway(models.Model):
    """A site controller that speaks for the devices behind it."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="gateways")
    manufacturer = models.CharField(max_length=100)
    model = models.CharField(max_length=100, blank=True)
    serial = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["manufacturer", "serial"]
        constraints = [
            models.UniqueConstraint(Lower("manufacturer"), "serial", name="gateway_serial_unique_per_manufacturer"),
        ]

    def __str__(self) -> str:
        return f"gateway {self.manufacturer} {self.serial}"


class Device(models.Model):
    """A distributed energy resource behind a site's meter."""

    class CommunicationPath(models.TextChoices):
        NATIVE_API = "native_api", "Native device API"
        OPENADR3 = "openadr3", "OpenADR 3"
        VENDOR_CLOUD = "vendor_cloud", "Vendor cloud"

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="devices")
    gateway = models.ForeignKey(Gateway, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices")
    device_type = models.CharField(max_length=20, choices=DeviceType.choices)
    manufacturer = models.CharField(max_length=100)
    model = models.CharField(max_length=100)
    serial = models.CharField(max_length=100)
    rated_kw = models.DecimalField(max_digits=10, decimal_places=3, help_text="See enrollment.device_types.")
    charge_kw = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    energy_kwh = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    backup_reserve_pct = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    round_trip_efficiency_pct = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    array_kw_dc = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    min_kw = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    bidirectional = models.BooleanField(default=False, help_text="EV charger or battery that can export (V2G).")
    charge_from_solar_only = models.BooleanField(
        default=False,
        db_default=False,  # the fleet importer's COPY names only the columns it fills
        help_text="A battery that charges only from its site's solar surplus, never from the grid.",
    )
    max_setpoint_offset_f = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    max_event_hours = models.DecimalField(max_digits=4, decimal_places=2, null=True, blank=True)
    min_run_minutes = models.PositiveIntegerField(null=True, blank=True)
    notice_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Notice it needs: never allocated to an event starting sooner."
    )
    ramp_kw_per_minute = models.DecimalField(
        max_digits=10, decimal_places=3, null=True, blank=True, help_text="How fast it can change its output."
    )
    max_event_hours_per_day = models.DecimalField(
        max_digits=4, decimal_places=2, null=True, blank=True, help_text="Event hours it may serve in a local day."
    )
    max_run_hours_per_year = models.DecimalField(
        max_digits=6,
        decimal_places=1,
        null=True,
        blank=True,
        help_text="An engine's permitted hours of non-emergency operation a calendar year (its air permit).",
    )
    fuel = models.CharField(max_length=20, choices=Fuel.choices, null=True, blank=True)
    telemetry_interval_seconds = models.PositiveIntegerField(default=300)
    communication_path = models.CharField(
        max_length=20, choices=CommunicationPath.choices, default=CommunicationPath.NATIVE_API
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    # Operators' edits, who and when (the console's and the admin's history); set-based writes (the fleet import's SQL, plain bulk_create) leave none; see README, Console.
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(Lower("manufacturer"), "serial", name="device_serial_unique_per_manufacturer"),
            models.CheckConstraint(condition=Q(rated_kw__gt=0), name="device_rated_kw_positive"),
            models.CheckConstraint(
                condition=Q(telemetry_interval_seconds__gte=1, telemetry_interval_seconds__lte=3600),
                name="device_telemetry_interval_range",
            ),
            models.CheckConstraint(
                condition=Q(bidirectional=False) | Q(device_type__in=[DeviceType.EV_CHARGER, DeviceType.BATTERY]),
                name="device_bidirectional_only_ev_or_battery",
            ),
            models.CheckConstraint(
                condition=Q(charge_from_solar_only=False) | Q(device_type=DeviceType.BATTERY),
                name="device_solar_only_charging_only_battery",
            ),
            *type_constraints(),
        ]
        indexes = [
            models.Index(fields=["device_type"], name="device_type_idx"),
            # The console's devices sorted by rating, biggest first: walked in order, the page stops at its 50th match
            # instead of sorting every match (0.7 s for a search matching 170,000 of a million devices).
            models.Index(fields=["rated_kw", "id"], name="device_rated_order"),
            # The console's and API's search (`icontains`: UPPER(column) LIKE '%…%') over serial, make and model:
            # trigram indexes, so a serial found among a million devices is an index lookup, not a scan (0.5 s).
            *trigram_indexes("device", ("serial", "manufacturer", "model")),
        ]

    def __str__(self) -> str:
        return f"{self.get_device_type_display()} {self.manufacturer} {self.serial}"


class Enrollment(models.Model):
    """A device's enrollment in a program; its state moves only through services.transition."""

    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="enrollments")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="enrollments")
    state = models.CharField(max_length=20, choices=State.choices, default=State.APPLIED, editable=False)
    applied_at = models.DateTimeField(default=timezone.now, editable=False)
    review_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    review_deadline = models.DateTimeField(null=True, blank=True, editable=False)
    review_outcome = models.CharField(
        max_length=10,
        blank=True,
        editable=False,
        choices=[("approved", "Approved"), ("rejected", "Rejected"), ("lapsed", "Lapsed (deemed approved)")],
    )
    review_decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    utility_reference = models.CharField(max_length=100, blank=True, help_text="The utility's review case number.")
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)
    ended_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    # Operators' edits, who and when (the console's and the admin's history); set-based writes (the fleet import's SQL, plain bulk_create) leave none; see README, Console.
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["-applied_at", "-id"]
        constraints = [
            # Single aggregation: a device has at most one open enrollment at a time.
            models.UniqueConstraint(
                fields=["device"],
                condition=~Q(state__in=sorted(s.value for s in TERMINAL)),  # sorted: a stable migration
                name="enrollment_one_open_per_device",
            ),
        ]
        indexes = [
            models.Index(fields=["program", "state"], name="enrollment_program_state"),
            models.Index(
                fields=["review_deadline"], condition=Q(state=State.UTILITY_REVIEW), name="enrollment_review_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.device} in {self.program} ({self.state})"


class EnrollmentTransition(TransitionRecord):
    """Who moved an enrollment from which state to which, when and why."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=20, choices=State.choices, blank=True)
    to_state = models.CharField(max_length=20, choices=State.choices)
    actor_label = models.CharField(max_length=150, help_text="The user's name, or the system job that acted.")

    def __str__(self) -> str:
        return f"{self.enrollment_id}: {self.from_state or '-'} → {self.to_state}"


class DeviceCredential(HashedToken):
    """A device's (or gateway's) API token, shown once at issue and kept only as a hash."""

    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="credentials")
    gateway = models.ForeignKey(Gateway, null=True, blank=True, on_delete=models.CASCADE, related_name="credentials")
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(device__isnull=False, gateway__isnull=True) | Q(device__isnull=True, gateway__isnull=False),
                name="credential_for_device_xor_gateway",
            ),
        ]

    @property
    def holder(self):
        return self.device or self.gateway

    def devices(self):
        """The devices this token may see and act for: its device, or every device behind its gateway."""
        if self.device_id is not None:
            return Device.objects.filter(pk=self.device_id)
        return Device.objects.filter(gateway_id=self.gateway_id)

    def __str__(self) -> str:
        return f"credential {self.key_id} for {self.holder}"


class DeviceStatus(models.Model):
    """A device's latest reported state (written by the device API's heartbeat).

    No row means the device has not reported yet; capability then falls back to
    planning assumptions (see aggregator.aggregation.capability).
    """

    device = models.OneToOneField(Device, primary_key=True, on_delete=models.CASCADE, related_name="status")
    online = models.BooleanField(default=True)
    last_seen_at = models.DateTimeField()
    state_of_charge_pct = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    ev_plugged_in = models.BooleanField(null=True, blank=True)
    outdoor_temperature_f = models.FloatField(
        null=True, blank=True, help_text="Outdoor temperature the device reported (°F); averaged per zone and hour."
    )
    power_kw = models.DecimalField(
        max_digits=10,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="Positive: import from the grid / consumption; negative: export / generation.",
    )
    mode = models.CharField(
        max_length=40, blank=True, help_text="The device's own operating mode, e.g. self_consumption, backup."
    )
    grid_status = models.CharField(
        max_length=20,
        blank=True,
        default="",
        db_default="",
        choices=[("grid_connected", "Grid-connected"), ("islanded", "Islanded"), ("outage", "Grid outage")],
        help_text="As the device reports it; islanded or in an outage, it serves its site and is never dispatched.",
    )
    firmware = models.CharField(max_length=60, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "device statuses"
        constraints = [
            models.CheckConstraint(
                condition=Q(state_of_charge_pct__isnull=True)
                | Q(state_of_charge_pct__gte=0, state_of_charge_pct__lte=100),
                name="device_status_soc_range",
            ),
        ]

    def __str__(self) -> str:
        return f"status of device {self.device_id}"


class CustomerLogin(models.Model):
    """A customer's own account for the customer portal (operators have roles instead; the two never mix)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_login")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="logins")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.user} for {self.customer}"


class SiteOutage(models.Model):
    """A period a site's devices reported a grid outage (from the heartbeat's grid_status); open while `end` is empty.

    Settlement leaves such days out of the site's baselines and may excuse its event
    intervals from penalties, as the program's settlement terms say.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="outages")
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)
    reported_by = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["site", "start"], name="site_outage_site_start")]
        constraints = [
            models.UniqueConstraint(fields=["site"], condition=Q(end__isnull=True), name="one_open_outage_per_site")
        ]


class EvChargingNeed(models.Model):
    """What an EV charger's customer needs each night: plugged in from `plug_in_hour`, `energy_kwh` added by
    `ready_by_hour` the next morning (local hours). The standing schedule charges it when it costs least."""

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="charging_need")
    plug_in_hour = models.PositiveSmallIntegerField(default=18)
    ready_by_hour = models.PositiveSmallIntegerField(default=7)
    energy_kwh = models.DecimalField(max_digits=6, decimal_places=2)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(plug_in_hour__lte=23, ready_by_hour__lte=23, plug_in_hour__gt=models.F("ready_by_hour")),
                name="ev_need_overnight_session",
            ),
            models.CheckConstraint(condition=Q(energy_kwh__gt=0), name="ev_need_energy_positive"),
        ]


class FleetImport(UploadJob):
    """An operator's upload of a fleet file, imported by a Celery task (enrollment.jobs.import_fleet)."""

    progress_prefix = "fleet-import"

    file = models.FileField(upload_to="fleet-imports/%Y/%m/")

    class Meta(UploadJob.Meta):
        pass

    def __str__(self) -> str:
        return f"fleet import {self.pk} ({self.state})"


class FleetCount(models.Model):
    """The fleet counted: devices by type and status, sites and devices per pricing node, enrollments by state.
    Beat counts it every minute (enrollment.services.count_fleet); the console's fleet page shows the latest
    count with its time, because counting a million devices takes seconds, too long for a page."""

    counted_at = models.DateTimeField()
    seconds = models.FloatField()  # how long the count took
    by_type = models.JSONField()  # [[device type, online, offline or never seen, devices, rated kW]]
    nodes = models.JSONField()  # [[market, pricing node, sites, devices, online, rated kW]]
    enrollment = models.JSONField()  # [[state, enrollments]], the most first

    class Meta:
        indexes = [models.Index(fields=["-counted_at"], name="fleet_count_latest")]

    def __str__(self) -> str:
        return f"fleet count at {self.counted_at:%Y-%m-%d %H:%M:%S}"


class SiteState(models.Model):
    """A site's devices, devices online and state from them, for the console's fleet map: beat keeps it with the
    fleet's count (enrollment.services.refresh_site_states, writing only the sites whose figures changed), because
    grouping a million devices per site on each map request took seconds. Only sites with coordinates are here."""

    class State(models.TextChoices):
        ONLINE = "online", "All devices online"
        PARTIAL = "partial", "Some devices online"
        OFFLINE = "offline", "No device online"
        EMPTY = "empty", "No devices"

    site = models.OneToOneField(Site, on_delete=models.CASCADE, primary_key=True, db_constraint=False, related_name="+")
    market_id = models.BigIntegerField()
    pricing_node = models.CharField(max_length=64)
    latitude = models.FloatField()
    longitude = models.FloatField()
    devices = models.IntegerField()
    online = models.IntegerField()
    state = models.CharField(max_length=8, choices=State.choices)

    class Meta:
        indexes = [models.Index(fields=["latitude", "longitude"], name="site_state_position")]


class SiteCell(models.Model):
    """The sites of one grid cell (SiteCell.SIZE degrees a side), pricing node and state, summed from SiteState at
    each refresh: the zoomed-out map sums these few tens of thousands of rows instead of every site (a coarser
    zoom's cell is 2, 4, 8... of these a side)."""

    ZOOM = 11  # the map zoom whose cells these are: 360 / 2 ** (ZOOM + 3) degrees
    SIZE = 360.0 / 2 ** (ZOOM + 3)

    row = models.IntegerField()  # floor(latitude / SIZE)
    col = models.IntegerField()  # floor(longitude / SIZE)
    market_id = models.BigIntegerField()
    pricing_node = models.CharField(max_length=64)
    state = models.CharField(max_length=8, choices=SiteState.State.choices)
    sites = models.IntegerField()
    devices = models.IntegerField()
    online = models.IntegerField()
    latitude_sum = models.FloatField()  # the sites' mean position is latitude_sum / sites
    longitude_sum = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["row", "col"], name="site_cell_position")]
