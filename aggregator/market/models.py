"""The wholesale side of a virtual resource: what it can deliver (forecasts), what it offers, what the market
awards it, and the telemetry it streams to the market.

Flow: a forecast per resource (hourly for 48 h, and in the market's real-time interval for 2 h) -> an offer per
resource and market (day-ahead or real-time), a price-quantity curve per interval that never exceeds the
forecast's chosen quantile -> submitted through the market's adapter before its deadline -> an award per offer
(what the market cleared, per interval) -> a dispatch event whose origin is the award -> delivery measured by
settlement. Offers are versioned and immutable once submitted: an edit is a new version.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from aggregator.reference.models import OfferDeadline

MarketKind = OfferDeadline.MarketKind


class Forecast(models.Model):
    """What a resource can deliver per interval from `start`: expected kW and its P10/P50/P90 (kW reduction or
    injection the resource can hold if dispatched in that interval)."""

    class Kind(models.TextChoices):
        HOURLY = "hourly", "Hourly, next 48 h"
        REAL_TIME = "real_time", "Real-time intervals, next 2 h"

    class Model(models.TextChoices):
        LEARNED = "learned", "Learned from the fleet's data"
        PERSISTENCE = "persistence", "Persistence"
        NAMEPLATE = "nameplate", "Capability model (planning defaults)"

    resource = models.ForeignKey("aggregator.VirtualResource", on_delete=models.CASCADE, related_name="forecasts")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    model = models.CharField(max_length=12, choices=Model.choices)
    issued_at = models.DateTimeField(help_text="The instant the forecast was made; it uses nothing after it.")
    start = models.DateTimeField(help_text="The first interval's start.")
    interval_minutes = models.PositiveSmallIntegerField()
    expected_kw = ArrayField(models.FloatField())
    p10_kw = ArrayField(models.FloatField())
    p50_kw = ArrayField(models.FloatField())
    p90_kw = ArrayField(models.FloatField())
    inputs = models.JSONField(default=dict, blank=True, help_text="What it learned from: history, members, weather.")

    class Meta:
        ordering = ["-issued_at", "resource_id"]
        indexes = [models.Index(fields=["resource", "kind", "-issued_at"], name="forecast_latest")]
        constraints = [
            models.CheckConstraint(condition=Q(interval_minutes__in=[5, 15, 60]), name="forecast_interval_length"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} forecast of {self.resource_id} at {self.issued_at:%Y-%m-%d %H:%M}"


class OfferState(models.TextChoices):
    DRAFT = "draft", "Draft (awaiting review)"
    APPROVED = "approved", "Approved (submitted at the deadline)"
    SUBMITTED = "submitted", "Submitted"
    ACCEPTED = "accepted", "Accepted by the market"
    REJECTED = "rejected", "Rejected by the market"
    SUPERSEDED = "superseded", "Superseded by a later version"
    EXPIRED = "expired", "Deadline passed unsubmitted"


class Offer(models.Model):
    """One version of a resource's energy offer for a market window (day-ahead: an operating day; real-time: an
    operating hour). Immutable once submitted; every change is a new version of the same window."""

    resource = models.ForeignKey("aggregator.VirtualResource", on_delete=models.PROTECT, related_name="offers")
    market_kind = models.CharField(max_length=10, choices=MarketKind.choices)
    window_start = models.DateTimeField(help_text="The first interval it covers.")
    window_end = models.DateTimeField()
    interval_minutes = models.PositiveSmallIntegerField()
    version = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=12, choices=OfferState.choices, default=OfferState.DRAFT, editable=False)
    forecast = models.ForeignKey(Forecast, on_delete=models.PROTECT, related_name="offers")
    quantile = models.CharField(max_length=3, help_text="The forecast quantile no interval may exceed (p10/p50/p90).")
    deadline = models.DateTimeField(help_text="When the market stops taking it.")
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    built_at = models.DateTimeField(default=timezone.now, editable=False)
    built_by_label = models.CharField(max_length=150, help_text="Who or what built this version.")
    approved_at = models.DateTimeField(null=True, blank=True, editable=False)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True, editable=False)
    submitted_via = models.CharField(max_length=20, blank=True, help_text="The adapter that carried it.")
    submission_ref = models.CharField(max_length=100, blank=True, help_text="The market's receipt for it.")
    warnings = models.JSONField(default=list, blank=True, editable=False)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-window_start", "resource_id", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "market_kind", "window_start", "version"], name="offer_version_unique"
            ),
            models.CheckConstraint(condition=Q(window_end__gt=F("window_start")), name="offer_window_order"),
            models.CheckConstraint(condition=Q(interval_minutes__in=[5, 15, 60]), name="offer_interval_length"),
        ]
        indexes = [models.Index(fields=["state", "deadline"], name="offer_state_deadline")]

    def __str__(self) -> str:
        return f"{self.market_kind} offer of {self.resource_id} from {self.window_start:%Y-%m-%d %H:%M} v{self.version}"


class OfferInterval(models.Model):
    """An interval of an offer: its curve (incremental kW at non-decreasing prices) and operating limits."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="intervals")
    start = models.DateTimeField()
    min_kw = models.DecimalField(max_digits=12, decimal_places=3, default=0)
    max_kw = models.DecimalField(max_digits=12, decimal_places=3)
    segments = models.JSONField(
        help_text="[[kw, price_per_mwh], ...]: each segment's incremental kW at its price, prices non-decreasing."
    )
    ramp_kw_per_minute = models.DecimalField(max_digits=12, decimal_places=3)
    notification_minutes = models.PositiveIntegerField(default=0)
    min_run_minutes = models.PositiveIntegerField(default=0)
    max_run_minutes = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["offer_id", "start"]
        constraints = [
            models.UniqueConstraint(fields=["offer", "start"], name="offer_interval_unique"),
            models.CheckConstraint(condition=Q(min_kw__gte=0) & Q(max_kw__gte=F("min_kw")), name="offer_kw_range"),
        ]


