"""Forecasting every resource at once: load the inputs set-based, fit per resource and device-type group, store
the Forecast rows in one bulk insert. See aggregator.market.forecasting for what is forecast and how."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
from django.db import connection, connections, transaction

from aggregator.aggregation import capability
from aggregator.aggregation.models import ResourceState, VirtualResource
from aggregator.aggregation.selectors import apply_capability_limits, load_fleet
from aggregator.market.forecasting import core, history
from aggregator.market.forecasting.rollup import LOAD_TYPES, zone_station
from aggregator.market.models import Forecast
from aggregator.reference.holidays import UnknownCalendar, holidays_between
from dispatch.models import DeviceOptOut
from dispatch.selectors import without_opted_out

HOURS = 48
REAL_TIME_MINUTES = 120
HISTORY_DAYS = 42
MIN_HISTORY_HOURS = 72  # a group with fewer observed hours is forecast by the capability model
MIN_COVERAGE = 0.25  # an hour whose readings cover less than this share of the group's usual is left out
PERSISTENCE_DAYS = 7
FRESH_STATUS = timedelta(minutes=15)
RETENTION = {Forecast.Kind.HOURLY: timedelta(days=14), Forecast.Kind.REAL_TIME: timedelta(days=2)}

LOAD_CODES = np.array([capability.TYPE_CODE[t] for t in LOAD_TYPES])
LOAD_INDEX = np.full(len(capability.TYPES), -1, dtype=np.int64)  # type code -> position in LOAD_TYPES, -1 if none
LOAD_INDEX[LOAD_CODES] = np.arange(len(LOAD_TYPES))
EV = LOAD_TYPES.index("ev_charger")
BATTERY = capability.TYPE_CODE["battery"]
_MEMBERS = (
    "JOIN aggregator_resourcemembership m ON m.device_id = d.id AND m.left_at IS NULL "
    "JOIN aggregator_market mk ON mk.id = s.market_id"
)


def floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _take(fleet: capability.Fleet, index: np.ndarray) -> capability.Fleet:
    parts = {name: getattr(fleet, name)[index] for name in capability.Fleet.FIELDS}
    return capability.Fleet(**parts, islanded=None if fleet.islanded is None else fleet.islanded[index])


@dataclass
class Series:
    """One forecast of a resource: expected kW and its band, on the instants it names."""

    expected: np.ndarray
    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray

    @classmethod
    def exact(cls, kw: np.ndarray) -> "Series":
        kw = np.clip(kw, 0, None)
        return cls(kw, kw.copy(), kw.copy(), kw.copy())


@dataclass
class ResourceForecast:
    resource_id: int
    hourly: dict[str, Series] = field(default_factory=dict)  # model -> series over the hourly instants
    real_time: dict[str, Series] = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    load_kw: dict[str, np.ndarray] = field(default_factory=dict)  # model -> the load-type part (what is scored)
    scales: dict[int, np.ndarray] = field(default_factory=dict)  # load type index -> kW per load factor, by hour


@dataclass
class Run:
    """Everything one forecast issue needs, loaded set-based for all its resources."""

    now: datetime
    start: datetime
    axis_start: datetime
    n_hist: int
    instants: list[datetime]
    resources: list[VirtualResource]
    fleet: capability.Fleet
    slot: np.ndarray
    power_kw: np.ndarray
    station: np.ndarray
    capability_kw: np.ndarray  # devices x hourly instants, with the registered limits
    mask: np.ndarray  # devices x hourly instants: 1 where the device may be dispatched
    y: np.ndarray  # (resources x load types, axis hours): load factor
    temperature: dict[int, np.ndarray | None]
    temperature_notes: dict[int, dict]
    calendars: dict[tuple[str, str], core.Calendar]
    profiles: dict[tuple[int, str], dict]
    plan_kw: np.ndarray  # devices x hourly instants, NaN without a plan
    backtest: bool

    @property
    def n_axis(self) -> int:
        return self.n_hist + len(self.instants)


def _holidays(code: str, first: date, last: date) -> frozenset[date]:
    try:
        return frozenset(holidays_between(market=code, first=first, last=last))
    except UnknownCalendar:
        return frozenset()


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _own_connection(read):
    try:
        return read()
    finally:
        connections.close_all()  # this thread's connections: the pool's threads end with the run


def _concurrently(*reads):
    """Start the reads on connections of their own (threads: the database works while Python waits), or run them
    here in turn inside a transaction, whose uncommitted rows other connections could not see (tests; a caller's
    atomic block). Returns objects with `result()`."""
    if connection.in_atomic_block:
        return [_Done(read()) for read in reads]
    pool = ThreadPoolExecutor(max_workers=len(reads))
    try:
        return [pool.submit(_own_connection, read) for read in reads]
    finally:
        pool.shutdown(wait=False)


def load_run(
    *, resource_ids: list[int], now: datetime, history_days: int = HISTORY_DAYS, backtest: bool = False
) -> Run:
    """The inputs of one issue at `now`. `backtest`: only what was known before `now` (temperatures, charger
    profiles summed from the charger-hours before it) and no current device state (opt-outs, offline)."""
    start = floor_hour(now)
    axis_start = start - timedelta(days=history_days)
    n_hist = history_days * 24
    instants = [start + timedelta(hours=h) for h in range(HOURS)]
    resources = list(
        VirtualResource.objects.filter(pk__in=resource_ids).select_related("market", "program").order_by("pk")
    )
    ids = [r.pk for r in resources]
    fleet, (owner, weather_station, zone, market_code, power) = load_fleet(
        where="m.resource_id = ANY(%s)",
        params=[ids],
        joins=_MEMBERS,
        extra=("m.resource_id", "s.weather_station", "s.zone", "mk.code", "st.power_kw::float8"),
    )
    slot = np.searchsorted(np.array(ids, dtype=np.int64), np.array(owner, dtype=np.int64))
    n = len(fleet)

    # The big reads run on their own connections while this one works out capability (see `_concurrently`).
    batteries = np.flatnonzero(fleet.type_code == BATTERY)
    reads = _concurrently(
        lambda: history.rollup_history(resource_ids=ids, start=axis_start, end=start),
        lambda: history.charger_profiles(resource_ids=ids, as_of=start if backtest else None),
        lambda: history.planned_energy(device_ids=fleet.device_id[batteries], instants=instants),
    )

    # The capability model per device (nameplate; and the fallback), and where each device may be dispatched.
    capability_kw = np.zeros((n, HOURS))
    mask = np.ones((n, HOURS))
    opted_out = np.array(
        DeviceOptOut.objects.filter(end__gt=now, start__lt=instants[-1] + timedelta(days=1))
        .values_list("device_id", flat=True)
        .distinct(),
        dtype=np.int64,
    )
    event_hours = np.array([float(r.program.typical_event_hours) for r in resources])
    for hours in np.unique(event_hours) if n else []:
        rows = np.flatnonzero(event_hours[slot] == hours)
        sub = _take(fleet, rows)
        kw = capability.available_kw(sub, now=now, instants=instants, event_hours=float(hours))
        now_kw = capability.available_kw(sub, now=now, instants=[now], event_hours=float(hours))[:, 0].copy()
        apply_capability_limits(sub, now=now, instants=instants, event_hours=float(hours), now_kw=now_kw, forecast=kw)
        capability_kw[rows] = kw
        if not backtest:
            # Opt-outs (customer overrides, storm watches): only the devices that have one in the horizon are asked.
            opted = np.flatnonzero(np.isin(fleet.device_id[rows], opted_out))
            if len(opted):
                ones = np.ones((len(opted), HOURS))
                without_opted_out(
                    _take(sub, opted),
                    now=now,
                    instants=instants,
                    event_hours=float(hours),
                    now_kw=np.ones(len(opted)),
                    forecast=ones,
                )
                mask[rows[opted]] = ones
    if not backtest and n:
        stale = ~np.isnan(fleet.last_seen_epoch) & (fleet.last_seen_epoch < (now - capability.STALE_AFTER).timestamp())
        mask[stale] = 0.0
        out_now = (fleet.online == 0) | (fleet.islanded if fleet.islanded is not None else False)
        mask[out_now, 0] = 0.0

    # Batteries: the energy their own plan holds at each hour.
    plan_kw = np.full((n, HOURS), np.nan)
    if len(batteries):
        device, k, energy, reserve = reads[2].result()
        if len(device):
            rows = np.searchsorted(fleet.device_id, device)
            plan_kw[rows, k] = core.plan_headroom_kw(
                energy,
                reserve,
                fleet.rated_kw[rows],
                fleet.round_trip_efficiency_pct[rows],
                event_hours[slot[rows]],
            )

    # History: the load factor of each resource's load groups by hour.
    y = np.full((len(ids) * len(LOAD_TYPES), n_hist + HOURS), np.nan)
    r_id, type_code, hour, load_factor, device_hours = reads[0].result()
    if len(r_id):
        known = LOAD_INDEX[type_code] >= 0
        group = np.searchsorted(np.array(ids), r_id) * len(LOAD_TYPES) + LOAD_INDEX[type_code]
        group, hour, load_factor, device_hours = group[known], hour[known], load_factor[known], device_hours[known]
        order = np.argsort(group, kind="stable")
        groups, first = np.unique(group[order], return_index=True)
        usual = np.zeros(len(y))
        for g, segment in zip(groups, np.split(device_hours[order], first[1:]), strict=True):
            usual[g] = np.median(segment)
        keep = device_hours >= MIN_COVERAGE * usual[group]
        y[group[keep], hour[keep]] = load_factor[keep]

    # Temperatures: the members' stations (a site without one, or whose station has no data: its zone's).
    weather_end = start if backtest else start + timedelta(hours=HOURS)
    own = np.array([s.strip().upper() for s in weather_station], dtype=object)
    zones = np.array([zone_station(c, z) for c, z in zip(market_code, zone, strict=True)], dtype=object)
    series = history.station_temperatures(stations=set(own[own != ""]) | set(zones), start=axis_start, end=weather_end)
    station = np.where((own != "") & np.isin(own, list(series)), own, zones)
    temperature: dict[int, np.ndarray | None] = {}
    notes: dict[int, dict] = {}
    series_arrays = {
        s: (np.array(list(by_hour), dtype=np.int64), np.array(list(by_hour.values()))) for s, by_hour in series.items()
    }
    load_rows = np.isin(fleet.type_code, LOAD_CODES)
    station_names, station_code = np.unique(station.astype(str), return_inverse=True) if n else ([], np.zeros(0, int))
    station_counts = np.zeros((len(ids), len(station_names)), dtype=np.int64)
    np.add.at(station_counts, (slot[load_rows], station_code[load_rows]), 1)
    for i, rid in enumerate(ids):
        counts = {str(station_names[j]): int(station_counts[i, j]) for j in np.flatnonzero(station_counts[i])}
        used = {s: c for s, c in counts.items() if s in series}
        if not used:
            temperature[rid] = None
            notes[rid] = {"stations": sorted(counts), "used": False, "note": "no temperature series for the members"}
            continue
        total = np.zeros(n_hist + HOURS)
        weight = np.zeros(n_hist + HOURS)
        for s, c in used.items():
            hours_known, values = series_arrays[s]
            inside = hours_known < n_hist + HOURS
            total[hours_known[inside]] += c * values[inside]
            weight[hours_known[inside]] += c
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(weight > 0, total / weight, np.nan)
        observed_until = int(np.max(np.flatnonzero(np.isfinite(t)))) if np.isfinite(t).any() else -1
        temperature[rid] = core.fill_temperature(t)
        notes[rid] = {
            "stations": dict(sorted(used.items())),
            "known_through": (axis_start + timedelta(hours=observed_until + 1)).isoformat(),
        }
        if observed_until + 1 < n_hist + HOURS:
            notes[rid]["note"] = "hours after known_through: the same hour of the latest day with a temperature"

    # Local calendars: the market's clock for the fits, each charger site's clock for the profiles.
    axis = [int((axis_start + timedelta(hours=h)).timestamp()) for h in range(n_hist + HOURS)]
    first, last = axis_start.date() - timedelta(days=1), instants[-1].date() + timedelta(days=1)
    calendars: dict[tuple[str, str], core.Calendar] = {}
    for r in resources:
        key = (r.market.code, r.market.time_zone)
        if key not in calendars:
            calendars[key] = core.calendar(axis, r.market.time_zone, _holidays(r.market.code, first, last))
    profiles = reads[1].result()
    for _, zone_name in profiles:
        if ("", zone_name) not in calendars:
            calendars[("", zone_name)] = core.calendar(axis, zone_name)
    return Run(
        now=now,
        start=start,
        axis_start=axis_start,
        n_hist=n_hist,
        instants=instants,
        resources=resources,
        fleet=fleet,
        slot=slot,
        power_kw=np.array(power, dtype=float),
        station=station,
        capability_kw=capability_kw,
        mask=mask,
        y=y,
        temperature=temperature,
        temperature_notes=notes,
        calendars=calendars,
        profiles=profiles,
        plan_kw=plan_kw,
        backtest=backtest,
    )


def _persistence_candidates(run: Run, time_zone: str) -> np.ndarray:
    """(hours forecast, PERSISTENCE_DAYS): axis indices of the same local hour 1, 2, ... days before each instant
    (beyond 24 h ahead: from 2 days back, and so on), those before the issue only; -1 where none."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(time_zone)
    out = np.full((HOURS, PERSISTENCE_DAYS), -1, dtype=np.int64)
    for k, at in enumerate(run.instants):
        local = at.astimezone(zone)
        first_back = k // 24 + 1
        for j in range(PERSISTENCE_DAYS):
            day = local.date() - timedelta(days=first_back + j)
            then = datetime(day.year, day.month, day.day, local.hour, tzinfo=zone).astimezone(UTC)
            h = int((then - run.axis_start) / timedelta(hours=1))
            out[k, j] = h if 0 <= h < run.n_hist else -1
    return out


