"""Reads for the forecast, set-based: the rollup history as columns (each group's values packed into one bytea
in SQL, read by numpy), the EV chargers' profiles summed per resource, the batteries' planned energy at each
instant, temperatures by station."""

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from django.db import connection

from aggregator.aggregation import capability
from aggregator.market.forecasting.rollup import CHARGING_SHARE, MIN_COVERED_HOURS
from aggregator.reference.models import Temperature

TYPE_ARRAY = "ARRAY[" + ", ".join(f"'{t}'" for t in capability.TYPES) + "]::text[]"


def grouped_columns(sql: str, params: Sequence | dict, keys: int, dtypes: Sequence[str]) -> list[np.ndarray]:
    """Run `sql`, whose rows are `keys` key columns then one bytea per value column, each the values of the group
    packed by `int4send`/`float8send`... (string_agg); return the columns expanded to one entry per value.

    Packing a group's values into one bytea in SQL makes a few thousand rows of a few million values: numpy reads
    each bytea in one call, where fetching a row per value costs Python objects and a round of the driver each.
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    key_columns: list[list] = [[] for _ in range(keys)]
    values: list[list[np.ndarray]] = [[] for _ in dtypes]
    for row in rows:
        unpacked = [np.frombuffer(bytes(row[keys + i] or b""), dtype=">" + kind) for i, kind in enumerate(dtypes)]
        for i in range(keys):
            key_columns[i].append(np.full(len(unpacked[0]), row[i]))
        for i, column in enumerate(unpacked):
            values[i].append(column.astype(dtypes[i]))
    out = [np.concatenate(c) if c else np.zeros(0, dtype=np.int64) for c in key_columns]
    return out + [np.concatenate(v) if v else np.zeros(0, dtype=kind) for v, kind in zip(values, dtypes, strict=True)]


_ROLLUP = f"""
SELECT f.resource_id, array_position({TYPE_ARRAY}, f.device_type::text) - 1,
       string_agg(int4send(((extract(epoch FROM f.hour) - %(origin)s) / 3600)::int4), ''::bytea),
       string_agg(float8send(f.kwh / f.rated_kwh), ''::bytea), string_agg(float8send(f.device_hours), ''::bytea)
FROM market_forecastrolluphour f
WHERE f.resource_id = ANY(%(resources)s) AND f.hour >= %(start)s AND f.hour < %(end)s AND f.rated_kwh > 0
GROUP BY 1, 2
"""


def rollup_history(
    *, resource_ids: list[int], start: datetime, end: datetime
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(resource id, type code, hour index from `start`, load factor, device hours) for [start, end)."""
    resource, type_code, hour, load_factor, device_hours = grouped_columns(
        _ROLLUP,
        {"origin": int(start.timestamp()), "resources": resource_ids, "start": start, "end": end},
        2,
        ["i4", "f8", "f8"],
    )
    return resource.astype(np.int64), type_code.astype(np.int64), hour.astype(np.int64), load_factor, device_hours


