"""Reads for dispatch: the candidates of an event (one query), live commands, target against delivered."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from django.db import connection

from aggregator.aggregation import capability
from aggregator.aggregation.selectors import load_fleet
from dispatch import allocation, overrides, rebound
from dispatch.models import DeviceOptOut, DeviceSeasonBurden, DispatchEvent, EventState, EventTransition

# Current members of the resource, with what allocation needs beside the capability model.
_JOINS = """
JOIN aggregator_resourcemembership m ON m.device_id = d.id AND m.left_at IS NULL
LEFT JOIN enrollment_enrollment e ON e.device_id = d.id AND e.program_id = %s AND e.state = 'active'
LEFT JOIN (
    SELECT s2.customer_id, sum(b.hours) AS hours, sum(b.events) AS events
    FROM dispatch_deviceseasonburden b
    JOIN enrollment_device d2 ON d2.id = b.device_id
    JOIN enrollment_site s2 ON s2.id = d2.site_id
    WHERE b.season = %s
    GROUP BY s2.customer_id
) burden ON burden.customer_id = s.customer_id
"""
_EXTRA = (
    "s.customer_id",
    "e.id IS NOT NULL",
    "EXISTS (SELECT 1 FROM dispatch_deviceoptout o WHERE o.device_id = d.id AND o.start < %s AND o.end > %s)",
    "coalesce(burden.hours, 0)::float8",
    "coalesce(burden.events, 0)",
    # The device's own limits (dispatch.allocation.Limits), its output now, its site and the site's export limit.
    "coalesce(d.min_kw, 0)::float8",
    "coalesce(d.min_run_minutes, 0)",
    "coalesce(d.notice_minutes, 0)",
    "d.ramp_kw_per_minute::float8",
    "d.max_event_hours_per_day::float8",
    "d.max_run_hours_per_year::float8",
    "d.site_id",
    "s.export_limit_kw::float8",
)
_INJECTING = {capability.TYPE_CODE[t] for t in ("battery", "generator", "chp")}
# Hours each device is already asked for in other live events of the local day (devices with a daily limit).
_HOURS_TODAY = """
SELECT a.device_id, sum(extract(epoch FROM least(i."end", day."end") - greatest(i.start, day.start)) / 3600.0)
FROM dispatch_allocation a
JOIN dispatch_dispatchevent ev ON ev.id = a.event_id AND ev.state NOT IN ('cancelled', 'failed')
JOIN enrollment_device d ON d.id = a.device_id JOIN enrollment_site s ON s.id = d.site_id
CROSS JOIN LATERAL (
    SELECT date_trunc('day', %(start)s AT TIME ZONE s.time_zone) AT TIME ZONE s.time_zone AS start,
           (date_trunc('day', %(start)s AT TIME ZONE s.time_zone) + interval '1 day') AT TIME ZONE s.time_zone AS "end"
) day
CROSS JOIN LATERAL (
    SELECT start, "end", row_number() OVER (ORDER BY start) AS n FROM dispatch_eventinterval WHERE event_id = a.event_id
) i
WHERE a.device_id = ANY(%(devices)s) AND a.event_id <> %(event)s AND a.kw[i.n] > 0
  AND i.start < day."end" AND i."end" > day.start
GROUP BY a.device_id
"""
# The site meter's lowest kW by local hour over two weeks: the load a capped site has at least (none: 0).
_LEAST_LOAD = """
SELECT r.meter_id, extract(hour FROM r.start AT TIME ZONE s.time_zone)::int, min(r.kwh * 3600 / r.interval_seconds)
FROM settlement_reading r JOIN enrollment_site s ON s.id = r.meter_id
WHERE r.meter_kind = 1 AND r.meter_id = ANY(%(sites)s) AND r.start >= %(since)s AND r.start < %(until)s
  AND r.kwh IS NOT NULL