def _persistence_offsets(total: np.ndarray, block: np.ndarray, lag: int) -> np.ndarray:
    errors = np.full(len(total), np.nan)
    errors[lag:] = total[lag:] - total[:-lag]
    return core.quantile_offsets(errors, block)


def compute(run: Run, *, nowcast_load_factor: np.ndarray | None = None) -> list[ResourceForecast]:
    """Learned, persistence and nameplate forecasts of every resource of the run (hourly and real-time).

    A backtest run forecasts the load-type part only (what can be scored), and real-time only when given what
    each load group measured just before the issue (`nowcast_load_factor`, by group; NaN where nothing)."""
    fleet, slot, n_hist = run.fleet, run.slot, run.n_hist
    derate = np.where(np.isnan(fleet.delivered_ratio), 1.0, np.clip(fleet.delivered_ratio, 0.0, 1.0))
    rated = np.nan_to_num(fleet.rated_kw)
    type_index = LOAD_INDEX[fleet.type_code.astype(np.int64)]
    is_load = type_index >= 0
    k_groups = len(run.resources) * len(LOAD_TYPES)
    group = np.where(is_load, slot * len(LOAD_TYPES) + type_index, -1)
    weight = rated * derate
    scale = np.zeros((k_groups, HOURS))
    np.add.at(scale, group[is_load], weight[is_load, None] * run.mask[is_load])
    scale_ref = np.bincount(
        group[is_load], weights=weight[is_load] * (run.mask[is_load].max(axis=1) > 0), minlength=k_groups
    )
    rated_sum = np.bincount(group[is_load], weights=rated[is_load], minlength=k_groups)
    members = np.bincount(group[is_load], minlength=k_groups)
    capability_by_group = np.zeros((k_groups, HOURS))
    np.add.at(capability_by_group, group[is_load], run.capability_kw[is_load])

    # Non-load members: batteries along their plan (else the capability model), generators as the model.
    plan = np.where(np.isnan(run.plan_kw), np.nan, run.plan_kw * derate[:, None] * run.mask)
    other = ~is_load
    learned_other_kw = np.where(np.isnan(plan), run.capability_kw, plan)
    r_count = len(run.resources)
    learned_other = np.zeros((r_count, HOURS))
    np.add.at(learned_other, slot[other], learned_other_kw[other])
    nameplate_other = np.zeros((r_count, HOURS))
    np.add.at(nameplate_other, slot[other], run.capability_kw[other])
    nameplate_total = np.zeros((r_count, HOURS))
    np.add.at(nameplate_total, slot, run.capability_kw)
    with_plan = np.zeros(r_count, dtype=np.int64)
    np.add.at(
        with_plan, slot[fleet.type_code == BATTERY], (~np.isnan(run.plan_kw[fleet.type_code == BATTERY])).any(axis=1)
    )
    batteries = np.bincount(slot[fleet.type_code == BATTERY], minlength=r_count)

    # Real-time: what fresh heartbeats measure now, per load group.
    fresh = (
        is_load
        & np.isfinite(run.power_kw)
        & ~np.isnan(fleet.last_seen_epoch)
        & (fleet.last_seen_epoch >= (run.now - FRESH_STATUS).timestamp())
        & (run.mask[:, 0] > 0)
    )
    measured = np.bincount(
        group[fresh], weights=np.clip(run.power_kw[fresh], 0, None) * derate[fresh], minlength=k_groups
    )
    measured_weight = np.bincount(group[fresh], weights=weight[fresh], minlength=k_groups)
    if nowcast_load_factor is not None:
        known = np.isfinite(nowcast_load_factor)
        measured = np.where(known, np.nan_to_num(nowcast_load_factor) * scale[:, 0], 0.0)
        measured_weight = np.where(known, scale[:, 0], 0.0)

    results = []
    persistence_cache: dict[str, np.ndarray] = {}
    for i, resource in enumerate(run.resources):
        market = resource.market
        cal = run.calendars[(market.code, market.time_zone)]
        future_block = cal.block[n_hist:]
        if market.time_zone not in persistence_cache:
            persistence_cache[market.time_zone] = _persistence_candidates(run, market.time_zone)
        candidates = persistence_cache[market.time_zone]
        temperature = run.temperature.get(resource.pk)
        inputs: dict = {
            "history_days": n_hist // 24,
            "issued_for": run.start.isoformat(),
            "members": int((slot == i).sum()),
            "temperature": run.temperature_notes.get(resource.pk, {}),
            "groups": {},
            "notes": [],
        }
        learned_load = np.zeros(HOURS)
        persistence_load = np.zeros(HOURS)
        residual_total = np.full(n_hist, np.nan)
        history_total = np.full(n_hist, np.nan)
        parameters = 0
        group_now: list[tuple[int, np.ndarray]] = []
        forecast_scales: dict[int, np.ndarray] = {}
        for j, kind in enumerate(LOAD_TYPES):
            g = i * len(LOAD_TYPES) + j
            if not members[g]:
                continue
            y = run.y[g]
            observed = int(np.isfinite(y[:n_hist]).sum())
            note = {"members": int(members[g]), "rated_kw": round(float(rated_sum[g]), 3), "observed_hours": observed}
            fit: core.GroupFit | None = None
            if j == EV and any(key[0] == resource.pk for key in run.profiles):
                predicted = _profile_load_factor(run, resource, rated_sum[g], cal)
                fit = core.fit_profile(y, predicted, n_hist)
                note["model"] = "charger profiles (hour of week)"
                note["chargers_with_profile"] = round(
                    sum(v["rated_kw"] for key, v in run.profiles.items() if key[0] == resource.pk), 3
                )
            elif observed >= MIN_HISTORY_HOURS:
                fit = core.fit_load(y, cal, temperature, n_hist)
                note["model"] = "ridge: local hour x day type" + (
                    " + degree hours" if fit.temperature else " (no temperature terms)"
                )
                if fit.months:
                    note["months"] = [m + 1 for m in fit.months]
                parameters += fit.parameters
            if fit is None:
                group_kw = capability_by_group[g]
                note["model"] = "capability model (planning defaults): too little history"
                inputs["notes"].append(f"{kind}: {observed} hours of readings, under {MIN_HISTORY_HOURS}")
                learned_load += group_kw
                persistence_load += group_kw
                group_now.append((g, group_kw))
                inputs["groups"][kind] = note
                forecast_scales[j] = scale[g]
                continue
            group_kw = np.clip(fit.fitted[n_hist:], 0, None) * scale[g]
            learned_load += group_kw
            group_now.append((g, group_kw))
            residual_kw = fit.residual[:n_hist] * scale_ref[g]
            residual_total = np.where(
                np.isnan(residual_total), residual_kw, residual_total + np.nan_to_num(residual_kw)
            )
            history_kw = y[:n_hist] * scale_ref[g]
            history_total = np.where(np.isnan(history_total), history_kw, history_total + np.nan_to_num(history_kw))
            persisted = core.first_available(y, candidates)
            persistence_load += np.where(np.isfinite(persisted), persisted * scale[g], capability_by_group[g])
            inputs["groups"][kind] = note
            forecast_scales[j] = scale[g]
        if not inputs["groups"]:
            inputs["notes"].append("no load-type members")
        if temperature is None and inputs["groups"]:
            inputs["notes"].append("no temperature: the fits have no temperature terms")

        load_ref = sum(scale_ref[g] for g, _ in group_now) or 1.0
        load_scale = sum(scale[g] for g, _ in group_now) if group_now else np.zeros(HOURS)
        spread = np.clip(np.asarray(load_scale) / load_ref, 0, 1)
        offsets = core.quantile_offsets(residual_total, cal.block[:n_hist], parameters)
        other_learned = np.zeros(HOURS) if run.backtest else learned_other[i]
        other_nameplate = np.zeros(HOURS) if run.backtest else nameplate_other[i]
        expected = learned_load + other_learned
        p10, p50, p90 = core.band(expected, offsets, future_block, spread)
        forecast = ResourceForecast(resource_id=resource.pk, inputs=inputs, scales=forecast_scales)
        forecast.hourly[Forecast.Model.LEARNED] = Series(np.clip(expected, 0, None), p10, p50, p90)
        lag = np.where(np.arange(HOURS) < 24, 24, 48)
        persistence_offsets = np.where(
            (lag == 24)[:, None, None],
            _persistence_offsets(history_total, cal.block[:n_hist], 24)[None],
            _persistence_offsets(history_total, cal.block[:n_hist], 48)[None],
        )
        persistence_expected = persistence_load + other_nameplate
        persistence_band = np.clip(
            persistence_expected[:, None] + persistence_offsets[np.arange(HOURS), future_block] * spread[:, None],
            0,
            None,
        )
        forecast.hourly[Forecast.Model.PERSISTENCE] = Series(
            np.clip(persistence_expected, 0, None),
            np.minimum(persistence_band[:, 0], persistence_band[:, 1]),
            persistence_band[:, 1],
            np.maximum(persistence_band[:, 2], persistence_band[:, 1]),
        )
        nameplate_load = sum((capability_by_group[g] for g, _ in group_now), np.zeros(HOURS))
        forecast.hourly[Forecast.Model.NAMEPLATE] = Series.exact(nameplate_load if run.backtest else nameplate_total[i])
        forecast.load_kw = {
            Forecast.Model.LEARNED: learned_load,
            Forecast.Model.PERSISTENCE: persistence_load,
            Forecast.Model.NAMEPLATE: nameplate_load,
        }
        inputs["batteries"] = {"members": int(batteries[i]), "with_plan": int(with_plan[i])}
        inputs["quantiles"] = {
            "residual_hours": int(np.isfinite(residual_total).sum()),
            "offsets_kw_by_block": np.round(offsets, 3).tolist(),
        }

        if not run.backtest or nowcast_load_factor is not None:
            forecast.real_time, inputs["real_time"] = _real_time(
                run,
                market.real_time_interval_minutes,
                group_now,
                measured,
                measured_weight,
                scale,
                other_learned,
                other_nameplate,
                offsets,
                cal,
                spread,
            )
        results.append(forecast)
    return results


