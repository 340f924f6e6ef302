"""Markets and programs as data.

Market rules differ by ISO and change with tariffs, so every number a rule needs
(review period, minimum size, settlement interval, baseline methods) is a column
here, seeded with the published defaults and edited by operators, never a constant
in code.
"""

import zoneinfo

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


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

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(min_aggregation_kw__gt=0), name="market_min_size_positive"),
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

    class Meta:
        ordering = ["market__code", "code"]
        constraints = [
            models.UniqueConstraint(fields=["market", "code"], name="program_code_unique_per_market"),
            models.CheckConstraint(
                condition=Q(typical_event_hours__gt=0, typical_event_hours__lte=24), name="program_event_hours_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.market.code}/{self.code}"

    @property
    def review_days(self) -> int:
        return self.utility_review_days if self.utility_review_days is not None else self.market.utility_review_days
