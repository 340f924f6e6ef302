"""Reads for the forecast, set-based: the rollup history as columns (binary COPY straight into numpy), the EV
chargers' profiles summed per resource, the batteries' planned energy at each instant, temperatures by station."""

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from django.db import connection

from aggregator.aggregation import capability
from aggregator.market.forecasting.rollup import CHARGING_SHARE, MIN_COVERED_HOURS
from aggregator.reference.models import Temperature

TYPE_ARRAY = "ARRAY[" + ", ".join(f"'{t}'" for t in capability.TYPES) + "]::text[]"


def copy_columns(sql: str, params: Sequence | dict, dtypes: Sequence[str]) -> list[np.ndarray]:
    """Run `sql` (columns of the given fixed-width types, none NULL) as a binary COPY and return its columns.

    Binary COPY sends each row as a field count and, per field, a length and the value in network order: with
    fixed-width fields every row has the same layout, so numpy reads the stream in one pass (millions of rows a
    second, where fetching tuples costs a Python object per value).
    """
    with connection.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params) as copy:
        data = b"".join(bytes(block) for block in copy)
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, kind in enumerate(dtypes):
        fields += [(f"len{i}", ">i4"), (f"f{i}", ">" + kind)]
    layout = np.dtype(fields)
    header = 19 + int.from_bytes(data[15:19], "big") if len(data) >= 19 else 0
    body = data[header:-2] if data else b""
    rows = np.frombuffer(body, dtype=layout) if body else np.zeros(0, dtype=layout)
    return [rows[f"f{i}"].astype(kind) for i, kind in enumerate(dtypes)]


_ROLLUP = f"""
SELECT f.resource_id::int4, (array_position({TYPE_ARRAY}, f.device_type::text) - 1)::int2,
       ((extract(epoch FROM f.hour) - %(origin)s) / 3600)::int4,
       (f.kwh / nullif(f.rated_kwh, 0))::float8, f.device_hours::float8
FROM market_forecastrolluphour f
WHERE f.resource_id = ANY(%(resources)s) AND f.hour >= %(start)s AND f.hour < %(end)s AND f.rated_kwh > 0
"""


