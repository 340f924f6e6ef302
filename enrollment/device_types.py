"""Device (DER) types and the parameters each one needs.

One table, used by the model's database constraints, the API serializers, the fleet
import and the admin, so that a parameter rule lives in exactly one place.

`rated_kw` is the nameplate power that matters for flexibility, per type:
battery: discharge kW; solar PV: inverter kW AC; EV charger: maximum charge kW;
thermostat / HVAC: typical controllable load kW; water heater: element kW;
generator / CHP: output kW; controllable load: the block of load that can be shed.
"""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import models
from django.db.models import Q

from aggregator.core.errors import Problem


class DeviceType(models.TextChoices):
    BATTERY = "battery", "Battery"
    SOLAR_PV = "solar_pv", "Solar PV"
    EV_CHARGER = "ev_charger", "EV charger"
    THERMOSTAT = "thermostat", "Thermostat / HVAC"
    WATER_HEATER = "water_heater", "Water heater"
    GENERATOR = "generator", "Generator"
    CHP = "chp", "Combined heat and power"
    CONTROLLABLE_LOAD = "controllable_load", "Controllable load"


class Fuel(models.TextChoices):
    DIESEL = "diesel", "Diesel"
    NATURAL_GAS = "natural_gas", "Natural gas"
    PROPANE = "propane", "Propane"
    BIOGAS = "biogas", "Biogas"
    OTHER = "other", "Other"


# Bounds that keep values inside their columns (numeric(10,3), integer): far above any
# behind-the-meter device, so they only catch typos and unit mix-ups (W for kW).
MAX_KW = Decimal(1_000_000)
MAX_MINUTES = Decimal(7 * 24 * 60)


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    kind: str  # "decimal", "int" or "choice"
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    strictly_positive: bool = False
    choices: tuple[str, ...] = ()


# Nullable per-type parameters, in the order the CSV and the API present them.
PARAMETERS: dict[str, ParameterSpec] = {
    p.name: p
    for p in (
        ParameterSpec("charge_kw", "decimal", strictly_positive=True, maximum=MAX_KW),
        ParameterSpec("energy_kwh", "decimal", strictly_positive=True, maximum=MAX_KW),
        ParameterSpec("backup_reserve_pct", "decimal", minimum=Decimal(0), maximum=Decimal(100)),
        ParameterSpec("round_trip_efficiency_pct", "decimal", strictly_positive=True, maximum=Decimal(100)),
        ParameterSpec("array_kw_dc", "decimal", strictly_positive=True, maximum=MAX_KW),
        ParameterSpec("min_kw", "decimal", minimum=Decimal(0), maximum=MAX_KW),
        ParameterSpec("max_setpoint_offset_f", "decimal", strictly_positive=True, maximum=Decimal(15)),
        ParameterSpec("max_event_hours", "decimal", strictly_positive=True, maximum=Decimal(24)),
        ParameterSpec("min_run_minutes", "int", minimum=Decimal(0), maximum=MAX_MINUTES),
        ParameterSpec("notice_minutes", "int", minimum=Decimal(0), maximum=MAX_MINUTES),
        ParameterSpec("ramp_kw_per_minute", "decimal", strictly_positive=True, maximum=MAX_KW),
        ParameterSpec("max_event_hours_per_day", "decimal", strictly_positive=True, maximum=Decimal(24)),
        ParameterSpec("max_run_hours_per_year", "decimal", minimum=Decimal(0), maximum=Decimal(8784)),
        ParameterSpec("fuel", "choice", choices=tuple(Fuel.values)),
    )
}


@dataclass(frozen=True)
class TypeSpec:
    required: frozenset[str]
    optional: frozenset[str] = frozenset()

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional


