"""How OCPP meets the platform: the rules, as pure functions over plain values (no ORM, no I/O).

Charger → platform
- Identity: the charge point id (the last segment of the URL path) is the enrolled charger's serial.
- Status: a connector whose status says a car is there (1.6 Preparing, Charging, SuspendedEV,
  SuspendedEVSE, Finishing; 2.0.1 Occupied) makes the charger plugged in; Available or Reserved,
  unplugged; Unavailable and Faulted say nothing of the car. Several connectors: plugged in if
  any is; connector (EVSE) 0 is the station, never a plug. Connecting and any message mean
  online; a closed connection leaves the device to the platform's rule (offline after three
  missed telemetry intervals: the BootNotification answer's heartbeat interval is the device's).
- Meter values: the energy register (Energy.Active.Import.Register, Wh or kWh, no phase, at the
  outlet) becomes the device meter's interval readings: between two clock-aligned samples
  (Sample.Clock, or any sample on a boundary) exactly one metered interval apart (1, 5, 15, 30 or
  60 minutes, from a boundary of that length), the register's rise is the interval's kWh.
  Samples within 5 s of a whole minute are taken at it. A register that falls (a meter reset)
  starts over. The station's meter (connector / EVSE 0) is used when the charger reports it,
  else connector 1's. Power.Active.Import minus Power.Active.Export (W) is the status's kW.
- Transactions: StartTransaction / TransactionEvent Started open a charging session with the
  register at its start; StopTransaction / TransactionEvent Ended close it; its energy is the
  register's rise over it (2.0.1: the first and last register the events carried).

Platform → charger
- A dispatch command (kW of reduction per interval, absolute UTC times) becomes a
  ChargePointMaxProfile (1.6, connector 0) / ChargingStationMaxProfile (2.0.1, EVSE 0), Absolute,
  in W: each interval's limit is the charger's rated kW less the command's kW, never below 0
  (these OCPP versions cannot ask a charger to discharge); between intervals, the rated kW. Its
  id is the dispatch event's (offset by one, see `dispatch_profile_id`) so an update replaces it,
  it is valid until the command expires, and a cancel command clears it (ClearChargingProfile).
- The nightly charging plan (kW per 15 minutes, negative = charging) becomes the charger's
  TxDefaultProfile (connector / EVSE 0, id PLAN_PROFILE_ID) from now to the plan's end: each
  period's limit is the planned charging kW. A dispatch profile caps the station above it.
- Verification: after an Accepted dispatch profile the charger is asked its composite schedule
  (GetCompositeSchedule, in W, over the command's window); it applies the profile when the
  composite's limit at the command's first instant (or now) is at or below the profile's.
- Answers: SetChargingProfile Accepted is the command's acknowledgement `accepted`; Rejected (or
  2.0.1's other refusals) is `rejected`, handled as any device refusing (it leaves the event and
  others replace it); ClearChargingProfile Accepted or Unknown (nothing to clear) accepts a cancel.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

METER_INTERVALS = (60, 300, 900, 1800, 3600)
SNAP_SECONDS = 5
PLAN_PROFILE_ID = 1
DISPATCH_STACK_LEVEL = 1
PLAN_STACK_LEVEL = 0

PLUGGED_16 = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})
UNPLUGGED_16 = frozenset({"Available", "Reserved"})
PLUGGED_201 = frozenset({"Occupied"})
UNPLUGGED_201 = frozenset({"Available", "Reserved"})

REGISTER = "Energy.Active.Import.Register"


def dispatch_profile_id(event_id: int) -> int:
    """A dispatch event's profile id: the event id plus one, so it never takes the plan's id (1)."""
    return event_id + PLAN_PROFILE_ID


def plugged_in(connectors: dict[str, str], *, v16: bool) -> bool | None:
    """Whether a car is plugged in, from each connector's last status (None: not known)."""
    plugged, unplugged = (PLUGGED_16, UNPLUGGED_16) if v16 else (PLUGGED_201, UNPLUGGED_201)
    states = [status for connector, status in connectors.items() if str(connector) != "0"]
    if any(s in plugged for s in states):
        return True
    if states and all(s in unplugged for s in states):
        return False
    return None


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # OCPP times are UTC; a charger that leaves the zone out means UTC
    return at.astimezone(UTC)


