"""Reads for the forecast, set-based: the rollup history as columns (each group's values packed into one bytea
in SQL, read by numpy), the EV chargers' profiles summed per resource, the batteries' planned energy at each
instant, temperatures by station."""

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from django.db import connection, transaction

from aggregator.aggregation import capability
from aggregator.market.forecasting.rollup import CHARGING_SHARE, MIN_COVERED_HOURS
from aggregator.reference.models import Temperature
from dispatch.selectors import plans_by_shape

WORK_MEM = "256MB"
TYPE_ARRAY = "ARRAY[" + ", ".join(f"'{t}'" for t in capability.TYPES) + "]::text[]"


def unpack(data: bytes | memoryview | None, kind: str) -> np.ndarray:
    """The values of a one-dimensional array without NULLs in PostgreSQL's binary form (`array_send`): a header
    (dimensions, flags, element type, then size and lower bound per dimension), then each value after its length."""
    raw = bytes(data or b"")
    if len(raw) < 12 or int.from_bytes(raw[:4], "big") == 0:
        return np.zeros(0, dtype=kind)
    dims = int.from_bytes(raw[:4], "big")
    return np.frombuffer(raw[12 + 8 * dims :], dtype=[("length", ">i4"), ("value", ">" + kind)])["value"].astype(kind)


def grouped_columns(sql: str, params: Sequence | dict, keys: int, dtypes: Sequence[str]) -> list[np.ndarray]:
    """Run `sql`, whose rows are `keys` key columns then one `array_send(array_agg(...))` per value column (the
    group's values); return the columns expanded to one entry per value.

    Packing a group's values into one array in SQL makes a few thousand rows of a few million values: numpy reads
    each in one call, where fetching a row per value costs Python objects and a round of the driver each.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        # A hash of a few thousand groups' arrays in memory; no JIT: compiling costs more than these simple sums.
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    key_columns: list[list] = [[] for _ in range(keys)]
    values: list[list[np.ndarray]] = [[] for _ in dtypes]
    for row in rows:
        unpacked = [unpack(row[keys + i], kind) for i, kind in enumerate(dtypes)]
        for i in range(keys):
            key_columns[i].append(np.full(len(unpacked[0]), row[i]))
        for i, column in enumerate(unpacked):
            values[i].append(column)
    out = [np.concatenate(c) if c else np.zeros(0, dtype=np.int64) for c in key_columns]
    return out + [np.concatenate(v) if v else np.zeros(0, dtype=kind) for v, kind in zip(values, dtypes, strict=True)]


_ROLLUP = f"""
SELECT f.resource_id, array_position({TYPE_ARRAY}, min(f.device_type)::text) - 1,
       array_send(array_agg(((extract(epoch FROM f.hour)::int8 - %(origin)s) / 3600)::int4)),
       array_send(array_agg(f.kwh / f.rated_kwh)), array_send(array_agg(f.device_hours))
FROM market_forecastrolluphour f JOIN unnest(%(resources)s::int8[]) AS wanted(id) ON wanted.id = f.resource_id
WHERE f.hour >= %(start)s AND f.hour < %(end)s AND f.rated_kwh > 0
GROUP BY f.resource_id, f.device_type
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
       array_send(array_agg(p.how::int4)), array_send(array_agg(p.observed_hours::int4)),
       array_send(array_agg(p.charging_hours::int4))
FROM aggregator_resourcemembership m
JOIN enrollment_device d ON d.id = m.device_id AND d.device_type = 'ev_charger'
JOIN enrollment_site s ON s.id = d.site_id
JOIN ({source}) p ON p.device_id = d.id
JOIN unnest(%(resources)s::int8[]) AS wanted(id) ON wanted.id = m.resource_id
WHERE m.left_at IS NULL
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
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(_PROFILES.format(source=_PROFILE_TABLE if as_of is None else _PROFILE_AS_OF), params)
        rows = cursor.fetchall()
    if not rows:
        return {}
    observed = np.zeros((len(rows), 168))
    charging = np.zeros((len(rows), 168))
    for i, (_, _, _, _, how, obs, ch) in enumerate(rows):
        index = unpack(how, "i4")
        observed[i, index] = unpack(obs, "i4")
        charging[i, index] = unpack(ch, "i4")
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


def planned_energy(
    *, device_ids: np.ndarray, instants: list[datetime]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(device id, instant index, kWh the plan holds at the instant's start, the plan's reserve kWh) wherever a
    battery's plan (dispatch.DeviceSchedule) covers an instant; read as dispatch reads plans for capability."""
    empty = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    if not len(device_ids) or not instants:
        return empty
    epochs = np.array([at.timestamp() for at in instants])
    parts = []
    for plans in plans_by_shape(device_ids, first=min(instants), last=max(instants)):
        n = np.floor((epochs[None, :] - plans.start[:, None]) / plans.step).astype(int)
        p, k = np.nonzero((n >= 0) & (n < plans.length))
        step = n[p, k]
        # The energy an interval starts with is the one the step before ends with; the first step's, from its own.
        first = plans.energy[p, 0] + np.clip(plans.kw[p, 0], 0, None) * plans.step / 3600
        energy = np.where(step == 0, first, plans.energy[p, np.maximum(step - 1, 0)])
        parts.append((plans.device_id[p], k, energy, plans.reserve[p]))
    if not parts:
        return empty
    device, k, energy, reserve = (np.concatenate([part[i] for part in parts]) for i in range(4))
    return device, k, energy, reserve


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
SELECT resource_id, type_code, array_send(array_agg(slot)), array_send(array_agg(kwh)),
       array_send(array_agg(rated_kwh))
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
