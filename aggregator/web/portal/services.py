"""What a customer may do from the portal: set a battery's backup reserve within its programs' limits."""

from decimal import Decimal, InvalidOperation

from django.db import transaction

from aggregator.core.errors import DomainError, Problem
from enrollment.lifecycle import OPEN
from enrollment.models import Device, Enrollment, EvChargingNeed


class ReserveRefused(DomainError):
    status = 400


def reserve_limits(device: Device) -> tuple[Decimal, Decimal]:
    """The narrowest range the programs the device is enrolled in allow (0 to 100 with none)."""
    low, high = Decimal(0), Decimal(100)
    for program in (
        Enrollment.objects.filter(device=device, state__in=list(OPEN))
        .select_related("program")
        .values_list("program__min_backup_reserve_pct", "program__max_backup_reserve_pct")
    ):
        low, high = max(low, program[0]), min(high, program[1])
    return low, high


def set_reserve(*, device: Device, value: Decimal | str) -> Device:
    """The customer's backup reserve for a battery; no schedule or event ever goes below it (dispatch.site_plan,
    aggregator.aggregation.capability). Refused, naming the field, outside the programs' limits."""
    if device.device_type != "battery":
        raise ReserveRefused(Problem("not_a_battery", "Only a battery has a backup reserve.", "backup_reserve_pct"))
    try:
        pct = Decimal(str(value))
    except (InvalidOperation, ValueError):
        pct = None
    low, high = reserve_limits(device)
    if pct is None or not pct.is_finite() or not low <= pct <= high:
        raise ReserveRefused(
            Problem(
                "out_of_range",
                f"A percentage from {low.normalize():f} to {high.normalize():f} (your programs' limits).",
                "backup_reserve_pct",
            )
        )
    with transaction.atomic():
        Device.objects.filter(pk=device.pk).update(backup_reserve_pct=pct.quantize(Decimal("0.01")))
    device.refresh_from_db()
    return device


class ChargingNeedRefused(DomainError):
    status = 400


def set_charging_need(
    *, device: Device, plug_in_hour: int | str | None, ready_by_hour: int | str | None, energy_kwh: Decimal | str
) -> EvChargingNeed:
    """The customer's nightly EV session: plugged in from one local hour, `energy_kwh` added by another next morning."""

    if device.device_type != "ev_charger":
        raise ChargingNeedRefused(Problem("not_an_ev_charger", "Only an EV charger has charging needs.", "energy_kwh"))
    problems = []
    hours = {}
    for name, value in (("plug_in_hour", plug_in_hour), ("ready_by_hour", ready_by_hour)):
        try:
            hours[name] = int(value)
        except (TypeError, ValueError):
            hours[name] = -1
        if not 0 <= hours[name] <= 23:
            problems.append(Problem("out_of_range", "A whole local hour from 0 to 23.", name))
    if not problems and hours["plug_in_hour"] <= hours["ready_by_hour"]:
        problems.append(
            Problem(
                "not_overnight",
                "The car is plugged in in the evening and ready the next morning: "
                "plug_in_hour must be later than ready_by_hour.",
                "plug_in_hour",
            )
        )
    try:
        energy = Decimal(str(energy_kwh))
    except (InvalidOperation, ValueError):
        energy = None
    session_hours = 24 - hours.get("plug_in_hour", 0) + hours.get("ready_by_hour", 0)
    most = Decimal(str(device.rated_kw)) * session_hours
    if energy is None or not energy.is_finite() or energy <= 0 or (not problems and energy > most):
        problems.append(
            Problem(
                "out_of_range",
                f"kWh to add per night, more than 0 and at most {most:.0f} "
                f"(the charger's {device.rated_kw:g} kW over the {session_hours} h session).",
                "energy_kwh",
            )
        )
    if problems:
        raise ChargingNeedRefused(problems)
    need, _ = EvChargingNeed.objects.update_or_create(
        device=device,
        defaults={
            "plug_in_hour": hours["plug_in_hour"],
            "ready_by_hour": hours["ready_by_hour"],
            "energy_kwh": energy.quantize(Decimal("0.01")),
        },
    )
    return need