def snap(at: datetime) -> datetime:
    """A sample taken within SNAP_SECONDS of a whole minute counts at that minute (chargers' clocks jitter)."""
    minute = at.replace(second=0, microsecond=0)
    if at - minute <= timedelta(seconds=SNAP_SECONDS):
        return minute
    if minute + timedelta(minutes=1) - at <= timedelta(seconds=SNAP_SECONDS):
        return minute + timedelta(minutes=1)
    return at


@dataclass(frozen=True)
class Sample:
    """One reading a MeterValues (or TransactionEvent) carried, normalised across the two versions."""

    at: datetime
    measurand: str
    value: float  # Wh for energy, W for power, as the unit and multiplier say
    phase: str | None
    location: str
    context: str


def _scale(value: float, unit: str | None, multiplier: int = 0) -> float:
    value = value * 10**multiplier
    if unit in ("kWh", "kW"):
        return value * 1000
    return value


def samples_16(meter_value: list[dict]) -> list[Sample]:
    """1.6 meterValue entries (keys in snake case, as the handlers get them): values are strings, the measurand
    defaults to the energy register."""
    out = []
    for entry in meter_value:
        at = parse_time(entry["timestamp"])
        for sv in entry["sampled_value"]:
            if sv.get("format", "Raw") != "Raw":
                continue  # a signed reading: not one this platform verifies
            try:
                value = float(sv["value"])
            except ValueError:
                continue
            out.append(
                Sample(
                    at=at,
                    measurand=sv.get("measurand", REGISTER),
                    value=_scale(value, sv.get("unit")),
                    phase=sv.get("phase"),
                    location=sv.get("location", "Outlet"),
                    context=sv.get("context", "Sample.Periodic"),
                )
            )
    return out


def samples_201(meter_value: list[dict]) -> list[Sample]:
    """2.0.1 meterValue entries (snake case): numeric values with a unit of measure (unit, power-of-ten multiplier)."""
    out = []
    for entry in meter_value:
        at = parse_time(entry["timestamp"])
        for sv in entry["sampled_value"]:
            unit = sv.get("unit_of_measure") or {}
            out.append(
                Sample(
                    at=at,
                    measurand=sv.get("measurand", REGISTER),
                    value=_scale(float(sv["value"]), unit.get("unit"), int(unit.get("multiplier", 0))),
                    phase=sv.get("phase"),
                    location=sv.get("location", "Outlet"),
                    context=sv.get("context", "Sample.Periodic"),
                )
            )
    return out


def registers(samples: list[Sample]) -> list[tuple[datetime, float]]:
    """The energy register's (time, Wh) samples, oldest first."""
    return sorted(
        (s.at, s.value)
        for s in samples
        if s.measurand == REGISTER and s.phase is None and s.location in ("Outlet", "Inlet")
    )


def power_kw(samples: list[Sample]) -> float | None:
    """The latest import minus export power (kW), if the samples carry it."""
    latest = max((s.at for s in samples if s.measurand.startswith("Power.Active.") and s.phase is None), default=None)
    if latest is None:
        return None
    watts = 0.0
    for s in samples:
        if s.at == latest and s.phase is None:
            if s.measurand == "Power.Active.Import":
                watts += s.value
            elif s.measurand == "Power.Active.Export":
                watts -= s.value
    return round(watts / 1000, 3)


def interval_readings(
    previous: tuple[datetime, float] | None, samples: list[tuple[datetime, float]]
) -> tuple[list[dict], tuple[datetime, float] | None]:
    """Device-meter readings (the device API's shape) from register samples, and the register to keep.

    `previous` is the last aligned register (time, Wh) kept from earlier messages.
    """
    readings = []
    last = previous
    for at, wh in samples:
        at = snap(at)
        if at.second or at.microsecond:
            continue  # between boundaries: nothing to measure an interval from
        if last is not None:
            seconds = int((at - last[0]).total_seconds())
            rise = wh - last[1]
            if rise < 0:
                last = (at, wh)  # the register went back (a meter reset or replacement): start over
                continue
            if seconds <= 0:
                continue
            if seconds in METER_INTERVALS and int(last[0].timestamp()) % seconds == 0:
                readings.append(
                    {
                        "meter": "device",
                        "start": iso(last[0]),
                        "interval_seconds": seconds,
                        "kwh": round(rise / 1000, 6),
                    }
                )
        last = (at, wh)
    return readings, last