def _profile_load_factor(run: Run, resource: VirtualResource, rated_all: float, cal: core.Calendar) -> np.ndarray:
    """The EV group's load factor over the axis: its chargers' profiles (each in its site's clock), and the
    capability model's charging share for the chargers without one."""
    kw = np.zeros(run.n_axis)
    rated_with = 0.0
    for (rid, zone_name), entry in run.profiles.items():
        if rid != resource.pk:
            continue
        kw += entry["kw"][run.calendars[("", zone_name)].how]
        rated_with += entry["rated_kw"]
    kw += max(rated_all - rated_with, 0.0) * capability.EV_CHARGING_HOUR[cal.hour]
    return kw / rated_all if rated_all > 0 else np.zeros(run.n_axis)


def real_time_instants(now: datetime, minutes: int) -> list[datetime]:
    """The real-time intervals of the next 2 hours, from the one containing `now`."""
    at = now.astimezone(UTC).replace(second=0, microsecond=0)
    at -= timedelta(minutes=at.minute % minutes)
    return [at + timedelta(minutes=minutes * i) for i in range(REAL_TIME_MINUTES // minutes)]


def _real_time(
    run, minutes, group_now, measured, measured_weight, scale, other_learned, other_nameplate, offsets, cal, spread
):
    instants = real_time_instants(run.now, minutes)
    hour_index = np.array([int((t - run.start) / timedelta(hours=1)) for t in instants])
    ahead = np.array(
        [max(((t + timedelta(minutes=minutes / 2)) - run.now) / timedelta(minutes=1), 0) for t in instants]
    )
    learned = np.zeros(len(instants))
    persisted = np.zeros(len(instants))
    reporting = 0.0
    for g, group_kw in group_now:
        model = group_kw[hour_index]
        model_now = float(group_kw[0])
        share = measured_weight[g] / scale[g, 0] if scale[g, 0] > 0 else 0.0
        share = min(share, 1.0)
        if share > 0:
            nowcast = float(measured[g]) + (1 - share) * model_now
            learned += core.blend_real_time(model, ahead, nowcast, model_now)
            persisted += float(measured[g]) / share
            reporting += measured_weight[g]
        else:
            learned += model
            persisted += model_now
    learned += other_learned[hour_index]
    persisted += other_nameplate[hour_index]
    block = cal.block[run.n_hist + hour_index]
    p10, p50, p90 = core.band(learned, offsets, block, core.real_time_spread(ahead) * spread[hour_index])
    note = {
        "interval_minutes": minutes,
        "blend": "hourly model moved by the heartbeats' measured kW now, weight exp(-minutes ahead / 30)",
        "reporting_rated_kw": round(float(reporting), 3),
    }
    return {
        Forecast.Model.LEARNED: Series(learned, p10, p50, p90),
        Forecast.Model.PERSISTENCE: Series.exact(persisted),
    }, note


def _rows(run: Run, results: list[ResourceForecast], kinds: tuple[str, ...]) -> list[Forecast]:
    rows = []
    for result in results:
        market = next(r.market for r in run.resources if r.pk == result.resource_id)
        for kind in kinds:
            if kind == Forecast.Kind.HOURLY:
                series, start, minutes = result.hourly, run.start, 60
            else:
                series = result.real_time
                minutes = market.real_time_interval_minutes
                start = real_time_instants(run.now, minutes)[0]
            for model, s in series.items():
                rows.append(
                    Forecast(
                        resource_id=result.resource_id,
                        kind=kind,
                        model=model,
                        issued_at=run.now,
                        start=start,
                        interval_minutes=minutes,
                        expected_kw=np.round(s.expected, 3).tolist(),
                        p10_kw=np.round(s.p10, 3).tolist(),
                        p50_kw=np.round(s.p50, 3).tolist(),
                        p90_kw=np.round(s.p90, 3).tolist(),
                        inputs=result.inputs if model == Forecast.Model.LEARNED else {"baseline_of": "learned"},
                    )
                )
    return rows


def forecast_resources(
    *, resource_ids: list[int] | None = None, now: datetime, kinds: tuple[str, ...] = ("hourly", "real_time")
) -> list[Forecast]:
    """Forecast the resources (all registered and active ones when None) as of `now` and store them: learned,
    persistence and nameplate hourly forecasts, learned and persistence real-time ones. Forecasts past their
    retention that no offer refers to are removed in the same transaction."""
    if resource_ids is None:
        resource_ids = list(
            VirtualResource.objects.filter(state__in=[ResourceState.REGISTERED, ResourceState.ACTIVE]).values_list(
                "pk", flat=True
            )
        )
    if not resource_ids:
        return []
    run = load_run(resource_ids=list(resource_ids), now=now)
    results = compute(run)
    rows = _rows(run, results, kinds)
    with transaction.atomic():
        for kind in kinds:
            Forecast.objects.filter(kind=kind, issued_at__lt=now - RETENTION[kind], offers__isnull=True).delete()
        Forecast.objects.bulk_create(rows, batch_size=2000)
    return rows