GROUP BY 1, 2
"""


def served_end(event: DispatchEvent) -> datetime | None:
    """Until when the event asked its devices for kW: its end once it ran (completed, or active); the moment it was
    cancelled when that came after it started (an event stopped early, or replaced by a later instruction, still
    asked for what it asked until then); None for one that never started."""
    if event.state in (EventState.COMPLETED, EventState.ACTIVE):
        return event.end
    if event.state != EventState.CANCELLED:
        return None
    cancelled = (
        EventTransition.objects.filter(event=event, to_state=EventState.CANCELLED)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    if cancelled is None or cancelled <= event.start:
        return None
    return min(cancelled, event.end)


def season_of(event: DispatchEvent) -> int:
    return event.start.astimezone(ZoneInfo(event.resource.market.time_zone)).year


def candidates(
    *, event: DispatchEvent, instants: list[datetime], now: datetime, window: tuple[datetime, datetime]
) -> tuple[allocation.Candidates, capability.Fleet, np.ndarray]:
    """The resource's current members as allocation candidates, kW available at each of `instants`.

    `window` is the part of the event still to serve: an opt-out overlapping it excludes
    the device. Returns (candidates, fleet, customer ids).
    """
    # The extra columns come before the WHERE in the statement, so their parameters go first.
    season = season_of(event)
    fleet, columns = load_fleet(
        where="m.resource_id = %s",
        params=[window[1], window[0], event.resource.program_id, season, event.resource_id],
        joins=_JOINS,
        extra=_EXTRA,
    )
    customer, enrolled, opted_out, hours, events = columns[:5]
    available = capability.available_kw(fleet, now=now, instants=instants, event_hours=event.hours)
    limit_by_plans(fleet, instants=instants, event_hours=event.hours, out=available)
    excluded = np.full(len(fleet), None, dtype=object)
    limits = _device_limits(fleet, columns[5:], event=event, instants=instants, now=now, season=season)
    excluded[(limits.min_run > 0) & (limits.min_run > len(instants))] = allocation.RUN_TOO_LONG
    too_soon = _notice_and_ramp(fleet, columns[5:], event=event, instants=instants, now=now, available=available)
    excluded[too_soon] = allocation.SHORT_NOTICE
    excluded[_utility_overrides(fleet, event=event, instants=instants, available=available, limits=limits)] = (
        allocation.UTILITY_OVERRIDE
    )
    excluded[fleet.online == 0] = allocation.OFFLINE
    excluded[fleet.islanded] = allocation.OFF_GRID
    excluded[opted_out.astype(bool)] = allocation.OPTED_OUT
    excluded[~enrolled.astype(bool)] = allocation.NOT_ENROLLED
    c = allocation.Candidates(
        device_id=fleet.device_id,
        available=available,
        excluded=excluded,
        customer_hours=hours.astype(float),
        customer_events=events.astype(np.int64),
        customer_cost=plan_costs(fleet.device_id, window),
        limits=limits,
    )
    return c, fleet, customer.astype(np.int64)


def _nullable_floats(values: np.ndarray) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _interval_hours(event: DispatchEvent, instants: list[datetime]) -> np.ndarray:
    ends = [*instants[1:], event.end]
    return np.array([(b - a).total_seconds() / 3600 for a, b in zip(instants, ends)])


def _notice_and_ramp(
    fleet: capability.Fleet,
    columns: list[np.ndarray],
    *,
    event: DispatchEvent,
    instants: list[datetime],
    now: datetime,
    available: np.ndarray,
) -> np.ndarray:
    """Lower `available` in place: nothing in intervals that start before a device's notice has run (from when it
    hears, the later of now and the event's notice), and never more than a device ramps to in an interval (or in
    the event's ramp time, if longer). Returns which devices' notice leaves them no interval at all."""
    _, _, notice, ramp = columns[:4]
    if not len(instants) or not len(fleet):
        return np.zeros(len(fleet), dtype=bool)
    heard = max(now, event.notify_at).timestamp()
    starts = np.array([at.timestamp() for at in instants])
    notice = notice.astype(float) * 60
    short = (notice[:, None] > 0) & (starts[None, :] < heard + notice[:, None])
    available[short] = 0.0
    ramp = _nullable_floats(ramp)
    minutes = np.maximum(_interval_hours(event, instants) * 60, event.ramp_seconds / 60)
    ramped = ~np.isnan(ramp)
    available[ramped] = np.minimum(available[ramped], ramp[ramped, None] * minutes[None, :])
    return short.all(axis=1)


# Device types whose shed load comes back after an event (dispatch.rebound).
REBOUND_TYPES = (capability.TYPE_CODE["thermostat"], capability.TYPE_CODE["water_heater"])


def _device_limits(
    fleet: capability.Fleet,
    columns: list[np.ndarray],
    *,
    event: DispatchEvent,
    instants: list[datetime],
    now: datetime,
    season: int,
) -> allocation.Limits:
    """Each device's limits for this event (dispatch.allocation.Limits): its minimum kW, its minimum run in the
    event's intervals, the event hours left to it (per event, per local day, per engine year), and its site's cap
    on what its injecting devices give (export limit + the site's least load at that hour)."""
    min_kw, min_run, _, _, per_day, per_year, site, export_limit = columns
    n = len(fleet)
    hours = _interval_hours(event, instants)
    limits = allocation.Limits.none(n, hours)
    if not n:
        return limits
    limits.min_kw = min_kw.astype(float)
    if len(hours):
        run_minutes = min_run.astype(float)
        # The fewest intervals covering the run from any start: the whole event when it is longer than the event.
        lengths = hours * 60
        need = np.zeros(n, dtype=np.int64)
        for i in np.flatnonzero(run_minutes > 0):
            covered = np.cumsum(lengths)
            need[i] = int(np.searchsorted(covered, run_minutes[i] - 1e-9) + 1)
        limits.min_run = need
    per_event = np.where(np.isnan(fleet.max_event_hours), np.inf, fleet.max_event_hours)
    left = per_event.copy()
    per_day = _nullable_floats(per_day)
    daily = np.flatnonzero(~np.isnan(per_day))
    if len(daily):
        used = dict(
            _rows(_HOURS_TODAY, {"start": event.start, "devices": fleet.device_id[daily].tolist(), "event": event.pk})
        )
        for i in daily:
            left[i] = min(left[i], max(per_day[i] - float(used.get(int(fleet.device_id[i]), 0.0)), 0.0))
    per_year = _nullable_floats(per_year)
    yearly = np.flatnonzero(~np.isnan(per_year))
    if len(yearly):
        used = dict(
            DeviceSeasonBurden.objects.filter(
                device_id__in=fleet.device_id[yearly].tolist(), season=season
            ).values_list("device_id", "hours")
        )
        for i in yearly:
            left[i] = min(left[i], max(per_year[i] - float(used.get(int(fleet.device_id[i]), 0.0)), 0.0))
    limits.max_hours = left
    if fleet.power_kw is not None:  # an engine already running is above its minimum: what it adds has none
        engines = np.isin(fleet.type_code, [capability.TYPE_CODE["generator"], capability.TYPE_CODE["chp"]])
        limits.min_kw[engines & (np.nan_to_num(fleet.power_kw) < 0)] = 0.0
    export_limit = _nullable_floats(export_limit)
    injecting = np.isin(fleet.type_code, list(_INJECTING)) | (
        (fleet.type_code == capability.TYPE_CODE["ev_charger"]) & fleet.bidirectional
    )
    capped = injecting & ~np.isnan(export_limit)
    if capped.any() and len(instants):
        sites = np.unique(site[capped].astype(np.int64))
        index = {int(s): k for k, s in enumerate(sites)}
        least = _rows(_LEAST_LOAD, {"sites": sites.tolist(), "since": now - timedelta(days=14), "until": now})
        floor: dict[tuple[int, int], float] = {(int(m), int(h)): max(float(kw), 0.0) for m, h, kw in least}
        cap = np.zeros((len(sites), len(instants)))
        zones = {int(s): ZoneInfo(tz) for s, tz in zip(site[capped].astype(np.int64), fleet.time_zone[capped])}
        limit_of = {int(s): float(x) for s, x in zip(site[capped].astype(np.int64), export_limit[capped])}
        for s, k in index.items():
            for t, at in enumerate(instants):
                cap[k, t] = limit_of[s] + floor.get((s, at.astimezone(zones[s]).hour), 0.0)
        limits.site = np.where(capped, [index.get(int(x), -1) for x in site.astype(np.int64)], -1).astype(np.int64)
        limits.site_cap = cap
    program = event.resource.program
    if program.rebound_limit_kw is not None and program.rebound_pct > 0:
        limits.rebound = np.isin(fleet.type_code, REBOUND_TYPES)
        limits.rebound_kwh = rebound.max_shed_kwh(
            limit_kw=float(program.rebound_limit_kw),
            share=float(program.rebound_pct) / 100,
            minutes=program.rebound_minutes,
        )
    return limits


def _utility_overrides(
    fleet: capability.Fleet,
    *,
    event: DispatchEvent,
    instants: list[datetime],
    available: np.ndarray,
    limits: allocation.Limits,
) -> np.ndarray:
    """Apply the distribution utilities' overrides over the event (dispatch.overrides): a blocked device has nothing
    in the intervals the window covers; a capped area's devices share its cap (limits.area). Returns which devices
    a block leaves no interval at all."""
    blocked = np.zeros(available.shape, dtype=bool)
    if not len(fleet) or not instants:
        return np.zeros(len(fleet), dtype=bool)
    starts = np.array([at.timestamp() for at in instants])
    ends = np.array([*starts[1:], event.end.timestamp()])
    area = np.full(len(fleet), -1, dtype=np.int64)
    caps = []
    for override in overrides.in_effect(market_id=event.resource.market_id, start=event.start, end=event.end):
        covered = (starts < override.end.timestamp()) & (ends > override.start.timestamp())
        if not covered.any():
            continue
        members = np.isin(fleet.device_id, overrides.area_devices(override))
        if override.cap_kw is None:
            blocked[np.ix_(members, covered)] = True
        else:
            area[members] = len(caps)
            caps.append(np.where(covered, float(override.cap_kw), np.inf))
    available[blocked] = 0.0
    if caps:
        limits.area, limits.area_cap = area, np.array(caps)
    return blocked.all(axis=1) & blocked.any(axis=1)


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# Each device's mean value of stored energy over a window, over the intervals of its plans there (1-based slices).
_PLAN_COSTS = """
SELECT p.device_id, avg(v)
FROM dispatch_deviceschedule p
CROSS JOIN LATERAL unnest(p.value_per_kwh[
    greatest(0, floor(extract(epoch FROM %(start)s - p.start) / p.step_seconds))::int + 1 :
    least(cardinality(p.value_per_kwh), ceil(extract(epoch FROM %(end)s - p.start) / p.step_seconds)::int)
]) v
WHERE p.device_id = ANY(%(devices)s) AND p.start < %(end)s AND p.start >= %(since)s AND cardinality(p.value_per_kwh) > 0
GROUP BY p.device_id
"""


def plan_costs(device_ids: np.ndarray, window: tuple[datetime, datetime]) -> np.ndarray:
    """Per device, what a kWh taken over `window` costs its customer's bill: the mean over the window's intervals of
    its battery plan's value of stored energy (dispatch.schedules); NaN for a device without a plan there. One
    statement, the ids as one array parameter."""
    out = np.full(len(device_ids), np.nan)
    if not len(device_ids):
        return out
    start, end = window
    rows = _rows(
        _PLAN_COSTS,
        {"start": start, "end": end, "since": start - timedelta(hours=26), "devices": device_ids.tolist()},
    )
    for device_id, value in rows:
        out[int(np.searchsorted(device_ids, device_id))] = float(value)
    return out


_PERFORMANCE = """
SELECT i.start, i."end", i.target_kw::float8,
       coalesce((SELECT sum(a.kw[i.n]) FROM dispatch_allocation a WHERE a.event_id = i.event_id), 0),
       (SELECT sum(r.delivered_kw) FROM dispatch_deliveryreport r WHERE r.event_id = i.event_id AND r.interval_start = i.start),
       (SELECT count(*) FROM dispatch_deliveryreport r WHERE r.event_id = i.event_id AND r.interval_start = i.start)
FROM (SELECT *, row_number() OVER (ORDER BY start) AS n FROM dispatch_eventinterval WHERE event_id = %s) i
ORDER BY i.start
"""


def target_vs_delivered(*, event: DispatchEvent) -> list[dict]:
    """Per interval: target, allocated (with the margin) and delivered kW as devices reported it."""
    with connection.cursor() as cursor:
        cursor.execute(_PERFORMANCE, [event.pk])
        rows = cursor.fetchall()
    return [
        {
            "start": start,
            "end": end,
            "target_kw": round(target, 3),
            "allocated_kw": round(allocated, 3),
            "delivered_kw": None if delivered is None else round(delivered, 3),
            "reporting_devices": reporting,
        }
        for start, end, target, allocated, delivered, reporting in rows
    ]


# --- what dispatch takes off capability (registered with aggregation in DispatchConfig.ready) ---


def without_opted_out(
    fleet: capability.Fleet,
    *,
    now: datetime,
    instants: list[datetime],
    event_hours: float,
    now_kw: np.ndarray,
    forecast: np.ndarray,
) -> None:
    """Devices out of events for a while (the customer's override, a storm watch) count nothing over an event that
    would overlap it: zeroed in place, now and at each forecast hour."""
    if not len(fleet):
        return
    span = timedelta(hours=event_hours)
    horizon = (instants[-1] if instants else now) + span
    # Every opt-out in the horizon, kept for the fleet's devices here: a fleet of 100,000 would not fit an IN list.
    windows = DeviceOptOut.objects.filter(end__gt=now, start__lt=horizon)
    for device_id, start, end in windows.values_list("device_id", "start", "end"):
        i = int(np.searchsorted(fleet.device_id, device_id))
        if i >= len(fleet) or fleet.device_id[i] != device_id:
            continue
        if start < now + span and end > now:
            now_kw[i] = 0.0
        for k, at in enumerate(instants):
            if start < at + span and end > at:
                forecast[i, k] = 0.0


# Plans as rows of plain values, their arrays in PostgreSQL's binary form: a fleet's plans (days of 15-minute steps
# for every battery) read in one query without parsing a Python float per step.
_PLAN_ARRAYS = """
SELECT p.device_id, extract(epoch FROM p.start)::float8, p.step_seconds, p.reserve_kwh, array_send(p.kw),
       array_send(p.energy_kwh)
FROM dispatch_deviceschedule p JOIN unnest(%s::int8[]) AS battery(id) ON battery.id = p.device_id
WHERE p.start <= %s AND p.start > %s
"""


def _floats(data) -> np.ndarray:
    """A one-dimensional float8[] without NULLs from its binary form (array_send): header, then (length, value)s."""
    raw = bytes(data or b"")
    if len(raw) < 12 or int.from_bytes(raw[:4], "big") == 0:
        return np.zeros(0)
    dims = int.from_bytes(raw[:4], "big")
    return np.frombuffer(raw[12 + 8 * dims :], dtype=[("length", ">i4"), ("value", ">f8")])["value"].astype(float)


@dataclass
class PlanShape:
    """Battery plans of one step and length, stacked: a row per plan."""

    step: int
    length: int
    device_id: np.ndarray
    start: np.ndarray  # epoch seconds
    reserve: np.ndarray
    kw: np.ndarray  # (plans, length)
    energy: np.ndarray  # (plans, length): planned kWh at each step's end


def plans_by_shape(device_ids: np.ndarray, *, first: datetime, last: datetime) -> list[PlanShape]:
    """The plans of these batteries that may cover an instant from `first` to `last` (starting at most 26 hours
    before `first`), grouped by step and length; one query."""
    with connection.cursor() as cursor:
        cursor.execute(_PLAN_ARRAYS, [np.asarray(device_ids).tolist(), last, first - timedelta(hours=26)])
        rows = cursor.fetchall()
    shapes: dict[tuple[int, int], list[tuple]] = {}
    for device_id, start, step, reserve, kw, energy in rows:
        kw, energy = _floats(kw), _floats(energy)
        if len(kw) and len(energy) == len(kw):
            shapes.setdefault((step, len(kw)), []).append((device_id, start, reserve, kw, energy))
    return [
        PlanShape(
            step=step,
            length=length,
            device_id=np.array([p[0] for p in plans], dtype=np.int64),
            start=np.array([p[1] for p in plans]),
            reserve=np.array([p[2] for p in plans]),
            kw=np.stack([p[3] for p in plans]),
            energy=np.stack([p[4] for p in plans]),
        )
        for (step, length), plans in shapes.items()
    ]


def limit_by_plans(fleet: capability.Fleet, *, instants: list[datetime], event_hours: float, out: np.ndarray) -> None:
    """A battery with a standing plan (dispatch.schedules) offers at an instant only the energy its plan does not need:
    its planned energy then, less its reserve and what the plan still discharges for the site after the event, over
    the event's hours. `out` (devices x instants, kW) is lowered in place; instants outside any plan keep theirs.
    Vectorised over the plans of one step and length at a time."""
    batteries = fleet.device_id[fleet.type_code == capability.TYPE_CODE["battery"]]
    if not len(batteries) or not instants:
        return
    epochs = np.array([at.timestamp() for at in instants])
    for plans in plans_by_shape(batteries, first=min(instants), last=max(instants)):
        step, length, start, reserve = plans.step, plans.length, plans.start, plans.reserve
        kw, energy = plans.kw, plans.energy
        i = np.searchsorted(fleet.device_id, plans.device_id)
        n = np.floor((epochs[None, :] - start[:, None]) / step).astype(int)
        inside = (n >= 0) & (n < length)
        if not inside.any():
            continue
        rte = fleet.round_trip_efficiency_pct[i]
        eff = np.sqrt(np.where(np.isnan(rte), 90.0, rte) / 100.0)
        discharge = np.clip(kw, 0, None) * step / 3600 / eff[:, None]
        # kWh the plan discharges from interval j on
        later = np.concatenate([np.cumsum(discharge[:, ::-1], axis=1)[:, ::-1], np.zeros((len(start), 1))], axis=1)
        after = np.minimum(n + int(np.ceil(event_hours * 3600 / step)), length)
        p, k = np.nonzero(inside)
        usable = energy[p, np.maximum(n[p, k] - 1, 0)] - reserve[p] - later[p, after[p, k]]
        np.minimum.at(out, (i[p], k), np.clip(usable, 0, None) * eff[p] / event_hours)


def plans_limit_capability(
    fleet: capability.Fleet,
    *,
    now: datetime,
    instants: list[datetime],
    event_hours: float,
    now_kw: np.ndarray,
    forecast: np.ndarray,
) -> None:
    """Capability's view of battery plans: now and each forecast hour keep only what the plans leave."""
    both = np.concatenate([now_kw[:, None], forecast], axis=1)  # one read of the plans for now and every hour
    limit_by_plans(fleet, instants=[now, *instants], event_hours=event_hours, out=both)
    now_kw[:] = both[:, 0]
    forecast[:] = both[:, 1:]