@dataclass(frozen=True)
class Period:
    start_period: int  # seconds from the schedule's start
    limit_w: int


def _compress(periods: list[Period]) -> list[Period]:
    out: list[Period] = []
    for period in periods:
        if out and out[-1].limit_w == period.limit_w:
            continue
        out.append(period)
    return out


def dispatch_periods(schedule: list[dict], rated_kw: float) -> tuple[datetime, int, list[Period]]:
    """(start, duration s, periods) of a command's schedule as charging limits in W (see the module docstring)."""
    items = sorted((parse_time(i["start"]), parse_time(i["end"]), float(i["kw"])) for i in schedule)
    start, end = items[0][0], max(e for _, e, _ in items)
    rated_w = round(rated_kw * 1000)
    periods, cursor = [], start
    for s, e, kw in items:
        if s > cursor:
            periods.append(Period(int((cursor - start).total_seconds()), rated_w))
        periods.append(Period(int((s - start).total_seconds()), max(0, round((rated_kw - kw) * 1000))))
        cursor = max(cursor, e)
    return start, int((end - start).total_seconds()), _compress(periods)


def plan_periods(
    plans: list[tuple[datetime, int, list[float]]], now: datetime
) -> tuple[datetime, int, list[Period]] | None:
    """(start, duration s, periods) of the plans (start, step s, kW per step: negative = charging) from now on."""
    steps = []
    for start, step, kw in sorted(plans):
        for n, value in enumerate(kw):
            at = start + timedelta(seconds=step * n)
            if at + timedelta(seconds=step) > now:
                steps.append((at, step, max(0, round(-value * 1000))))
    if not steps:
        return None
    first = steps[0][0]
    end = steps[-1][0] + timedelta(seconds=steps[-1][1])
    periods = [Period(int((at - first).total_seconds()), watts) for at, _, watts in steps]
    return first, int((end - first).total_seconds()), _compress(periods)


def profile_16(
    *, profile_id: int, purpose: str, stack_level: int, start: datetime, duration: int, periods, valid_to=None
) -> dict:
    """A 1.6 csChargingProfiles object."""
    profile = {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "duration": duration,
            "startSchedule": iso(start),
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": p.start_period, "limit": p.limit_w} for p in periods],
        },
    }
    if valid_to is not None:
        profile["validTo"] = iso(valid_to)
    return profile


def profile_201(
    *, profile_id: int, purpose: str, stack_level: int, start: datetime, duration: int, periods, valid_to=None
) -> dict:
    """A 2.0.1 chargingProfile object."""
    profile = {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": profile_id,
                "duration": duration,
                "startSchedule": iso(start),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": p.start_period, "limit": p.limit_w} for p in periods],
            }
        ],
    }
    if valid_to is not None:
        profile["validTo"] = iso(valid_to)
    return profile


def limit_at(start: datetime, periods, at: datetime) -> float | None:
    """The limit (W) a schedule from `start` sets at `at` (None before it starts)."""
    offset = (at - start).total_seconds()
    current = None
    for period in periods:
        if period["start_period"] <= offset:
            current = float(period["limit"])
    return current


def applies(
    *, start: datetime, periods: list[Period], composite_start: datetime, composite_periods: list[dict], at: datetime
) -> bool:
    """Whether a charger's composite schedule holds the profile's limit at `at` (at or below it: other limits,
    its own or the car's, may hold it lower)."""
    wanted = limit_at(start, [{"start_period": p.start_period, "limit": p.limit_w} for p in periods], at)
    actual = limit_at(composite_start, composite_periods, at)
    return wanted is not None and actual is not None and actual <= wanted + 1


DISPATCH_PURPOSE = {"ocpp1.6": "ChargePointMaxProfile", "ocpp2.0.1": "ChargingStationMaxProfile"}
PLAN_PURPOSE = "TxDefaultProfile"


def accepted(answer: str) -> bool:
    return answer == "Accepted"