# A charger's profile: (device, how) -> observed, charging, kWh and hours while charging; from the maintained
# table, or (as of an instant, for the backtest) summed again from the charger-hours before it.
_PROFILE_TABLE = "SELECT * FROM market_chargerprofile"
_PROFILE_AS_OF = """
SELECT c.device_id, c.how,
       sum((c.covered_hours >= %(min_covered)s)::int) AS observed_hours,
       sum((c.covered_hours >= %(min_covered)s AND c.kwh >= %(share)s * d.rated_kw * c.covered_hours)::int)
           AS charging_hours,
       sum(CASE WHEN c.covered_hours >= %(min_covered)s AND c.kwh >= %(share)s * d.rated_kw * c.covered_hours
                THEN c.kwh ELSE 0 END) AS charging_kwh,
       sum(CASE WHEN c.covered_hours >= %(min_covered)s AND c.kwh >= %(share)s * d.rated_kw * c.covered_hours
                THEN c.covered_hours ELSE 0 END) AS charging_covered_hours
FROM market_chargerhour c JOIN enrollment_device d ON d.id = c.device_id
WHERE c.hour < %(as_of)s AND c.device_id IN (
    SELECT m.device_id FROM aggregator_resourcemembership m WHERE m.resource_id = ANY(%(resources)s) AND m.left_at IS NULL)
GROUP BY 1, 2
"""
# One row per current member charger: its resource, site time zone, rated kW, and its profile packed.
_PROFILES = """
SELECT m.resource_id, s.time_zone, d.rated_kw::float8,
       sum(p.charging_kwh) / nullif(sum(p.charging_covered_hours), 0),
       string_agg(int4send(p.how::int4), ''::bytea), string_agg(int4send(p.observed_hours::int4), ''::bytea),
       string_agg(int4send(p.charging_hours::int4), ''::bytea)
FROM aggregator_resourcemembership m
JOIN enrollment_device d ON d.id = m.device_id AND d.device_type = 'ev_charger'
JOIN enrollment_site s ON s.id = d.site_id
JOIN ({source}) p ON p.device_id = d.id
WHERE m.resource_id = ANY(%(resources)s) AND m.left_at IS NULL
GROUP BY m.resource_id, s.time_zone, d.id, d.rated_kw
HAVING sum(p.observed_hours) >= %(min_observed)s
"""
PROFILE_PRIOR_HOURS = 2.0
MIN_PROFILE_HOURS = 7 * 24
# Like hours: the same hour of the day on a weekday, or on a weekend day (hour of week 120 is Saturday 00:00).
_HOW = np.arange(168)
_ALIKE = np.where(_HOW >= 120, 24, 0) + _HOW % 24


def charger_profiles(*, resource_ids: list[int], as_of: datetime | None = None) -> dict[tuple[int, str], dict]:
    """(resource, time zone) -> {"rated_kw": of its chargers with a profile (a week observed at least), "kw": 168
    expected kW by hour of week, site time}. A charger's share at an hour of week is (charging + PRIOR x its share
    at like hours) / (observed + PRIOR), like hours being that hour on weekdays or on weekend days (three weeks
    give three observations of an hour of week, fifteen of a weekday hour); times its mean kW while charging."""
    params = {
        "resources": resource_ids,
        "min_observed": MIN_PROFILE_HOURS,
        "as_of": as_of,
        "min_covered": MIN_COVERED_HOURS,
        "share": CHARGING_SHARE,
    }
    with connection.cursor() as cursor:
        cursor.execute(_PROFILES.format(source=_PROFILE_TABLE if as_of is None else _PROFILE_AS_OF), params)
        rows = cursor.fetchall()
    if not rows:
        return {}
    observed = np.zeros((len(rows), 168))
    charging = np.zeros((len(rows), 168))
    for i, (_, _, _, _, how, obs, ch) in enumerate(rows):
        index = np.frombuffer(bytes(how), dtype=">i4")
        observed[i, index] = np.frombuffer(bytes(obs), dtype=">i4")
        charging[i, index] = np.frombuffer(bytes(ch), dtype=">i4")
    alike_observed = np.zeros((len(rows), 48))
    alike_charging = np.zeros((len(rows), 48))
    for cls in range(48):
        alike_observed[:, cls] = observed[:, cls == _ALIKE].sum(axis=1)
        alike_charging[:, cls] = charging[:, cls == _ALIKE].sum(axis=1)
    overall = charging.sum(axis=1) / observed.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        alike = np.where(alike_observed > 0, alike_charging / alike_observed, overall[:, None])
    share = (charging + PROFILE_PRIOR_HOURS * alike[:, _ALIKE]) / (observed + PROFILE_PRIOR_HOURS)
    kw = np.array([row[3] or 0.0 for row in rows])[:, None] * share
    out: dict[tuple[int, str], dict] = {}
    for i, (resource, zone, rated, *_) in enumerate(rows):
        entry = out.setdefault((resource, zone), {"rated_kw": 0.0, "kw": np.zeros(168)})
        entry["rated_kw"] += rated
        entry["kw"] += kw[i]
    return out


