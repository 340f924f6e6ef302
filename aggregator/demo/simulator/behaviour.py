"""How simulated sites and devices behave: pure functions of time and a seed, no I/O.

The shapes are plausible rather than calibrated: a household's morning bump and evening
peak, a commercial building's occupied hours, weather with seasons and a daily swing, air
conditioning that grows with heat, EVs that come home in the evening, batteries that drain
to their backup reserve and recharge. Everything is deterministic in (seed, time), so a
restart of the simulator tells the same story, and the demo's history and its live
devices agree. Local time is the site's zone (a local day may have 23 or 25 hours).
"""

import math
import random
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

OFFLINE_SHARE = 0.05
OPT_OUT_SHARE = 0.05
DROPOUT_SHARE = 0.01  # of 15-minute slots, for devices otherwise online
AC_THRESHOLD_C = 22.0
HEAT_THRESHOLD_C = 5.0
BATTERY_RECHARGE_TARGET_PCT = 90.0
BATTERY_RECHARGE_RATE = 0.3  # of rated kW
DISCHARGE_EFFICIENCY = 0.95


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _unit(seed: int, *salt) -> float:
    """A deterministic number in [0, 1) for (seed, salt), the same in every process (no str hash randomisation)."""
    return random.Random("|".join(map(str, (seed, *salt)))).random()


def _day_of_year(local: datetime) -> float:
    return local.timetuple().tm_yday + local.hour / 24


def outdoor_temp_c(latitude: float, local: datetime) -> float:
    """Seasonal mean (coldest mid-January, hottest mid-July) plus a daily swing (coolest 05:00, warmest 15:00)."""
    scale = min(1.0, abs(latitude) / 40)
    mean = 13 + 12 * scale * -math.cos(2 * math.pi * (_day_of_year(local) - 15) / 365)
    swing = 5 * math.cos(2 * math.pi * (local.hour + local.minute / 60 - 15) / 24)
    return mean + swing


def _season(local: datetime) -> float:
    """1.0 in spring and autumn, up to ~1.25 in mid-summer and mid-winter."""
    return 1 + 0.25 * abs(math.cos(2 * math.pi * (_day_of_year(local) - 15) / 365))


def site_load_kw(*, site_seed: int, commercial: bool, local: datetime) -> float:
    """The site's own load (kW) without its controllable devices."""
    hour = local.hour + local.minute / 60
    scale = 0.7 + 0.7 * _unit(site_seed, "scale")
    if commercial:
        occupied = local.weekday() < 5 and 8 <= hour < 18
        base = 45.0 if occupied else (12.0 if local.weekday() < 5 else 9.0)
    else:
        morning = 0.6 * math.exp(-((hour - 7.5) ** 2) / 2)
        evening = 1.4 * math.exp(-((hour - 19) ** 2) / 4.5)
        base = 0.5 + morning + evening
    noise = 1 + 0.05 * (2 * _unit(site_seed, local.date().toordinal(), local.hour) - 1)
    return base * scale * _season(local) * noise


