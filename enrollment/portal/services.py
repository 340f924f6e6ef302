"""What a customer may do from the portal: set a battery's backup reserve within its programs' limits."""

from decimal import Decimal, InvalidOperation

from django.db import transaction

from aggregator.errors import DomainError, Problem
from enrollment.lifecycle import OPEN
from enrollment.models import Device, Enrollment


class ReserveRefused(DomainError):
    status = 400


def reserve_limits(device: Device) -> tuple[Decimal, Decimal]:
    """The narrowest range the programs the device is enrolled in allow (0 to 100 with none)."""
    low, high = Decimal(0), Decimal(100)
    for program in (Enrollment.objects.filter(device=device, state__in=list(OPEN)).select_related("program")
                    .values_list("program__min_backup_reserve_pct", "program__max_backup_reserve_pct")):
        low, high = max(low, program[0]), min(high, program[1])
    return low, high


def set_reserve(*, device: Device, value) -> Device:
    """The customer's backup reserve for a battery; no schedule or event ever goes below it (dispatch.site_plan,
    aggregator.capability). Refused, naming the field, outside the programs' limits."""
    if device.device_type != "battery":
        raise ReserveRefused(Problem("not_a_battery", "Only a battery has a backup reserve.", "backup_reserve_pct"))
    try:
        pct = Decimal(str(value))
    except (InvalidOperation, ValueError):
        pct = None
    low, high = reserve_limits(device)
    if pct is None or not pct.is_finite() or not low <= pct <= high:
        raise ReserveRefused(Problem("out_of_range", f"A percentage from {low.normalize():f} to {high.normalize():f} (your programs' limits).",
                                     "backup_reserve_pct"))
    with transaction.atomic():
        Device.objects.filter(pk=device.pk).update(backup_reserve_pct=pct.quantize(Decimal("0.01")))
    device.refresh_from_db()
    return device