class Award(models.Model):
    """What the market cleared of an offer (day-ahead schedule) or instructs now (real-time dispatch), per
    interval; it becomes a dispatch event, kept as `event`."""

    class Source(models.TextChoices):
        API = "api", "Inbound API"
        ADAPTER = "adapter", "Market adapter"

    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="awards")
    award_ref = models.CharField(max_length=100, help_text="The market's id of the award; a resend is the same award.")
    market_kind = models.CharField(max_length=10, choices=MarketKind.choices)
    source = models.CharField(max_length=10, choices=Source.choices)
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    event = models.OneToOneField(
        "dispatch.DispatchEvent", null=True, blank=True, on_delete=models.PROTECT, related_name="award"
    )
    content = models.JSONField(help_text="The award as received.")

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["offer", "award_ref"], name="award_ref_unique_per_offer")]

    def __str__(self) -> str:
        return f"award {self.award_ref} of offer {self.offer_id}"


class AwardInterval(models.Model):
    award = models.ForeignKey(Award, on_delete=models.CASCADE, related_name="intervals")
    start = models.DateTimeField()
    end = models.DateTimeField()
    kw = models.DecimalField(max_digits=12, decimal_places=3)
    price_per_mwh = models.DecimalField(max_digits=12, decimal_places=4)

    class Meta:
        ordering = ["award_id", "start"]
        constraints = [
            models.UniqueConstraint(fields=["award", "start"], name="award_interval_unique"),
            models.CheckConstraint(condition=Q(end__gt=F("start")) & Q(kw__gte=0), name="award_interval_valid"),
        ]


class TelemetryQuality(models.TextChoices):
    GOOD = "good", "Good"
    POOR = "poor", "Too few members reporting"
    NONE = "none", "No member reporting"