def rollup_history(
    *, resource_ids: list[int], start: datetime, end: datetime
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(resource id, type code, hour index from `start`, load factor, device hours) for [start, end)."""
    resource, type_code, hour, load_factor, device_hours = copy_columns(
        _ROLLUP,
        {"origin": int(start.timestamp()), "resources": resource_ids, "start": start, "end": end},
        ["i4", "i2", "i4", "f8", "f8"],
    )
    return resource, type_code, hour, load_factor, device_hours


# A charger's profile: (device, how) -> observed, charging, kWh and hours while charging; from the maintained
# table, or (as of an instant, for the backtest) summed again from the charger-hours before it.
_PROFILE_TABLE = "SELECT device_id, how, observed_hours, charging_hours, charging_kwh, charging_covered_hours FROM market_chargerprofile"
_PROFILE_AS_OF = """
SELECT c.device_id, c.how,
       sum((c.covered_hours >= %(min_covered)s)::int) AS observed_hours,
       sum((c.covered_hours >= %(min_covered)s AND c.kwh >= %(share)s * d.rated_kw * c.covered_hours)::int) AS charging_hours,
       sum(CASE WHEN c.covered_hours >= %(min_covered)s AND c.kwh >= %(share)s * d.rated_kw * c.covered_hours
                THEN c.kwh ELSE 0 END) AS charging_kwh,
       sum(CASE WHEN c.covered_hours >= %(min_covered)s AND c.kwh >= %(share)s * d.rated_kw * c.covered_hours
                THEN c.covered_hours ELSE 0 END) AS charging_covered_hours
FROM market_chargerhour c JOIN enrollment_device d ON d.id = c.device_id
WHERE c.hour < %(as_of)s AND c.device_id IN (
    SELECT m.device_id FROM aggregator_resourcemembership m WHERE m.resource_id = ANY(%(resources)s) AND m.left_at IS NULL)
GROUP BY 1, 2
"""
# Per resource and site time zone: the chargers with a profile (a week observed at least), their rated kW, the
# kW their overall charging share gives, and per hour of week the departure from it. A charger's share at an hour
# of week is (charging + PRIOR x its share at that hour on like days) / (observed + PRIOR), like days being
# weekdays or weekend days: three weeks give three observations of an hour of week but fifteen of a weekday hour.
_PROFILES = """
WITH member AS (
    SELECT d.id, m.resource_id, s.time_zone, d.rated_kw::float8 AS rated_kw
    FROM aggregator_resourcemembership m
    JOIN enrollment_device d ON d.id = m.device_id AND d.device_type = 'ev_charger'
    JOIN enrollment_site s ON s.id = d.site_id
    WHERE m.resource_id = ANY(%(resources)s) AND m.left_at IS NULL
), p AS (
    SELECT src.*, sum(src.charging_hours) OVER alike::float8 / nullif(sum(src.observed_hours) OVER alike, 0) AS alike_share
    FROM ({source}) src JOIN member ON member.id = src.device_id
    WINDOW alike AS (PARTITION BY src.device_id, src.how %% 24, src.how >= 120)
), overall AS (
    SELECT p.device_id, sum(p.observed_hours) AS observed, sum(p.charging_hours)::float8 / sum(p.observed_hours) AS share,
           sum(p.charging_kwh) / nullif(sum(p.charging_covered_hours), 0) AS kw
    FROM p GROUP BY 1 HAVING sum(p.observed_hours) >= %(min_observed)s
)
SELECT member.resource_id, member.time_zone, -1 AS how, sum(member.rated_kw), sum(o.share * coalesce(o.kw, 0))
FROM member JOIN overall o ON o.device_id = member.id
GROUP BY 1, 2
UNION ALL
SELECT member.resource_id, member.time_zone, p.how, 0,
       sum(((p.charging_hours + %(prior)s * coalesce(p.alike_share, o.share)) / (p.observed_hours + %(prior)s)
            - o.share) * coalesce(o.kw, 0))
FROM member JOIN overall o ON o.device_id = member.id JOIN p ON p.device_id = member.id
GROUP BY 1, 2, 3
"""
PROFILE_PRIOR_HOURS = 2.0
MIN_PROFILE_HOURS = 7 * 24


def charger_profiles(*, resource_ids: list[int], as_of: datetime | None = None) -> dict[tuple[int, str], dict]:
    """(resource, time zone) -> {"rated_kw": of the chargers with a profile, "kw": 168 expected kW by hour of
    week (site time)} for the chargers with at least a week observed."""
    source = _PROFILE_TABLE if as_of is None else _PROFILE_AS_OF
    params = {
        "resources": resource_ids,
        "min_observed": MIN_PROFILE_HOURS,
        "prior": PROFILE_PRIOR_HOURS,
        "as_of": as_of,
        "min_covered": MIN_COVERED_HOURS,
        "share": CHARGING_SHARE,
    }
    out: dict[tuple[int, str], dict] = {}
    with connection.cursor() as cursor:
        cursor.execute(_PROFILES.format(source=source), params)
        rows = cursor.fetchall()
    for resource, zone, how, rated, kw in rows:
        entry = out.setdefault((resource, zone), {"rated_kw": 0.0, "kw": np.zeros(168)})
        if how < 0:
            entry["rated_kw"] += rated
            entry["kw"] += kw
        else:
            entry["kw"][how] += kw
    return out


_PLANS = """
SELECT p.device_id::int8, i.k::int4,
       (CASE WHEN n = 0 THEN p.energy_kwh[1] + greatest(p.kw[1], 0) * p.step_seconds / 3600.0
             ELSE p.energy_kwh[n] END)::float8,
       p.reserve_kwh::float8
FROM unnest(%(instants)s::timestamptz[]) WITH ORDINALITY AS i(at, k)
JOIN dispatch_deviceschedule p ON p.device_id = ANY(%(devices)s)
     AND p.day >= (%(first)s::timestamptz - interval '2 days')::date AND p.day <= (%(last)s::timestamptz + interval '2 days')::date
     AND p.start <= i.at AND i.at < p.start + p.step_seconds * cardinality(p.kw) * interval '1 second'
CROSS JOIN LATERAL (SELECT floor(extract(epoch FROM i.at - p.start) / p.step_seconds)::int AS n) step
"""


def planned_energy(
    *, device_ids: np.ndarray, instants: list[datetime]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(device id, instant index, kWh the plan holds at the instant, the plan's reserve kWh) where a battery's
    plan (dispatch.DeviceSchedule) covers the instant."""
    if not len(device_ids) or not instants:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    device, k, energy, reserve = copy_columns(
        _PLANS,
        {"instants": instants, "devices": device_ids.tolist(), "first": instants[0], "last": instants[-1]},
        ["i8", "i4", "f8", "f8"],
    )
    return device, k.astype(np.int64) - 1, energy, reserve


def station_temperatures(*, stations: set[str], start: datetime, end: datetime) -> dict[str, dict[int, float]]:
    """Station -> {hour index from `start`: °F} for [start, end)."""
    out: dict[str, dict[int, float]] = {}
    origin = start.timestamp()
    rows = Temperature.objects.filter(station__in=stations, start__gte=start, start__lt=end).values_list(
        "station", "start", "temperature_f"
    )
    for station, at, value in rows:
        out.setdefault(station, {})[int((at.timestamp() - origin) // 3600)] = value
    return out


_INTERVAL_LOADS = """
SELECT m.resource_id::int4, (array_position({types}, d.device_type::text) - 1)::int2,
       floor((extract(epoch FROM r.start) - %(origin)s) / %(seconds)s)::int4,
       sum(r.kwh)::float8, sum(d.rated_kw * r.interval_seconds / 3600.0)::float8
FROM aggregator_resourcemembership m
JOIN enrollment_device d ON d.id = m.device_id AND d.device_type = ANY(%(load_types)s)
JOIN settlement_reading r ON r.meter_kind = 2 AND r.meter_id = d.id AND r.start >= %(start)s AND r.start < %(end)s
     AND r.start >= m.joined_at AND (m.left_at IS NULL OR r.start < m.left_at)
WHERE m.resource_id = ANY(%(resources)s) AND r.kwh IS NOT NULL AND r.interval_seconds <= %(seconds)s
GROUP BY 1, 2, 3
"""


def interval_loads(
    *, resource_ids: list[int], start: datetime, end: datetime, seconds: int, load_types: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The backtest's real-time truth, from the raw readings: (resource, type code, interval index from `start`,
    load factor) per interval of `seconds` (readings no longer than the interval)."""
    resource, type_code, slot, kwh, rated_kwh = copy_columns(
        _INTERVAL_LOADS.format(types=TYPE_ARRAY),
        {
            "origin": int(start.timestamp()),
            "seconds": seconds,
            "load_types": list(load_types),
            "start": start,
            "end": end,
            "resources": resource_ids,
        },
        ["i4", "i2", "i4", "f8", "f8"],
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        load_factor = np.where(rated_kwh > 0, kwh / rated_kwh, np.nan)
    return resource, type_code, slot, load_factor


def hours_between(start: datetime, end: datetime) -> int:
    return int((end - start) / timedelta(hours=1))
