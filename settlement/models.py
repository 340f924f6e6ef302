"""Settlement: how programs are measured and paid (terms), each run and its versions, per-site results and
customer payouts, and utility meter-data uploads. The interval data they stand on is reference data
(aggregator.reference.models).
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models

from aggregator.core.uploads import UploadJob
from settlement import baselines


class MeterDataImport(UploadJob):
    """An operator's upload of a utility meter-data file, imported by a Celery task."""

    progress_prefix = "meter-import"

    file = models.FileField(upload_to="meter-imports/%Y/%m/")

    class Meta(UploadJob.Meta):
        pass

    def __str__(self) -> str:
        return f"meter data import {self.pk} ({self.state})"


class SettlementTerms(models.Model):
    """How a program's events are measured and paid: the baseline method and the money rules."""

    class ParticipationModel(models.TextChoices):
        LOAD_REDUCTION = "load_reduction", "Load reduction: a site's delivery stops at zero net load"
        INJECTION = "injection_metered", "Injection allowed, with its own metering: export counts as delivery"

    class SharingRule(models.TextChoices):
        REVENUE_SHARE = "revenue_share", "Share of the resource's net revenue (%)"
        PER_KWH = "per_kwh", "$ per kWh delivered"
        PER_EVENT = "per_event", "$ per event to each customer who delivered"

    program = models.OneToOneField("aggregator.Program", on_delete=models.CASCADE, related_name="settlement_terms")
    baseline_method = models.CharField(max_length=40, help_text="A code of settlement.baselines.METHODS.")
    baseline_params = models.JSONField(
        default=dict, blank=True, help_text="Overrides of the method's published defaults."
    )
    net_negatives = models.BooleanField(
        default=False, help_text="Whether an interval's negative reduction offsets others."
    )
    capacity_rate_per_kw = models.DecimalField(
        max_digits=10, decimal_places=4, default=0, help_text="$ per committed kW per event."
    )
    penalty_per_kw = models.DecimalField(max_digits=10, decimal_places=4, default=0, help_text="$ per kW of shortfall.")
    cap_factor_at_one = models.BooleanField(
        default=True, help_text="Whether over-delivery earns no extra capacity payment."
    )
    sharing_rule = models.CharField(max_length=20, choices=SharingRule.choices, default=SharingRule.REVENUE_SHARE)
    sharing_value = models.DecimalField(
        max_digits=10, decimal_places=4, default=0, help_text="%, $/kWh or $/event per the rule."
    )
    fee_pct = models.DecimalField(
        max_digits=5, decimal_places=2, default=0, help_text="The platform's fee off each payout (%)."
    )
    participation_model = models.CharField(
        max_length=20,
        choices=ParticipationModel.choices,
        default=ParticipationModel.LOAD_REDUCTION,
        help_text="Whether export beyond the site's own load is delivery (the program's participation model).",
    )
    net_benefits_test = models.BooleanField(
        default=True,
        help_text="FERC Order 745: energy is paid only in intervals whose price is at or above the market's "
        "net-benefits threshold for the month (below it, the reduction still counts for performance).",
    )
    exclude_outage_days = models.BooleanField(
        default=True, help_text="A day a site spent part of in a grid outage is never one of its baseline days."
    )
    excuse_outage_intervals = models.BooleanField(
        default=True,
        help_text="An event interval a site spends in a grid outage counts neither its delivery nor its "
        "devices' commitment, so it draws no shortfall penalty.",
    )

    def __str__(self) -> str:
        return f"settlement terms of {self.program}"

    def clean(self):
        from django.core.exceptions import ValidationError

        try:
            method = baselines.get_method(self.baseline_method)
        except baselines.BaselineError as exc:
            raise ValidationError({"baseline_method": exc.problems[0].message}) from exc
        try:
            baselines.make_params(method, self.baseline_params)
        except baselines.BaselineError as exc:
            raise ValidationError({"baseline_params": exc.problems[0].message}) from exc


