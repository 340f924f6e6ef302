"""Interval meter data: the measurements settlement and dispatch stand on.

`Reading` is one PostgreSQL table partitioned by month on `start` (created in the
migration with SQL, since Django does not declare partitioned tables); its primary
key is (meter_kind, meter_id, start). Readings are written only by
settlement.readings (COPY into a staging table, then one set-based upsert); a
corrected value replaces the stored one and the old one is kept in ReadingRevision.
See deploy/README.md for the partition and retention plan.
"""

from django.conf import settings
from django.db import models


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
    kwh = models.DecimalField(max_digits=14, decimal_places=6, null=True, help_text="Energy over the interval; null when missing.")
    quality = models.SmallIntegerField(choices=Quality.choices)
    received_at = models.DateTimeField(help_text="When this value arrived (a correction moves it).")
    revision = models.IntegerField(default=1, help_text="1 for the first value; +1 for each correction.")

    class Meta:
        managed = False
        db_table = "settlement_reading"


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
        ordering = ["meter_kind", "meter_id", "start", "revision"]
        indexes = [models.Index(fields=["meter_kind", "meter_id", "start"], name="revision_meter_start")]


class MeterDataImport(models.Model):
    """An operator's upload of a utility meter-data file, imported by a Celery task."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        REJECTED = "rejected", "Rejected (nothing written)"
        FAILED = "failed", "Failed"

    file = models.FileField(upload_to="meter-imports/%Y/%m/")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    rows = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"meter data import {self.pk} ({self.state})"

    @property
    def progress_key(self) -> str:
        return f"meter-import:{self.pk}:progress"


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
        constraints = [models.UniqueConstraint(fields=["market", "node", "start"], name="energy_price_unique")]

    def __str__(self) -> str:
        return f"{self.node} {self.start:%Y-%m-%d %H:%M} {self.price_per_mwh} $/MWh"
