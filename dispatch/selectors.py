"""Reads for dispatch: the candidates of an event (one query), live commands, target against delivered."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from django.db import connection

from aggregator.aggregation import capability
from aggregator.aggregation.selectors import load_fleet
from dispatch import allocation
from dispatch.models import DeviceOptOut, DeviceSchedule, DispatchEvent

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
)


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
    fleet, (customer, enrolled, opted_out, hours, events) = load_fleet(
        where="m.resource_id = %s",
        params=[window[1], window[0], event.resource.program_id, season_of(event), event.resource_id],
        joins=_JOINS,
        extra=_EXTRA,
    )
    available = capability.available_kw(fleet, now=now, instants=instants, event_hours=event.hours)
    limit_by_plans(fleet, instants=instants, event_hours=event.hours, out=available)
    excluded = np.full(len(fleet), None, dtype=object)
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
    )
    return c, fleet, customer.astype(np.int64)


def plan_costs(device_ids: np.ndarray, window: tuple[datetime, datetime]) -> np.ndarray:
    """Per device, what a kWh taken over `window` costs its customer's bill: the mean over the window's intervals of
    its battery plan's value of stored energy (dispatch.schedules); NaN for a device without a plan there."""
    from math import ceil, floor

    out = np.full(len(device_ids), np.nan)
    if not len(device_ids):
        return out
    start, end = window
    plans = (
        DeviceSchedule.objects.filter(
            device_id__in=device_ids.tolist(), start__lt=end, start__gte=start - timedelta(hours=26)
        )
        .exclude(value_per_kwh=[])
        .values_list("device_id", "start", "step_seconds", "value_per_kwh")
    )
    totals: dict[int, list[float]] = {}
    for device_id, first, step, values in plans:
        a = max(0, floor((start - first).total_seconds() / step))
        b = min(len(values), ceil((end - first).total_seconds() / step))
        if b > a:
            totals.setdefault(device_id, []).extend(values[a:b])
    for device_id, values in totals.items():
        out[int(np.searchsorted(device_ids, device_id))] = float(np.mean(values))
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