class SettlementRun(models.Model):
    """One immutable version of an event's settlement; a resettlement is a new version, with its difference."""

    class Kind(models.TextChoices):
        INITIAL = "initial"
        RESETTLEMENT = "resettlement"

    event = models.ForeignKey("dispatch.DispatchEvent", on_delete=models.PROTECT, related_name="settlement_runs")
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=150)
    method = models.CharField(max_length=40)
    fingerprint = models.CharField(
        max_length=160, help_text="Of the readings and retail event days used: a resettlement is due when it changes."
    )
    sites = models.PositiveIntegerField()
    delivered_kwh = models.DecimalField(max_digits=16, decimal_places=6)
    committed_kwh = models.DecimalField(max_digits=16, decimal_places=6)
    performance_factor = models.DecimalField(max_digits=7, decimal_places=4)
    energy = models.DecimalField(max_digits=14, decimal_places=2)
    capacity = models.DecimalField(max_digits=14, decimal_places=2)
    penalty = models.DecimalField(max_digits=14, decimal_places=2)
    net = models.DecimalField(max_digits=14, decimal_places=2)
    excused_kwh = models.DecimalField(
        max_digits=16,
        decimal_places=6,
        default=0,
        help_text="Committed kWh excused for sites in a grid outage (left out of the factor).",
    )
    rules = models.JSONField(
        default=list, help_text="The measurement and payment rules this run applied, as its statement states them."
    )
    difference = models.JSONField(
        default=dict, blank=True, help_text="Against the previous version: amounts that changed."
    )

    class Meta:
        ordering = ["event", "-version"]
        constraints = [models.UniqueConstraint(fields=["event", "version"], name="settlement_run_version_unique")]

    def __str__(self) -> str:
        return f"settlement v{self.version} of event {self.event_id}"


class SiteSettlement(models.Model):
    """A site's measured performance in a run, per interval, and the baseline days behind it.

    Under a method that measures devices at their own meter (metered output), a row is one
    dispatched device (`device` set), under its site.
    """

    run = models.ForeignKey(SettlementRun, on_delete=models.CASCADE, related_name="site_rows")
    site = models.ForeignKey("enrollment.Site", on_delete=models.PROTECT, related_name="+")
    device = models.ForeignKey("enrollment.Device", on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    customer = models.ForeignKey("enrollment.Customer", on_delete=models.PROTECT, related_name="+")
    starts = ArrayField(models.DateTimeField())
    baseline_kw = ArrayField(models.FloatField(null=True))
    actual_kw = ArrayField(models.FloatField(null=True))
    reduction_kwh = ArrayField(models.DecimalField(max_digits=14, decimal_places=6))
    price_per_mwh = ArrayField(models.DecimalField(max_digits=12, decimal_places=4, null=True))
    energy = models.DecimalField(max_digits=16, decimal_places=8, help_text="Exact $, rounded only on the statement.")
    days_used = ArrayField(models.DateField(), default=list)
    days_skipped = models.JSONField(default=dict, help_text="Date -> why the baseline did not use it.")
    adjustment = models.JSONField(default=dict)
    flags = ArrayField(models.CharField(max_length=40), default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "site"], condition=models.Q(device__isnull=True), name="site_settlement_unique"
            ),
            models.UniqueConstraint(
                fields=["run", "device"], condition=models.Q(device__isnull=False), name="device_settlement_unique"
            ),
        ]


class CustomerPayout(models.Model):
    run = models.ForeignKey(SettlementRun, on_delete=models.CASCADE, related_name="payouts")
    customer = models.ForeignKey("enrollment.Customer", on_delete=models.PROTECT, related_name="+")
    delivered_kwh = models.DecimalField(max_digits=16, decimal_places=6)
    gross = models.DecimalField(max_digits=14, decimal_places=2)
    fee = models.DecimalField(max_digits=14, decimal_places=2)
    net = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "customer"], name="customer_payout_unique")]


class RetailEvent(models.Model):
    """A retail demand-response event a site took part in outside this platform (a utility's peak-time rebate,
    critical peak pricing, a smart-thermostat program): its local days are never the site's baseline days.
    Loaded from the utility's list with `manage.py import_retail_events`."""

    site = models.ForeignKey("enrollment.Site", on_delete=models.CASCADE, related_name="retail_events")
    program = models.CharField(max_length=100, help_text="The utility's program, as its list names it.")
    start = models.DateTimeField()
    end = models.DateTimeField()
    imported_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["site", "start"], name="retail_event_site_start")]
        constraints = [
            models.UniqueConstraint(fields=["site", "program", "start"], name="retail_event_unique"),
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")), name="retail_event_ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.program} {self.start:%Y-%m-%d %H:%M} at site {self.site_id}"