TYPE_SPECS: dict[str, TypeSpec] = {
    DeviceType.BATTERY: TypeSpec(
        required=frozenset({"charge_kw", "energy_kwh", "backup_reserve_pct"}),
        optional=frozenset({"round_trip_efficiency_pct", "ramp_kw_per_minute", "notice_minutes"}),
    ),
    DeviceType.SOLAR_PV: TypeSpec(required=frozenset(), optional=frozenset({"array_kw_dc"})),
    DeviceType.EV_CHARGER: TypeSpec(
        required=frozenset(), optional=frozenset({"min_kw", "notice_minutes", "max_event_hours_per_day"})
    ),
    DeviceType.THERMOSTAT: TypeSpec(
        required=frozenset({"max_setpoint_offset_f", "max_event_hours"}),
        optional=frozenset({"max_event_hours_per_day", "notice_minutes"}),
    ),
    DeviceType.WATER_HEATER: TypeSpec(
        required=frozenset(), optional=frozenset({"max_event_hours", "max_event_hours_per_day", "notice_minutes"})
    ),
    DeviceType.GENERATOR: TypeSpec(
        required=frozenset({"min_run_minutes", "fuel"}),
        optional=frozenset({"min_kw", "notice_minutes", "ramp_kw_per_minute", "max_run_hours_per_year"}),
    ),
    DeviceType.CHP: TypeSpec(
        required=frozenset({"min_run_minutes", "fuel"}),
        optional=frozenset({"min_kw", "notice_minutes", "ramp_kw_per_minute", "max_run_hours_per_year"}),
    ),
    DeviceType.CONTROLLABLE_LOAD: TypeSpec(
        required=frozenset({"max_event_hours"}),
        optional=frozenset({"notice_minutes", "min_kw", "max_event_hours_per_day", "ramp_kw_per_minute"}),
    ),
}


def type_constraints() -> list[models.CheckConstraint]:
    """Per type: its required parameters are set and the others are empty."""
    constraints = []
    for device_type, spec in TYPE_SPECS.items():
        condition = Q()
        for name in PARAMETERS:
            if name in spec.required:
                condition &= Q(**{f"{name}__isnull": False})
            elif name not in spec.allowed:
                condition &= Q(**{f"{name}__isnull": True})
        constraints.append(
            models.CheckConstraint(
                condition=~Q(device_type=device_type) | condition,
                name=f"device_{device_type}_parameters",
            )
        )
    return constraints


def parse_parameter(name: str, raw) -> tuple[object, Problem | None]:
    """A parameter's value from API or CSV input (None for empty), or a problem."""
    spec = PARAMETERS[name]
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None, None
    if spec.kind == "choice":
        value = str(raw).strip()
        if value not in spec.choices:
            return None, Problem("invalid_choice", f"{name} must be one of {', '.join(spec.choices)}.", name)
        return value, None
    try:
        number = Decimal(str(raw).strip())
    except InvalidOperation:
        return None, Problem("not_a_number", f"{name} must be a number, not {raw!r}.", name)
    if not number.is_finite():
        return None, Problem("not_a_number", f"{name} must be a finite number.", name)
    if spec.kind == "int":
        if number != number.to_integral_value():
            return None, Problem("not_an_integer", f"{name} must be a whole number.", name)
        number = int(number)
    if spec.strictly_positive and number <= 0:
        return None, Problem("out_of_range", f"{name} must be greater than 0.", name)
    if spec.minimum is not None and number < spec.minimum:
        return None, Problem("out_of_range", f"{name} must be at least {spec.minimum}.", name)
    if spec.maximum is not None and number > spec.maximum:
        return None, Problem("out_of_range", f"{name} must be at most {spec.maximum}.", name)
    return number, None


def parameter_problems(device_type: str, rated_kw, values: dict) -> list[Problem]:
    """What is wrong with a device's type-specific parameters (already parsed)."""
    spec = TYPE_SPECS.get(device_type)
    if spec is None:
        return [Problem("invalid_choice", f"device_type must be one of {', '.join(DeviceType.values)}.", "device_type")]
    problems = []
    label = DeviceType(device_type).label.lower()
    for name in sorted(spec.required):
        if values.get(name) is None:
            problems.append(Problem("required", f"A {label} needs {name}.", name))
    for name in PARAMETERS:
        if name not in spec.allowed and values.get(name) is not None:
            problems.append(Problem("not_applicable", f"{name} does not apply to a {label}.", name))
    min_kw = values.get("min_kw")
    if min_kw is not None and rated_kw is not None and min_kw > rated_kw:
        problems.append(Problem("out_of_range", "min_kw cannot exceed rated_kw.", "min_kw"))
    return problems