class TelemetrySample(models.Model):
    """A resource's aggregated real-time kW at one scan, from its members' heartbeats."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the unique (resource, at) index leads with it.
    resource = models.ForeignKey(
        "aggregator.VirtualResource", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    at = models.DateTimeField()
    kw = models.FloatField(help_text="Sum of reporting members' kW (positive: consumption).")
    devices_reporting = models.PositiveIntegerField()
    devices_expected = models.PositiveIntegerField()
    quality = models.CharField(max_length=4, choices=TelemetryQuality.choices)

    class Meta:
        ordering = ["resource_id", "-at"]
        constraints = [models.UniqueConstraint(fields=["resource", "at"], name="telemetry_sample_unique")]
        # Samples arrive in time order, so a block range index on `at` is a few pages for millions of rows: what
        # the retention prune needs to find the oldest rows (the unique index serves reads by resource and time).
        indexes = [BrinIndex(fields=["at"], name="telemetry_sample_at_brin", pages_per_range=32)]


class TelemetryScan(models.Model):
    """One scan of a market's resources at an instant of its scan grid, and what became of its push.

    The row is the scan's claim: it is inserted in the same statement as the scan's samples, once per market and
    instant, so a repeated or concurrent scan of that instant writes nothing. An instant with no row was missed
    (the scanner was down or late past it); it is never filled in afterwards.
    """

    class Push(models.TextChoices):
        NOT_CONFIGURED = "none", "No push configured"
        PENDING = "pending", "Waiting to be pushed"
        SENDING = "sending", "Being pushed"
        SENT = "sent", "Pushed"
        FAILED = "failed", "Push failed (sent again with the next push while recent)"
        EXPIRED = "expired", "Never pushed: too old to send"

    id = models.BigAutoField(primary_key=True)
    market = models.ForeignKey("aggregator.Market", on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(help_text="The grid instant the samples stand for.")
    scanned_at = models.DateTimeField(help_text="When the scan ran (a little after `at`).")
    samples = models.PositiveIntegerField(default=0)
    push_state = models.CharField(max_length=8, choices=Push.choices)
    push_attempts = models.PositiveSmallIntegerField(default=0)
    pushed_at = models.DateTimeField(null=True, blank=True)
    push_error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["market_id", "-at"]
        constraints = [models.UniqueConstraint(fields=["market", "at"], name="telemetry_scan_unique")]

    def __str__(self) -> str:
        return f"telemetry scan of {self.market_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class MarketConnection(models.Model):
    """How the platform reaches a market: the adapter that carries offers and awards, and where telemetry is
    pushed. Secrets stay in the environment: this names the variable that holds them."""

    class Adapter(models.TextChoices):
        NONE = "none", "None (offers stay in the platform)"
        FILE = "file", "Files in the market's documented layout"
        HTTP = "http", "HTTP (the market simulator)"

    market = models.OneToOneField("aggregator.Market", on_delete=models.CASCADE, related_name="connection")
    adapter = models.CharField(max_length=10, choices=Adapter.choices, default=Adapter.NONE)
    directory = models.CharField(max_length=500, blank=True, help_text="File adapter: where files are exchanged.")
    layout = models.CharField(
        max_length=60,
        blank=True,
        help_text="File adapter: the layout its files follow, a name in aggregator/market/adapters/layouts/ "
        "(e.g. spp-offer-curve-csv, ercot-ews-offer-xml).",
    )
    base_url = models.URLField(blank=True, help_text="HTTP adapter: the market's offer endpoint base.")
    token_env = models.CharField(
        max_length=100, blank=True, help_text="Environment variable holding the HTTP adapter's bearer token."
    )
    awards_cursor = models.CharField(
        max_length=200,
        blank=True,
        help_text="HTTP adapter: the market's position after the last awards taken in (cleared: fetch them all again).",
    )
    telemetry_push_url = models.URLField(blank=True, help_text="Where each scan's telemetry is POSTed, if anywhere.")
    telemetry_token_env = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.market} via {self.adapter}"


class RefusedAward(models.Model):
    """An award an adapter brought in that the checks refused (over the offer, priced below it, ...): kept for an
    operator to take up with the market. The poll moves past it, so it is not retried by itself; the same award
    seen again only counts up `times_seen`. An award refused on the inbound API is not kept: its sender got the
    refusal in the answer."""

    market = models.ForeignKey("aggregator.Market", on_delete=models.CASCADE, related_name="+")
    award_ref = models.CharField(max_length=100)
    offer_ref = models.CharField(max_length=100, blank=True)
    resource_ref = models.CharField(max_length=64, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now, editable=False)
    last_seen_at = models.DateTimeField(default=timezone.now, editable=False)
    times_seen = models.PositiveIntegerField(default=1)
    content = models.JSONField(help_text="The award as received.")
    problems = models.JSONField(help_text="Why it was refused: [{field, code, message}, ...].")

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(fields=["market", "award_ref", "offer_ref"], name="refused_award_unique"),
        ]

    def __str__(self) -> str:
        return f"refused award {self.award_ref} of offer {self.offer_ref}"


# --- what the flexibility forecast learns from (aggregator.market.forecasting.rollup maintains these) ---


class ForecastRollupHour(models.Model):
    """A resource's members of one device type over one UTC hour, summed from their device readings: the history
    the learned forecast fits on. `kwh / rated_kwh` is the group's load factor, which stays comparable when members
    join, leave or miss readings. A device counts in the resource it was a member of when its reading started."""

    pk = models.CompositePrimaryKey("resource_id", "device_type", "hour")
    resource = models.ForeignKey(
        "aggregator.VirtualResource", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    device_type = models.CharField(max_length=20)
    hour = models.DateTimeField()
    kwh = models.FloatField(help_text="Energy the members read over the hour.")
    device_hours = models.FloatField(help_text="Hours of readings summed over the members (coverage).")
    rated_kwh = models.FloatField(help_text="Members' rated kW x the hours their readings cover.")
    devices = models.PositiveIntegerField()
    rolled_at = models.DateTimeField()


class ChargerHour(models.Model):
    """An EV charger's energy over one UTC hour (what its hour-of-week profile was built from, kept so that a late
    reading re-rolls the hour and the profile takes the difference)."""

    pk = models.CompositePrimaryKey("device_id", "hour")
    device = models.ForeignKey("enrollment.Device", on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField()
    kwh = models.FloatField()
    covered_hours = models.FloatField()
    how = models.PositiveSmallIntegerField(help_text="Hour of the week in the site's time zone, Monday 00:00 = 0.")


class ChargerProfile(models.Model):
    """An EV charger's plug-in pattern by hour of the week (site time): of the hours observed, how many it was
    charging, and the energy and hours of those: probability of charging x mean charging kW."""

    pk = models.CompositePrimaryKey("device_id", "how")
    device = models.ForeignKey("enrollment.Device", on_delete=models.CASCADE, related_name="+", db_index=False)
    how = models.PositiveSmallIntegerField()
    observed_hours = models.IntegerField(default=0)
    charging_hours = models.IntegerField(default=0)
    charging_kwh = models.FloatField(default=0)
    charging_covered_hours = models.FloatField(default=0)


class RollupWatermark(models.Model):
    """How far the forecast's rollup has read the readings (by received_at)."""

    name = models.CharField(max_length=40, primary_key=True)
    received_through = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