class MarketStatement(models.Model):
    """The market's settlement statement for one resource, as imported (`manage.py import_market_statement`):
    what the market measured and paid per event and interval, to reconcile with our own runs."""

    resource = models.ForeignKey("aggregator.VirtualResource", on_delete=models.PROTECT, related_name="statements")
    file_name = models.CharField(max_length=200)
    file_format = models.CharField(max_length=20)
    imported_at = models.DateTimeField()
    imported_by = models.CharField(max_length=150)

    def __str__(self) -> str:
        return f"Statement {self.pk} of {self.resource} ({self.file_name})"


class MarketStatementInterval(models.Model):
    statement = models.ForeignKey(MarketStatement, on_delete=models.CASCADE, related_name="intervals")
    event = models.ForeignKey("dispatch.DispatchEvent", on_delete=models.PROTECT, related_name="+")
    start = models.DateTimeField()
    minutes = models.PositiveSmallIntegerField()
    baseline_kwh = models.DecimalField(max_digits=16, decimal_places=6, null=True)
    actual_kwh = models.DecimalField(max_digits=16, decimal_places=6, null=True)
    reduction_kwh = models.DecimalField(max_digits=16, decimal_places=6)
    price_per_mwh = models.DecimalField(max_digits=12, decimal_places=4, null=True)
    amount = models.DecimalField(max_digits=14, decimal_places=4)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["statement", "event", "start"], name="statement_interval_unique"),
            models.CheckConstraint(condition=models.Q(minutes__gt=0), name="statement_interval_minutes_positive"),
        ]


class CapacityCommitment(models.Model):
    """A resource's capacity commitment as the market pays it: accredited capacity at a rate over a commitment
    period (PJM's delivery year, a capability period), measured in each event interval against what it
    committed, with a non-performance charge per MWh short (`manage.py capacity_statement`)."""

    class RateUnit(models.TextChoices):
        MW_DAY = "mw_day", "$ per MW-day"
        KW_MONTH = "kw_month", "$ per kW-month"

    class Measurement(models.TextChoices):
        BASELINE = "baseline", "Reduction against the settlement baseline, committed = accredited kW"
        FIRM_SERVICE_LEVEL = "firm_service_level", "Firm service level: load held at or below each site's FSL"
        GUARANTEED_LOAD_DROP = "guaranteed_load_drop", "Guaranteed load drop: each site's reduction against baseline"

    resource = models.ForeignKey(
        "aggregator.VirtualResource", on_delete=models.PROTECT, related_name="capacity_commitments"
    )
    period_start = models.DateField(help_text="First day of the commitment period (market time).")
    period_end = models.DateField(help_text="Last day, inclusive.")
    accredited_kw = models.DecimalField(max_digits=12, decimal_places=3, help_text="Accredited (cleared) capacity.")
    rate = models.DecimalField(max_digits=12, decimal_places=4)
    rate_unit = models.CharField(max_length=10, choices=RateUnit.choices, default=RateUnit.MW_DAY)
    measurement = models.CharField(max_length=24, choices=Measurement.choices, default=Measurement.BASELINE)
    non_performance_per_mwh = models.DecimalField(
        max_digits=12, decimal_places=4, default=0, help_text="$ charged per MWh of shortfall in an event interval."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(period_end__gte=models.F("period_start")), name="capacity_period_order"
            ),
            models.CheckConstraint(condition=models.Q(accredited_kw__gt=0), name="capacity_accredited_positive"),
            models.CheckConstraint(condition=models.Q(rate__gte=0), name="capacity_rate_not_negative"),
            models.CheckConstraint(
                condition=models.Q(non_performance_per_mwh__gte=0), name="capacity_charge_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.resource} capacity {self.period_start}..{self.period_end}"


class SiteCapacity(models.Model):
    """A site's numbers under a load-management commitment: its peak load contribution (PLC) and the firm service
    level it holds its load to, or the load drop it guarantees."""

    commitment = models.ForeignKey(CapacityCommitment, on_delete=models.CASCADE, related_name="sites")
    site = models.ForeignKey("enrollment.Site", on_delete=models.PROTECT, related_name="+")
    peak_load_contribution_kw = models.DecimalField(max_digits=12, decimal_places=3)
    firm_service_level_kw = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    guaranteed_load_drop_kw = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["commitment", "site"], name="site_capacity_unique"),
            models.CheckConstraint(
                condition=models.Q(peak_load_contribution_kw__gt=0), name="site_capacity_plc_positive"
            ),
        ]
