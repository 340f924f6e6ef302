"""Reference data every domain app stands on: markets and programs, interval meter data, prices, tariffs.

Market rules differ by ISO and change with tariffs, so every number a rule needs
(review period, minimum size, settlement interval, baseline methods) is a column
here, seeded with the published defaults and edited by operators, never a constant
in code.

`Reading` is one PostgreSQL table partitioned by month on `start` (created in the
migration with SQL, since Django does not declare partitioned tables); its primary
key is (meter_kind, meter_id, start). Readings are written only by
aggregator.reference.readings (COPY into a staging table, then one set-based upsert); a
corrected value replaces the stored one and the old one is kept in ReadingRevision.
See deploy/README.md for the partition and retention plan.
"""

import zoneinfo

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from aggregator.reference import tariffs


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name.", code="invalid_time_zone")


class Market(models.Model):
    """A wholesale market (ISO/RTO) and the Order 2222 parameters its tariff sets."""

    code = models.SlugField(max_length=16, unique=True, help_text="Short code, e.g. PJM.")
    name = models.CharField(max_length=100)
    time_zone = models.CharField(
        max_length=64,
        validators=[validate_time_zone],
        help_text="The market's local time (MISO runs on Eastern Standard Time all year).",
    )
    min_aggregation_kw = models.DecimalField(max_digits=10, decimal_places=3, default=100)
    multi_node_allowed = models.BooleanField(
        default=False, help_text="Whether an aggregation may span more than one pricing node."
    )
    utility_review_days = models.PositiveSmallIntegerField(
        default=60, help_text="Days the distribution utility has to review a DER joining an aggregation."
    )
    review_lapse_approves = models.BooleanField(
        default=False,
        help_text="Whether a utility review that passes its deadline without a decision counts as approval.",
    )
    settlement_interval_minutes = models.PositiveSmallIntegerField(
        default=5, choices=[(5, "5 minutes"), (15, "15 minutes"), (60, "60 minutes")]
    )
    baseline_methods = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    min_der_kw = models.DecimalField(
        max_digits=10,
        decimal_places=3,
        default=0,
        help_text="The smallest DER facility (a site's devices together, kW) an aggregation may include; 0: none.",
    )
    max_aggregation_injection_kw = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="The most an aggregation may inject (its members' injecting kW together); empty: no limit.",
    )
    # The wholesale side (aggregator.market): how offers are made and telemetry is sent.
    real_time_interval_minutes = models.PositiveSmallIntegerField(
        default=5,
        choices=[(5, "5 minutes"), (15, "15 minutes")],
        help_text="The real-time market's interval: real-time offers and forecasts use it.",
    )
    offer_price_floor_per_mwh = models.DecimalField(
        max_digits=10, decimal_places=2, default=-150, help_text="The lowest price an energy offer may name ($/MWh)."
    )
    offer_price_cap_per_mwh = models.DecimalField(
        max_digits=10, decimal_places=2, default=1000, help_text="The highest price an energy offer may name ($/MWh)."
    )
    max_offer_segments = models.PositiveSmallIntegerField(
        default=10, help_text="Price-quantity segments an offer curve may have."
    )
    telemetry_scan_seconds = models.PositiveSmallIntegerField(
        default=60, help_text="How often the market takes a resource's real-time telemetry."
    )
    telemetry_min_reporting_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=75,
        help_text="Below this share of members reporting, a telemetry value is flagged as poor quality.",
    )

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(min_aggregation_kw__gt=0), name="market_min_size_positive"),
            models.CheckConstraint(
                condition=Q(offer_price_cap_per_mwh__gt=models.F("offer_price_floor_per_mwh")),
                name="market_offer_cap_above_floor",
            ),
            models.CheckConstraint(
                condition=Q(max_offer_segments__gte=1, max_offer_segments__lte=50), name="market_offer_segments_range"
            ),
            models.CheckConstraint(
                condition=Q(telemetry_scan_seconds__gte=2, telemetry_scan_seconds__lte=3600),
                name="market_telemetry_scan_range",
            ),
            models.CheckConstraint(
                condition=Q(telemetry_min_reporting_pct__gte=0, telemetry_min_reporting_pct__lte=100),
                name="market_telemetry_reporting_range",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class Program(models.Model):
    """A program devices enroll in: a wholesale participation or a utility program."""

    class Service(models.TextChoices):
        ENERGY = "energy", "Energy"
        CAPACITY = "capacity", "Capacity"
        ANCILLARY = "ancillary", "Ancillary / regulation"
        DEMAND_RESPONSE = "demand_response", "Demand response"

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="programs")
    code = models.SlugField(max_length=40)
    name = models.CharField(max_length=150)
    service = models.CharField(max_length=20, choices=Service.choices)
    terms_version = models.CharField(
        max_length=20, help_text="Version of the program terms a customer must have consented to."
    )
    utility_review_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Overrides the market's review period when set."
    )
    excluded_retail_programs = ArrayField(
        models.CharField(max_length=30),
        default=list,
        blank=True,
        help_text=(
            "Kinds of retail program whose participants this program may not count "
            "(no double counting), e.g. utility_dr, net_metering."
        ),
    )
    is_open = models.BooleanField(default=True, help_text="Whether new enrollments are accepted.")
    min_backup_reserve_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=10,
        help_text="The lowest backup reserve a customer may set on a battery in this program.",
    )
    max_backup_reserve_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=100,
        help_text="The highest backup reserve a customer may set (the rest is what the program can count on).",
    )
    typical_event_hours = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        default=4,
        help_text="Event length capability is quoted for (energy-limited devices give less over longer events).",
    )

    class CapabilityRule(models.TextChoices):
        WARN = "warn", "Accept with a warning"
        REFUSE = "refuse", "Refuse"

    above_capability = models.CharField(
        max_length=10,
        choices=CapabilityRule.choices,
        default=CapabilityRule.WARN,
        help_text="What to do with a dispatch event asking a resource for more kW than it has available.",
    )
    over_commit_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=10,
        help_text="kW allocated above an event's target, for devices that under-deliver (an event may override).",
    )

    rebound_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=80,
        help_text="Share of the energy thermostats and water heaters shed that they draw back after an event.",
    )
    rebound_minutes = models.PositiveSmallIntegerField(
        default=60, help_text="Minutes over which the rebound comes back (highest at once, falling to nothing)."
    )
    rebound_limit_kw = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="The most a resource's rebound may peak at: restores are staggered to keep within it.",
    )

    class OfferQuantile(models.TextChoices):
        P10 = "p10", "P10 (firm: delivered nine times in ten)"
        P50 = "p50", "P50 (the median)"
        P90 = "p90", "P90 (optimistic)"

    offer_quantile = models.CharField(
        max_length=3,
        choices=OfferQuantile.choices,
        default=OfferQuantile.P10,
        help_text="The forecast quantile an energy offer may never exceed.",
    )
    auto_submit_offers = models.BooleanField(
        default=False,
        help_text="Submit offers built for this program's resources without an operator's approval.",
    )

    # Operators' edits, who and when (the console's and the admin's history); set-based writes (the fleet import's SQL, plain bulk_create) leave none; see README, Console.
    history = HistoricalRecords()

    class Meta:
        ordering = ["market__code", "code"]
        constraints = [
            models.UniqueConstraint(fields=["market", "code"], name="program_code_unique_per_market"),
            models.CheckConstraint(
                condition=Q(typical_event_hours__gt=0, typical_event_hours__lte=24), name="program_event_hours_range"
            ),
            models.CheckConstraint(
                condition=Q(rebound_pct__gte=0, rebound_pct__lte=200, rebound_minutes__gte=1, rebound_minutes__lte=720),
                name="program_rebound_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.market.code}/{self.code}"

    @property
    def review_days(self) -> int:
        return self.utility_review_days if self.utility_review_days is not None else self.market.utility_review_days


# Interval meter data, prices and tariffs. Their tables and migrations belong to the settlement app,
# where they began (app_label below); the code that reads and writes them is reference data, below
# every domain app, since dispatch and enrollment stand on it as much as settlement does.


class MeterKind(models.IntegerChoices):
    SITE = 1, "Site revenue meter"
    DEVICE = 2, "Device meter"


class Quality(models.IntegerChoices):
    ACTUAL = 1, "actual"
    ESTIMATED = 2, "estimated"
    MISSING = 3, "missing"


class Reading(models.Model):
    pk = models.CompositePrimaryKey("meter_kind", "meter_id", "start")
    meter_kind = models.SmallIntegerField(choices=MeterKind.choices)
    meter_id = models.BigIntegerField(help_text="The site id (site meter) or device id (device meter).")
    start = models.DateTimeField()
    interval_seconds = models.IntegerField()
    kwh = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, help_text="Energy over the interval; null when missing."
    )
    quality = models.SmallIntegerField(choices=Quality.choices)
    received_at = models.DateTimeField(help_text="When this value arrived (a correction moves it).")
    revision = models.IntegerField(default=1, help_text="1 for the first value; +1 for each correction.")

    class Meta:
        app_label = "settlement"
        managed = False
        db_table = "settlement_reading"


class ReadingMeter(models.Model):
    """A meter that has been written: writers of one meter take turns on its row.

    Whether a batch overlaps stored intervals of another length is checked before it is
    written, and two batches in flight cannot see each other's rows: each locks its meters'
    rows first (a row lock lives in the row, so a batch of thousands of meters takes no
    lock-table slots, which advisory locks would). No exclusion constraint: PostgreSQL 15 has
    none on a partitioned table, and a GiST index per partition would slow every insert.
    """

    pk = models.CompositePrimaryKey("meter_kind", "meter_id")
    meter_kind = models.SmallIntegerField(choices=MeterKind.choices)
    meter_id = models.BigIntegerField()

    class Meta:
        app_label = "settlement"
        db_table = "settlement_readingmeter"


class ReadingRevision(models.Model):
    """A value a correction replaced: settlement can tell what changed after it ran."""

    meter_kind = models.SmallIntegerField(choices=MeterKind.choices)
    meter_id = models.BigIntegerField()
    start = models.DateTimeField()
    interval_seconds = models.IntegerField()
    kwh = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    quality = models.SmallIntegerField(choices=Quality.choices)
    revision = models.IntegerField()
    received_at = models.DateTimeField()
    replaced_at = models.DateTimeField()

    class Meta:
        app_label = "settlement"
        ordering = ["meter_kind", "meter_id", "start", "revision"]
        indexes = [models.Index(fields=["meter_kind", "meter_id", "start"], name="revision_meter_start")]


class EnergyPrice(models.Model):
    """A market's energy price at a pricing node for one interval ($/MWh): what reductions are paid at.

    Loaded from the market's published prices (`manage.py import_prices`); a re-import of the
    same interval replaces the price (markets correct them) and moves `imported_at`.
    """

    market = models.ForeignKey("aggregator.Market", on_delete=models.PROTECT, related_name="+")
    node = models.CharField(max_length=64, help_text="The pricing node (pnode), as sites name it.")
    start = models.DateTimeField()
    interval_minutes = models.PositiveSmallIntegerField()
    price_per_mwh = models.DecimalField(max_digits=12, decimal_places=4)
    imported_at = models.DateTimeField()

    class Meta:
        app_label = "settlement"
        constraints = [models.UniqueConstraint(fields=["market", "node", "start"], name="energy_price_unique")]

    def __str__(self) -> str:
        return f"{self.node} {self.start:%Y-%m-%d %H:%M} {self.price_per_mwh} $/MWh"


class Tariff(models.Model):
    """One version of a retail tariff (see aggregator.reference.tariffs for the definition's form)."""

    utility = models.CharField(max_length=100)
    code = models.CharField(max_length=100, help_text="What sites name in retail_tariff.")
    name = models.CharField(max_length=200)
    effective_from = models.DateField()
    definition = models.JSONField(help_text="The whole tariff, as loaded (aggregator.reference.tariffs).")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        app_label = "settlement"
        ordering = ["utility", "code", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["utility", "code", "effective_from"], name="tariff_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.utility}/{self.code} from {self.effective_from}"

    def spec(self):

        return tariffs.parse(self.definition)

    def clean(self):
        from django.core.exceptions import ValidationError

        try:
            spec = tariffs.parse(self.definition)
        except tariffs.TariffInvalid as refused:
            raise ValidationError({"definition": [f"{p.field}: {p.message}" for p in refused.problems]}) from None
        self.utility, self.code, self.name, self.effective_from = (
            spec.utility,
            spec.code,
            spec.name,
            spec.effective_from,
        )
        same = Tariff.objects.filter(utility=spec.utility, code=spec.code, effective_from=spec.effective_from).exclude(
            pk=self.pk
        )
        if same.exists():
            raise ValidationError(
                {"definition": f"{spec.utility}/{spec.code} already has a version from {spec.effective_from}."}
            )


class OfferDeadline(models.Model):
    """When a market stops taking offers: day-ahead at a local time some days before the operating day,
    real-time some minutes before the interval (or hour) it covers. A day type's own row wins over `any`."""

    class MarketKind(models.TextChoices):
        DAY_AHEAD = "day_ahead", "Day-ahead"
        REAL_TIME = "real_time", "Real-time"

    class DayType(models.TextChoices):
        ANY = "any", "Any day"
        WEEKDAY = "weekday", "Weekday"
        WEEKEND = "weekend", "Saturday or Sunday"
        HOLIDAY = "holiday", "Market holiday"

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="offer_deadlines")
    market_kind = models.CharField(max_length=10, choices=MarketKind.choices)
    day_type = models.CharField(
        max_length=10, choices=DayType.choices, default=DayType.ANY, help_text="Of the day the offer is submitted on."
    )
    local_time = models.TimeField(null=True, blank=True, help_text="Day-ahead: the market's local time it closes.")
    days_before = models.PositiveSmallIntegerField(
        default=1, help_text="Day-ahead: days before the operating day it closes."
    )
    minutes_before = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Real-time: minutes before the operating hour it closes."
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text="The clock `local_time` is stated in, when not the market's (MISO's day runs on Eastern Standard "
        "Time, its day-ahead market closes at 10:30 Eastern prevailing time).",
    )
    source = models.CharField(max_length=200, blank=True, help_text="Where the rule is published.")

    class Meta:
        ordering = ["market__code", "market_kind", "day_type"]
        constraints = [
            models.UniqueConstraint(fields=["market", "market_kind", "day_type"], name="offer_deadline_unique"),
            models.CheckConstraint(
                condition=(Q(market_kind="day_ahead") & Q(local_time__isnull=False) & Q(minutes_before__isnull=True))
                | (Q(market_kind="real_time") & Q(local_time__isnull=True) & Q(minutes_before__isnull=False)),
                name="offer_deadline_kind_fields",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.market} {self.market_kind} ({self.day_type})"


SMALL_UTILITY_MWH = 4_000_000  # FERC Order 2222 (after Order 719): a utility selling at most this a year is small


class Utility(models.Model):
    """A distribution utility as Order 2222 sees it: whether its customers' DERs may join wholesale aggregations.

    A small utility (at most 4 million MWh sold in the preceding fiscal year) needs its retail regulator's
    permission (opt-in) before its customers' resources may be aggregated; a regulator may also forbid its
    retail customers' demand response in the wholesale markets (the opt-out Order 719 allows). Sites name their
    utility in `utility`; a utility with no row here has no known restriction."""

    name = models.CharField(max_length=100, unique=True, help_text="As sites name it in their `utility`.")
    state = models.CharField(max_length=2, blank=True, help_text="Its retail regulator's state.")
    annual_sales_mwh = models.DecimalField(
        max_digits=14, decimal_places=1, null=True, blank=True, help_text="MWh sold in its preceding fiscal year."
    )
    small_utility_opt_in = models.BooleanField(
        default=False, help_text="A small utility's regulator permits its customers' DERs in aggregations."
    )
    retail_dr_opt_out = models.BooleanField(
        default=False, help_text="Its regulator bars its retail customers' demand response from wholesale markets."
    )
    source = models.CharField(max_length=200, blank=True, help_text="Where the figures and decisions come from.")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "utilities"

    def __str__(self) -> str:
        return self.name

    @property
    def is_small(self) -> bool:
        return self.annual_sales_mwh is not None and self.annual_sales_mwh <= SMALL_UTILITY_MWH


class NetBenefitsPrice(models.Model):
    """A market's net-benefits threshold for a month ($/MWh, FERC Order 745): demand response is paid the
    energy price only in intervals where that price is at or above it. Each ISO publishes one a month;
    loaded with `manage.py import_net_benefits`."""

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+")
    month = models.DateField(help_text="The month's first day.")
    price_per_mwh = models.DecimalField(max_digits=12, decimal_places=4)
    imported_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "month"], name="net_benefits_price_unique"),
            models.CheckConstraint(condition=Q(month__day=1), name="net_benefits_price_first_of_month"),
        ]

    def __str__(self) -> str:
        return f"{self.market} {self.month:%Y-%m} net benefits {self.price_per_mwh} $/MWh"


class Temperature(models.Model):
    """An hour's outdoor dry-bulb temperature (°F) at a weather station: what weather-driven baselines regress on.
    A site names its station in `weather_station`; loaded with `manage.py import_temperatures`."""

    station = models.CharField(max_length=32, help_text="The station's identifier, e.g. its ICAO code (KPHL).")
    start = models.DateTimeField(help_text="The hour's start.")
    temperature_f = models.FloatField()
    imported_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["station", "start"], name="temperature_unique"),
            models.CheckConstraint(
                condition=Q(temperature_f__gte=-80) & Q(temperature_f__lte=140), name="temperature_plausible"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.station} {self.start:%Y-%m-%d %H:%M} {self.temperature_f} °F"
