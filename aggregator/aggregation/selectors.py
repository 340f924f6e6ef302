"""Reads for aggregation: fleets as arrays for the capability model, set-based."""

from collections.abc import Callable
from datetime import datetime

import numpy as np
from django.db import connection
from django.db.models import QuerySet

from aggregator.aggregation import capability
from aggregator.aggregation.models import ResourceMembership, VirtualResource

# One row per device in capability.Fleet.FIELDS order, plus the caller's extra columns.
_FLEET_SQL = """
SELECT d.id, d.device_type, d.rated_kw::float8, d.energy_kwh::float8, d.backup_reserve_pct::float8,
       d.round_trip_efficiency_pct::float8, d.max_event_hours::float8, d.bidirectional, s.time_zone,
       CASE WHEN st.device_id IS NULL THEN NULL WHEN st.online THEN 1.0 ELSE 0.0 END,
       extract(epoch FROM st.last_seen_at)::float8, st.state_of_charge_pct::float8,
       CASE WHEN st.ev_plugged_in IS NULL THEN NULL WHEN st.ev_plugged_in THEN 1.0 ELSE 0.0 END,
       p.delivered_ratio::float8, coalesce(st.grid_status IN ('islanded', 'outage'), false),
       st.power_kw::float8, need.plug_in_hour::float8, need.ready_by_hour::float8, need.energy_kwh::float8 {extra}
FROM enrollment_device d
JOIN enrollment_site s ON s.id = d.site_id
LEFT JOIN enrollment_devicestatus st ON st.device_id = d.id
LEFT JOIN aggregator_deviceperformance p ON p.device_id = d.id
LEFT JOIN enrollment_evchargingneed need ON need.device_id = d.id
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
    n = len(capability.Fleet.FIELDS) + 5  # and islanded, power now, the EV need's three
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
        power_kw=np.array(columns[15], dtype=float),
        ev_plug_in_hour=np.array(columns[16], dtype=float),
        ev_ready_by_hour=np.array(columns[17], dtype=float),
        ev_need_kwh=np.array(columns[18], dtype=float),
    )
    return fleet, [np.array(columns[n + i], dtype=object) for i in range(len(extra))]


_CURRENT_MEMBERS = "JOIN aggregator_resourcemembership m ON m.device_id = d.id AND m.left_at IS NULL"


def member_fleet(*, resource_ids: list[int]) -> tuple[capability.Fleet, np.ndarray]:
    """Current members of the given resources, and each member's resource id."""
    fleet, (resource,) = load_fleet(
        where="m.resource_id = ANY(%s)", params=[list(resource_ids)], joins=_CURRENT_MEMBERS, extra=("m.resource_id",)
    )
    return fleet, resource.astype(np.int64)


def members_on(*, resource: VirtualResource, at: datetime) -> QuerySet[ResourceMembership]:
    """Who was in the resource at an instant (settlement asks this of every day)."""
    return ResourceMembership.objects.filter(resource=resource, joined_at__lte=at).exclude(left_at__lte=at)


# Limits that layers above aggregation set on capability (dispatch: battery plans, opt-outs). Each is called
# as limit(fleet, now=, instants=, event_hours=, now_kw=, forecast=) and lowers now_kw (devices) and forecast
# (devices x instants) in place. Registered from the owning app's ready(), in the order they apply.
CapabilityLimit = Callable[..., None]
_LIMITS: list[CapabilityLimit] = []


def register_capability_limit(limit: CapabilityLimit) -> None:
    if limit not in _LIMITS:
        _LIMITS.append(limit)


def apply_capability_limits(
    fleet: capability.Fleet,
    *,
    now: datetime,
    instants: list[datetime],
    event_hours: float,
    now_kw: np.ndarray,
    forecast: np.ndarray,
) -> None:
    """Lower `now_kw` and `forecast` in place by every registered limit (what capability_of applies)."""
    for limit in _LIMITS:
        limit(fleet, now=now, instants=instants, event_hours=event_hours, now_kw=now_kw, forecast=forecast)


def capability_of(*, resource_ids: list[int], now: datetime, hours: int, event_hours: float) -> dict[int, dict]:
    """Per resource: kW now, kW by hour for `hours` hours, and members; one query for all."""
    fleet, owner = member_fleet(resource_ids=resource_ids)
    instants = capability.hour_starts(now, hours)
    now_kw = capability.available_kw(fleet, now=now, instants=[now], event_hours=event_hours)[:, 0].copy()
    forecast = capability.available_kw(fleet, now=now, instants=instants, event_hours=event_hours)
    apply_capability_limits(
        fleet, now=now, instants=instants, event_hours=event_hours, now_kw=now_kw, forecast=forecast
    )
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
