"""Reads for aggregation: fleets as arrays for the capability model, set-based."""

from datetime import datetime

import numpy as np
from django.db import connection

from aggregator.aggregation import capability
from aggregator.aggregation.models import ResourceMembership, VirtualResource

# One row per device in capability.Fleet.FIELDS order, plus the caller's extra columns.
_FLEET_SQL = """
SELECT d.id, d.device_type, d.rated_kw::float8, d.energy_kwh::float8, d.backup_reserve_pct::float8,
       d.round_trip_efficiency_pct::float8, d.max_event_hours::float8, d.bidirectional, s.time_zone,
       CASE WHEN st.device_id IS NULL THEN NULL WHEN st.online THEN 1.0 ELSE 0.0 END,
       extract(epoch FROM st.last_seen_at)::float8, st.state_of_charge_pct::float8,
       CASE WHEN st.ev_plugged_in IS NULL THEN NULL WHEN st.ev_plugged_in THEN 1.0 ELSE 0.0 END,
       p.delivered_ratio::float8, coalesce(st.grid_status IN ('islanded', 'outage'), false) {extra}
FROM enrollment_device d
JOIN enrollment_site s ON s.id = d.site_id
LEFT JOIN enrollment_devicestatus st ON st.device_id = d.id
LEFT JOIN aggregator_deviceperformance p ON p.device_id = d.id
{joins}
WHERE {where}
ORDER BY d.id
"""


def load_fleet(
    *, where: str, params: list, joins: str = "", extra: tuple[str, ...] = ()
) -> tuple[capability.Fleet, list[np.ndarray]]:
    """A Fleet for the devices matching `where`, and the extra columns as arrays."""
    sql = _FLEET_SQL.format(extra="".join(f", {e}" for e in extra), joins=joins, where=where)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    n = len(capability.Fleet.FIELDS) + 1  # and islanded
    columns = list(zip(*rows)) if rows else [()] * (n + len(extra))
    fleet = capability.Fleet(
        device_id=np.array(columns[0], dtype=np.int64),
        type_code=np.array([capability.TYPE_CODE[t] for t in columns[1]], dtype=np.int8),
        rated_kw=np.array(columns[2], dtype=float),
        energy_kwh=np.array(columns[3], dtype=float),
        backup_reserve_pct=np.array(columns[4], dtype=float),
        round_trip_efficiency_pct=np.array(columns[5], dtype=float),
        max_event_hours=np.array(columns[6], dtype=float),
        bidirectional=np.array(columns[7], dtype=bool),
        time_zone=np.array(columns[8], dtype=object),
        online=np.array(columns[9], dtype=float),
        last_seen_epoch=np.array(columns[10], dtype=float),
        state_of_charge_pct=np.array(columns[11], dtype=float),
        ev_plugged_in=np.array(columns[12], dtype=float),
        delivered_ratio=np.array(columns[13], dtype=float),
        islanded=np.array(columns[14], dtype=bool),
    )
    return fleet, [np.array(columns[n + i], dtype=object) for i in range(len(extra))]


_CURRENT_MEMBERS = "JOIN aggregator_resourcemembership m ON m.device_id = d.id AND m.left_at IS NULL"


def member_fleet(*, resource_ids: list[int]) -> tuple[capability.Fleet, np.ndarray]:
    """Current members of the given resources, and each member's resource id."""
    fleet, (resource,) = load_fleet(
        where="m.resource_id = ANY(%s)", params=[list(resource_ids)], joins=_CURRENT_MEMBERS, extra=("m.resource_id",)
    )
    return fleet, resource.astype(np.int64)


def members_on(*, resource: VirtualResource, at: datetime):
    """Who was in the resource at an instant (settlement asks this of every day)."""
    return ResourceMembership.objects.filter(resource=resource, joined_at__lte=at).exclude(left_at__lte=at)


def _without_opted_out(fleet, *, now, instants, event_hours: float, now_kw: np.ndarray, forecast: np.ndarray) -> None:
    """Devices out of events for a while (the customer's override, a storm watch) count nothing over an event that
    would overlap it: zeroed in place, now and at each forecast hour."""
    from datetime import timedelta

    from dispatch.models import DeviceOptOut

    if not len(fleet):
        return
    span = timedelta(hours=event_hours)
    horizon = (instants[-1] if instants else now) + span
    windows = DeviceOptOut.objects.filter(device_id__in=fleet.device_id.tolist(), end__gt=now, start__lt=horizon)
    for device_id, start, end in windows.values_list("device_id", "start", "end"):
        i = int(np.searchsorted(fleet.device_id, device_id))
        if start < now + span and end > now:
            now_kw[i] = 0.0
        for k, at in enumerate(instants):
            if start < at + span and end > at:
                forecast[i, k] = 0.0


