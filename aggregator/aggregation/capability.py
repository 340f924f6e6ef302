"""How many kW a device can deliver for an event: the capability model.

Pure and vectorised: the rule is written once over numpy arrays, so the same code
answers for one device (an explanation), a resource of a thousand, or a fleet of a
hundred thousand over 48 hours (the builder and the forecast). Nameplate kW is never
assumed to be available:

- battery: limited by usable energy above the backup reserve, spread over the event
  (kWh above reserve x discharge efficiency / event hours), capped at rated discharge kW;
- thermostat / HVAC: typical load x a duty factor by month and local hour (cooling
  season afternoons high, mild nights low), scaled down when the event outlasts the
  device's maximum event hours;
- EV charger: rated kW x the share of the time a car is plugged in and charging at that
  local hour (bidirectional: plugged in, since it can discharge); the reported plug state
  replaces the profile for the current hour. A bidirectional charger whose car has a nightly
  need (EvChargingNeed) gives only what leaves the car its kWh by its ready-by hour, and
  nothing outside its session: a car that must leave full is not discharged;
- water heater: element kW x the share of time the element is on at that local hour;
- generator / CHP: nameplate, less the output it already runs at for its site (that output is in the baseline,
  so it counts nothing extra); controllable load: its block, limited by max event hours;
- solar PV: 0 (not dispatched for reduction).
Every device is then derated by its observed delivery ratio in past events, where known.

Device state: an offline device gives 0 now (and in the forecast too once it has been
silent for STALE_AFTER); a device that has never reported is estimated from planning
assumptions (a battery at PLANNING_SOC_PCT). A battery's current state of charge is
carried through the forecast unchanged (persistence): the site's own schedule, not
this model, decides how it will charge.

The profiles below are planning defaults for residential and small commercial
equipment; per-device learning replaces them through the delivery ratio.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

TYPES = ("battery", "solar_pv", "ev_charger", "thermostat", "water_heater", "generator", "chp", "controllable_load")
TYPE_CODE = {name: i for i, name in enumerate(TYPES)}

PLANNING_SOC_PCT = 50.0
DEFAULT_DISCHARGE_EFFICIENCY = 0.95
STALE_AFTER = timedelta(hours=24)

# HVAC duty factor: by month (1-12) and by local hour (0-23).
HVAC_MONTH = np.array([0.35, 0.35, 0.2, 0.15, 0.35, 0.7, 0.85, 0.85, 0.6, 0.25, 0.25, 0.35])
HVAC_HOUR = np.array([0.4] * 6 + [0.55] * 3 + [0.65] * 3 + [0.85] * 2 + [1.0] * 5 + [0.8] * 3 + [0.5] * 2)
# EV charger: share of time charging (unidirectional) or plugged in (bidirectional), by local hour.
EV_CHARGING_HOUR = np.array([0.35] * 6 + [0.1] * 11 + [0.3] * 5 + [0.4] * 2)
EV_PLUGGED_HOUR = np.array([0.8] * 7 + [0.6] * 2 + [0.25] * 8 + [0.5] * 2 + [0.75] * 5)
# Water heater: share of time the element is on, by local hour.
WATER_HEATER_HOUR = np.array([0.12] * 6 + [0.45] * 4 + [0.12] * 7 + [0.35] * 5 + [0.12] * 2)

for _profile in (HVAC_HOUR, EV_CHARGING_HOUR, EV_PLUGGED_HOUR, WATER_HEATER_HOUR):
    assert _profile.shape == (24,)


@dataclass
class Fleet:
    """Column arrays, one entry per device. NaN means unknown."""

    device_id: np.ndarray
    type_code: np.ndarray
    rated_kw: np.ndarray
    energy_kwh: np.ndarray
    backup_reserve_pct: np.ndarray
    round_trip_efficiency_pct: np.ndarray
    max_event_hours: np.ndarray
    bidirectional: np.ndarray  # bool
    time_zone: np.ndarray  # object: IANA names
    online: np.ndarray  # float: 1 online, 0 offline, NaN never reported
    last_seen_epoch: np.ndarray  # seconds, NaN never reported
    state_of_charge_pct: np.ndarray
    ev_plugged_in: np.ndarray  # float: 1, 0 or NaN
    delivered_ratio: np.ndarray
    islanded: np.ndarray | None = None  # bool: reports it is islanded or in an outage (serving its own site)
    power_kw: np.ndarray | None = None  # kW it reports now (+ import, - output), NaN unknown
    # An EV charger's nightly need (enrollment.EvChargingNeed): plugged from one local hour, kWh by another; NaN none.
    ev_plug_in_hour: np.ndarray | None = None
    ev_ready_by_hour: np.ndarray | None = None
    ev_need_kwh: np.ndarray | None = None

    FIELDS = (
        "device_id",
        "type_code",
        "rated_kw",
        "energy_kwh",
        "backup_reserve_pct",
        "round_trip_efficiency_pct",
        "max_event_hours",
        "bidirectional",
        "time_zone",
        "online",
        "last_seen_epoch",
        "state_of_charge_pct",
        "ev_plugged_in",
        "delivered_ratio",
    )

    def __len__(self) -> int:
        return len(self.device_id)

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> "Fleet":
        """Rows in FIELDS order; device_type as its name; None for unknown."""
        columns: list[Sequence[Any]] = [[] for _ in cls.FIELDS] if not rows else list(zip(*rows))

        def floats(values: Sequence[Any]) -> npt.NDArray[np.float64]:
            return np.array([np.nan if v is None else float(v) for v in values], dtype=float)

        return cls(
            device_id=np.array(columns[0], dtype=np.int64),
            type_code=np.array([TYPE_CODE[t] for t in columns[1]], dtype=np.int8),
            rated_kw=floats(columns[2]),
            energy_kwh=floats(columns[3]),
            backup_reserve_pct=floats(columns[4]),
            round_trip_efficiency_pct=floats(columns[5]),
            max_event_hours=floats(columns[6]),
            bidirectional=np.array(columns[7], dtype=bool),
            time_zone=np.array(columns[8], dtype=object),
            online=floats(columns[9]),
            last_seen_epoch=np.array([np.nan if v is None else v.timestamp() for v in columns[10]], dtype=float),
            state_of_charge_pct=floats(columns[11]),
            ev_plugged_in=floats(columns[12]),
            delivered_ratio=floats(columns[13]),
        )


def hour_starts(now: datetime, hours: int) -> list[datetime]:
    """The top of the current UTC hour, then each following hour."""
    start = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [start + timedelta(hours=h) for h in range(hours)]


def _local_month_hour(fleet: Fleet, instants: list[datetime]) -> tuple[np.ndarray, np.ndarray]:
    """(month index 0-11, hour 0-23) per device and instant, shape (devices, instants)."""
    months = np.zeros((len(fleet), len(instants)), dtype=np.int8)
    hours = np.zeros((len(fleet), len(instants)), dtype=np.int8)
    for name in np.unique(fleet.time_zone) if len(fleet) else []:
        zone = ZoneInfo(name)
        local = [t.astimezone(zone) for t in instants]
        mask = fleet.time_zone == name
        months[mask] = np.array([t.month - 1 for t in local], dtype=np.int8)
        hours[mask] = np.array([t.hour for t in local], dtype=np.int8)
    return months, hours


def available_kw(fleet: Fleet, *, now: datetime, instants: list[datetime], event_hours: float) -> np.ndarray:
    """kW each device can hold over an event of `event_hours` starting at each instant.

    Shape (devices, instants). `now` decides which instant is "current" (device state
    such as offline or the plug state applies there) and how stale each device is.
    """
    n, m = len(fleet), len(instants)
    if n == 0:
        return np.zeros((0, m))
    duration = float(event_hours)
    months, hours = _local_month_hour(fleet, instants)
    t = fleet.type_code[:, None]
    rated = np.nan_to_num(fleet.rated_kw)[:, None]
    out = np.zeros((n, m))

    # Battery: usable energy above reserve over the event, capped at rated power.
    soc = np.where(np.isnan(fleet.state_of_charge_pct), PLANNING_SOC_PCT, fleet.state_of_charge_pct)
    reserve = np.nan_to_num(fleet.backup_reserve_pct)
    efficiency = np.where(
        np.isnan(fleet.round_trip_efficiency_pct),
        DEFAULT_DISCHARGE_EFFICIENCY**2,
        fleet.round_trip_efficiency_pct / 100.0,
    )
    usable_kwh = np.nan_to_num(fleet.energy_kwh) * np.clip(soc - reserve, 0, None) / 100.0 * np.sqrt(efficiency)
    battery_kw = np.minimum(np.nan_to_num(fleet.rated_kw), usable_kwh / duration)[:, None]
    out = np.where(t == TYPE_CODE["battery"], battery_kw, out)

    # Devices whose shed is limited in duration.
    duration_share = np.where(np.isnan(fleet.max_event_hours), 1.0, np.minimum(1.0, fleet.max_event_hours / duration))[
        :, None
    ]
    out = np.where(t == TYPE_CODE["thermostat"], rated * HVAC_MONTH[months] * HVAC_HOUR[hours] * duration_share, out)
    out = np.where(t == TYPE_CODE["water_heater"], rated * WATER_HEATER_HOUR[hours] * duration_share, out)
    out = np.where(t == TYPE_CODE["controllable_load"], rated * duration_share, out)
    engine = (t == TYPE_CODE["generator"]) | (t == TYPE_CODE["chp"])
    out = np.where(engine, rated, out)

    ev_profile = np.where(fleet.bidirectional[:, None], EV_PLUGGED_HOUR[hours], EV_CHARGING_HOUR[hours])
    out = np.where(t == TYPE_CODE["ev_charger"], rated * ev_profile, out)
    v2g_kw = _v2g_within_need(fleet, hours, instants, duration)
    if v2g_kw is not None and fleet.ev_need_kwh is not None:
        has_need = ~np.isnan(fleet.ev_need_kwh)[:, None] & fleet.bidirectional[:, None] & (t == TYPE_CODE["ev_charger"])
        out = np.where(has_need, v2g_kw, out)

    # State now applies to the instants whose hour contains `now` (the first of an hourly
    # forecast; the current interval of an event being re-allocated mid-way).
    current = [k for k, t in enumerate(instants) if t <= now < t + timedelta(hours=1)]
    if current:
        plugged = fleet.ev_plugged_in
        ev_known = (fleet.type_code == TYPE_CODE["ev_charger"]) & ~np.isnan(plugged)
        ev_now_kw = np.nan_to_num(fleet.rated_kw) * np.where(plugged > 0, np.where(fleet.bidirectional, 1.0, 0.5), 0.0)
        needed = np.zeros(len(fleet), dtype=bool)
        if v2g_kw is not None and fleet.ev_need_kwh is not None:
            needed = ~np.isnan(fleet.ev_need_kwh) & fleet.bidirectional
        for k in current:
            # Plugged in: what the plug state gives, or within its car's need where it has one; unplugged: nothing.
            now_kw = np.where(needed & (plugged > 0), out[:, k], ev_now_kw)
            out[ev_known, k] = now_kw[ev_known]
            out[fleet.online == 0, k] = 0.0
            if fleet.islanded is not None:
                out[fleet.islanded, k] = 0.0  # off the grid, it serves its own site: never dispatched
    if fleet.power_kw is not None:
        # An engine already running for its site (its output is in the baseline) adds only what it has left.
        running = np.clip(-np.nan_to_num(fleet.power_kw), 0.0, None)[:, None]
        out = np.where(engine, np.clip(out - running, 0.0, None), out)
    stale = ~np.isnan(fleet.last_seen_epoch) & (fleet.last_seen_epoch < (now - STALE_AFTER).timestamp())
    out[stale, :] = 0.0

    derate = np.where(np.isnan(fleet.delivered_ratio), 1.0, np.clip(fleet.delivered_ratio, 0.0, 1.0))[:, None]
    return out * derate


def _v2g_within_need(
    fleet: Fleet, hours: np.ndarray, instants: list[datetime], duration: float
) -> npt.NDArray[np.float64] | None:
    """kW a bidirectional charger's car can give over an event of `duration` hours from each instant and still get
    its night's kWh by its ready-by hour: (rated kW x the hours left after the event - the kWh it needs) / the
    event's hours, at most rated kW; nothing outside its session (the car is away) nor when the need takes every
    hour left (a car that must leave full). Conservative: the need counts in full, as if nothing had charged yet.
    None when no device has a need."""
    if fleet.ev_need_kwh is None or fleet.ev_plug_in_hour is None or fleet.ev_ready_by_hour is None:
        return None
    if not (~np.isnan(fleet.ev_need_kwh)).any() or not instants:
        return None
    plug_in = np.nan_to_num(fleet.ev_plug_in_hour, nan=0.0)[:, None]
    ready_by = np.nan_to_num(fleet.ev_ready_by_hour, nan=0.0)[:, None]
    minutes = np.zeros((len(fleet), len(instants)))
    for name in np.unique(fleet.time_zone):
        zone = ZoneInfo(name)
        mask = fleet.time_zone == name
        minutes[mask] = np.array([t.astimezone(zone).minute / 60.0 for t in instants])
    clock = hours + minutes  # local hour of day, fractional
    in_session = (clock >= plug_in) | (clock < ready_by)  # an overnight session: plug-in > ready-by
    left = np.where(clock >= plug_in, 24.0 - clock + ready_by, ready_by - clock) - duration
    rated = np.nan_to_num(fleet.rated_kw)[:, None]
    need = np.nan_to_num(fleet.ev_need_kwh)[:, None]
    slack = rated * np.clip(left, 0.0, None) - need
    return np.where(in_session, np.clip(slack / duration, 0.0, rated), 0.0)


def explain(fleet: Fleet, kw: np.ndarray, index: int) -> str:
    """A sentence on how one device's current figure was reached."""
    name = TYPES[fleet.type_code[index]]
    parts = [f"{name} rated {fleet.rated_kw[index]:g} kW"]
    if name == "battery":
        soc = fleet.state_of_charge_pct[index]
        parts.append(
            f"state of charge {f'unknown, planning {PLANNING_SOC_PCT:g}' if np.isnan(soc) else f'{soc:g}'}%"
            f" above a {np.nan_to_num(fleet.backup_reserve_pct[index]):g}% reserve"
        )
    if fleet.online[index] == 0:
        parts.append("offline")
    if fleet.islanded is not None and fleet.islanded[index]:
        parts.append("islanded from the grid (serving its site)")
    if not np.isnan(fleet.delivered_ratio[index]):
        parts.append(f"derated to {min(fleet.delivered_ratio[index], 1):.0%} for past delivery")
    return ", ".join(parts) + f": {kw[index]:.2f} kW"