class DeviceModel:
    """One device's behaviour and, for a battery, its state of charge."""

    def __init__(
        self,
        *,
        device_id: int,
        device_type: str,
        rated_kw: float,
        energy_kwh: float | None,
        backup_reserve_pct: float | None,
        time_zone: str,
        latitude: float,
        seed: int,
    ):
        self.device_id, self.device_type, self.rated_kw = device_id, device_type, float(rated_kw)
        self.energy_kwh = float(energy_kwh) if energy_kwh else None
        self.reserve_pct = float(backup_reserve_pct) if backup_reserve_pct is not None else 20.0
        self.zone, self.latitude, self.seed = zone(time_zone), latitude, seed
        self.soc_pct = 55 + 40 * _unit(seed, "soc") if device_type == "battery" else None
        self.always_offline = _unit(seed, "offline") < OFFLINE_SHARE
        self.performance = 0.85 + 0.17 * _unit(seed, "performance")  # 85-102% of what it could deliver
        self.arrival_h = 17 + 2.5 * _unit(seed, "arrival")
        self.departure_h = 6.5 + 2 * _unit(seed, "departure")
        self.charges_at_work = _unit(seed, "work") < 0.3

    def _local(self, now: datetime) -> datetime:
        return now.astimezone(self.zone)

    def online(self, now: datetime) -> bool:
        if self.always_offline:
            return False
        slot = int(now.timestamp() // 900)
        return _unit(self.seed, "dropout", slot) >= DROPOUT_SHARE

    def opts_out(self, event_key: str) -> bool:
        return _unit(self.seed, "opt-out", event_key) < OPT_OUT_SHARE

    def plugged_in(self, now: datetime) -> bool | None:
        if self.device_type != "ev_charger":
            return None
        local = self._local(now)
        hour = local.hour + local.minute / 60
        if hour >= self.arrival_h or hour < self.departure_h:
            return True
        return self.charges_at_work and local.weekday() < 5 and 9 <= hour < 16

    def baseline_kw(self, now: datetime) -> float:
        """What the device draws when not dispatched (positive = consumption, negative = generation)."""
        local = self._local(now)
        hour = local.hour + local.minute / 60
        kind = self.device_type
        if kind == "thermostat":
            temp = outdoor_temp_c(self.latitude, local)
            if temp > AC_THRESHOLD_C:
                return min(self.rated_kw, self.rated_kw * (temp - AC_THRESHOLD_C) / 10)
            if temp < HEAT_THRESHOLD_C:
                return min(self.rated_kw, self.rated_kw * (HEAT_THRESHOLD_C - temp) / 15)
            return 0.0
        if kind == "ev_charger":
            if not self.plugged_in(now):
                return 0.0
            since = (hour - self.arrival_h) % 24
            at_work = self.charges_at_work and local.weekday() < 5 and 9 <= hour < 16
            return self.rated_kw if since < 3.5 or (at_work and hour < 12) else 0.0
        if kind == "load_block":
            return self.rated_kw * (0.6 if local.weekday() < 5 and 8 <= hour < 18 else 0.2)
        if kind == "solar":
            daylight = max(0.0, math.cos(math.pi * (hour - 13) / 13))
            summer = 1.0 if local.month in (5, 6, 7, 8) else 0.6
            return -self.rated_kw * 0.8 * daylight**2 * summer
        return 0.0

    def capability_kw(self, now: datetime) -> float:
        """kW of reduction the device could deliver now."""
        if not self.online(now):
            return 0.0
        kind = self.device_type
        if kind == "battery":
            if self.soc_pct is None or self.energy_kwh is None:
                return self.rated_kw
            headroom = self.soc_pct - self.reserve_pct
            return 0.0 if headroom <= 0.5 else self.rated_kw * min(1.0, headroom / 5)
        if kind == "thermostat":
            draw = self.baseline_kw(now)
            temp = outdoor_temp_c(self.latitude, self._local(now))
            share = 0.7 - 0.2 * min(1.0, max(0.0, (temp - 28) / 10))  # comfort limits bind in real heat
            return draw * share
        if kind in ("ev_charger", "load_block"):
            return max(0.0, self.baseline_kw(now))
        if kind == "generator":
            return self.rated_kw
        return 0.0

    def step(self, now: datetime, seconds: float, command_kw: float) -> float:
        """Advance `seconds` to `now` asked for `command_kw` of reduction; returns what was delivered (kW)."""
        if not self.online(now):
            return 0.0
        delivered = max(0.0, min(command_kw, self.capability_kw(now) * self.performance)) if command_kw > 0 else 0.0
        if self.device_type == "battery" and self.energy_kwh and self.soc_pct is not None:
            hours = seconds / 3600
            if delivered > 0:
                room_kwh = max(0.0, (self.soc_pct - self.reserve_pct) / 100 * self.energy_kwh) * DISCHARGE_EFFICIENCY
                delivered = min(delivered, room_kwh / hours) if hours else delivered
                self.soc_pct = max(
                    self.reserve_pct, self.soc_pct - delivered * hours / DISCHARGE_EFFICIENCY / self.energy_kwh * 100
                )
            elif command_kw <= 0 and self.soc_pct < BATTERY_RECHARGE_TARGET_PCT:  # never charges during an event
                added = BATTERY_RECHARGE_RATE * self.rated_kw * hours / self.energy_kwh * 100
                self.soc_pct = min(BATTERY_RECHARGE_TARGET_PCT, self.soc_pct + added)
        return delivered

    def load_kw(self, now: datetime, delivered_kw: float) -> float:
        return self.baseline_kw(now) - delivered_kw

    def status(self, now: datetime) -> dict:
        return {
            "online": self.online(now),
            "state_of_charge_pct": round(self.soc_pct, 2) if self.soc_pct is not None else None,
            "ev_plugged_in": self.plugged_in(now),
            "power_kw": round(self.baseline_kw(now), 3),
            "grid_status": "grid_connected",
        }


def history_kwh(
    *,
    site_seed: int,
    commercial: bool,
    devices: list[DeviceModel],
    time_zone: str,
    start: datetime,
    end: datetime,
    interval_seconds: int = 3600,
) -> list[tuple[datetime, float]]:
    """Site-meter kWh per interval of [start, end): the site's load plus its devices' undispatched draw."""
    if int(start.timestamp()) % interval_seconds:
        raise ValueError(f"start {start.isoformat()} is not on the {interval_seconds}-second grid")
    local_zone, hours = zone(time_zone), interval_seconds / 3600
    out, at = [], start.astimezone(UTC)
    step, middle = timedelta(seconds=interval_seconds), timedelta(seconds=interval_seconds / 2)
    while at < end:
        mid = at + middle
        kw = site_load_kw(site_seed=site_seed, commercial=commercial, local=mid.astimezone(local_zone))
        kw += sum(d.baseline_kw(mid) for d in devices)
        out.append((at, round(kw * hours, 3)))
        at += step
    return out