_PLANS = """
SELECT p.device_id, string_agg(int4send(i.k::int4), ''::bytea),
       string_agg(float8send(CASE WHEN n = 0 THEN p.energy_kwh[1] + greatest(p.kw[1], 0) * p.step_seconds / 3600.0
                                  ELSE p.energy_kwh[n] END), ''::bytea),
       string_agg(float8send(p.reserve_kwh), ''::bytea)
FROM unnest(%(instants)s::timestamptz[]) WITH ORDINALITY AS i(at, k)
JOIN dispatch_deviceschedule p ON p.device_id = ANY(%(devices)s)
     AND p.day >= (%(first)s::timestamptz - interval '2 days')::date AND p.day <= (%(last)s::timestamptz + interval '2 days')::date
     AND p.start <= i.at AND i.at < p.start + p.step_seconds * cardinality(p.kw) * interval '1 second'
CROSS JOIN LATERAL (SELECT floor(extract(epoch FROM i.at - p.start) / p.step_seconds)::int AS n) step
GROUP BY 1
"""


def planned_energy(
    *, device_ids: np.ndarray, instants: list[datetime]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(device id, instant index, kWh the plan holds at the instant, the plan's reserve kWh) where a battery's
    plan (dispatch.DeviceSchedule) covers the instant."""
    if not len(device_ids) or not instants:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    device, k, energy, reserve = grouped_columns(
        _PLANS,
        {"instants": instants, "devices": device_ids.tolist(), "first": instants[0], "last": instants[-1]},
        1,
        ["i4", "f8", "f8"],
    )
    return device.astype(np.int64), k.astype(np.int64) - 1, energy, reserve


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
SELECT resource_id, type_code, string_agg(int4send(slot), ''::bytea), string_agg(float8send(kwh), ''::bytea),
       string_agg(float8send(rated_kwh), ''::bytea)
FROM (
SELECT m.resource_id, array_position({types}, d.device_type::text) - 1 AS type_code,
       floor((extract(epoch FROM r.start) - %(origin)s) / %(seconds)s)::int4 AS slot,
       sum(r.kwh)::float8 AS kwh, sum(d.rated_kw * r.interval_seconds / 3600.0)::float8 AS rated_kwh
FROM aggregator_resourcemembership m
JOIN enrollment_device d ON d.id = m.device_id AND d.device_type = ANY(%(load_types)s)
JOIN settlement_reading r ON r.meter_kind = 2 AND r.meter_id = d.id AND r.start >= %(start)s AND r.start < %(end)s
     AND r.start >= m.joined_at AND (m.left_at IS NULL OR r.start < m.left_at)
WHERE m.resource_id = ANY(%(resources)s) AND r.kwh IS NOT NULL AND r.interval_seconds <= %(seconds)s
GROUP BY 1, 2, 3
) per_interval
GROUP BY 1, 2
"""


def interval_loads(
    *, resource_ids: list[int], start: datetime, end: datetime, seconds: int, load_types: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The backtest's real-time truth, from the raw readings: (resource, type code, interval index from `start`,
    load factor) per interval of `seconds` (readings no longer than the interval)."""
    resource, type_code, slot, kwh, rated_kwh = grouped_columns(
        _INTERVAL_LOADS.format(types=TYPE_ARRAY),
        {
            "origin": int(start.timestamp()),
            "seconds": seconds,
            "load_types": list(load_types),
            "start": start,
            "end": end,
            "resources": resource_ids,
        },
        2,
        ["i4", "f8", "f8"],
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        load_factor = np.where(rated_kwh > 0, kwh / rated_kwh, np.nan)
    return resource.astype(np.int64), type_code.astype(np.int64), slot.astype(np.int64), load_factor


def hours_between(start: datetime, end: datetime) -> int:
    return int((end - start) / timedelta(hours=1))