def limit_by_plans(fleet, *, instants, event_hours: float, out: np.ndarray) -> None:
    """A battery with a standing plan (dispatch.schedules) offers at an instant only the energy its plan does not need:
    its planned energy then, less its reserve and what the plan still discharges for the site after the event, over
    the event's hours. `out` (devices x instants, kW) is lowered in place; instants outside any plan keep theirs."""
    from datetime import timedelta

    from dispatch.models import DeviceSchedule

    batteries = fleet.device_id[fleet.type_code == capability.TYPE_CODE["battery"]]
    if not len(batteries) or not instants:
        return
    plans = DeviceSchedule.objects.filter(
        device_id__in=batteries.tolist(), start__lte=max(instants), start__gt=min(instants) - timedelta(hours=26)
    ).values_list("device_id", "start", "step_seconds", "kw", "energy_kwh", "reserve_kwh")
    epochs = np.array([at.timestamp() for at in instants])
    for device_id, start, step, kw, energy, reserve in plans:
        i = int(np.searchsorted(fleet.device_id, device_id))
        kw, energy = np.asarray(kw), np.asarray(energy)
        n = np.floor((epochs - start.timestamp()) / step).astype(int)
        inside = (n >= 0) & (n < len(kw))
        if not inside.any():
            continue
        rte = fleet.round_trip_efficiency_pct[i]
        eff = float(np.sqrt((rte if not np.isnan(rte) else 90.0) / 100.0))
        discharge = np.clip(kw, 0, None) * step / 3600 / eff
        later = np.concatenate([np.cumsum(discharge[::-1])[::-1], [0.0]])  # kWh the plan discharges from interval j on
        after = np.minimum(n + int(np.ceil(event_hours * 3600 / step)), len(kw))
        k = np.flatnonzero(inside)
        usable = energy[np.maximum(n[k] - 1, 0)] - reserve - later[after[k]]
        out[i, k] = np.minimum(out[i, k], np.clip(usable, 0, None) * eff / event_hours)


def capability_of(*, resource_ids: list[int], now: datetime, hours: int, event_hours: float) -> dict[int, dict]:
    """Per resource: kW now, kW by hour for `hours` hours, and members; one query for all."""
    fleet, owner = member_fleet(resource_ids=resource_ids)
    instants = capability.hour_starts(now, hours)
    now_kw = capability.available_kw(fleet, now=now, instants=[now], event_hours=event_hours)[:, 0]
    forecast = capability.available_kw(fleet, now=now, instants=instants, event_hours=event_hours)
    current = now_kw[:, None].copy()
    limit_by_plans(fleet, instants=[now], event_hours=event_hours, out=current)
    now_kw = current[:, 0]
    limit_by_plans(fleet, instants=instants, event_hours=event_hours, out=forecast)
    _without_opted_out(fleet, now=now, instants=instants, event_hours=event_hours, now_kw=now_kw, forecast=forecast)
    result = {}
    index = {rid: i for i, rid in enumerate(resource_ids)}
    slot = np.array([index[r] for r in owner], dtype=np.int64) if len(owner) else np.zeros(0, dtype=np.int64)
    k = len(resource_ids)
    totals_now = np.bincount(slot, weights=now_kw, minlength=k)
    counts = np.bincount(slot, minlength=k)
    totals = np.zeros((k, len(instants)))
    np.add.at(totals, slot, forecast)
    by_type = np.zeros((k, len(capability.TYPES)))
    np.add.at(by_type, (slot, fleet.type_code.astype(np.int64)), now_kw)
    for rid, i in index.items():
        result[rid] = {
            "now_kw": round(float(totals_now[i]), 3),
            "members": int(counts[i]),
            "by_type_kw": {
                t: round(float(by_type[i, j]), 3) for j, t in enumerate(capability.TYPES) if by_type[i, j] > 0
            },
            "forecast": [{"start": instants[h], "kw": round(float(totals[i, h]), 3)} for h in range(len(instants))],
        }
    return result
