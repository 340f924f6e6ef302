"""The forecast's history, kept small: device readings rolled up per resource, device type and UTC hour
(ForecastRollupHour), per EV charger and hour (ChargerHour) and into each charger's hour-of-week profile
(ChargerProfile); and heartbeats' outdoor temperatures averaged per zone and hour into the Temperature table.

Incremental from a watermark on the readings' `received_at` (a BRIN index): each run takes the device-hours of
readings received after the watermark less OVERLAP (a batch that committed late with an earlier received_at is
caught by the next run), and recomputes every touched (resource, type, hour) whole from the members' readings of
that hour, so a late or corrected reading re-rolls its hour and a rerun changes nothing. A charger's profile
takes the difference between the hour's new and stored contribution, so it is idempotent too. One run at a time
(an advisory lock); three set-based statements, whatever the number of readings.

A reading counts in the hour its interval starts in, for the resource its device was a member of when it
started. Load-type devices only (thermostats, water heaters, EV chargers, controllable loads): a battery's
forecast comes from its plan, a generator's from the capability model.
"""

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from aggregator.market.models import RollupWatermark

OVERLAP = timedelta(minutes=15)
WATERMARK = "device_readings"
LOAD_TYPES = ("thermostat", "water_heater", "ev_charger", "controllable_load")
# A charger is charging in an hour whose readings cover at least half of it at 10% of its rated kW or more.
CHARGING_SHARE = 0.1
MIN_COVERED_HOURS = 0.5

_TOUCHED = """
CREATE TEMP TABLE forecast_touched ON COMMIT DROP AS
SELECT r.meter_id AS device_id, date_trunc('hour', r.start, 'UTC') AS hour, max(r.received_at) AS received_at
FROM settlement_reading r
JOIN enrollment_device d ON d.id = r.meter_id AND d.device_type = ANY(%(types)s)
WHERE r.meter_kind = 2 AND r.received_at > %(since)s
GROUP BY 1, 2
"""

_GROUPS = """
WITH groups AS (
    SELECT DISTINCT m.resource_id, d.device_type, t.hour
    FROM forecast_touched t
    JOIN enrollment_device d ON d.id = t.device_id
    JOIN aggregator_resourcemembership m ON m.device_id = t.device_id
         AND m.joined_at < t.hour + interval '1 hour' AND (m.left_at IS NULL OR m.left_at > t.hour)
), members AS (
    -- every member of a touched group, with the span of hours its groups need
    SELECT m.id, m.device_id, m.resource_id, d.device_type, d.rated_kw::float8 AS rated_kw, m.joined_at, m.left_at,
           min(g.hour) AS lo, max(g.hour) + interval '1 hour' AS hi
    FROM groups g
    JOIN aggregator_resourcemembership m ON m.resource_id = g.resource_id
         AND m.joined_at < g.hour + interval '1 hour' AND (m.left_at IS NULL OR m.left_at > g.hour)
    JOIN enrollment_device d ON d.id = m.device_id AND d.device_type = g.device_type
    GROUP BY m.id, m.device_id, m.resource_id, d.device_type, d.rated_kw, m.joined_at, m.left_at
), sums AS (
    SELECT mb.resource_id, mb.device_type, date_trunc('hour', r.start, 'UTC') AS hour,
           sum(r.kwh)::float8 AS kwh, sum(r.interval_seconds) / 3600.0 AS device_hours,
           sum(mb.rated_kw * r.interval_seconds) / 3600.0 AS rated_kwh, count(DISTINCT mb.device_id) AS devices
    FROM members mb
    JOIN settlement_reading r ON r.meter_kind = 2 AND r.meter_id = mb.device_id
         AND r.start >= mb.lo AND r.start < mb.hi
         AND r.start >= mb.joined_at AND (mb.left_at IS NULL OR r.start < mb.left_at)
    WHERE r.kwh IS NOT NULL
    GROUP BY 1, 2, 3
)
INSERT INTO market_forecastrolluphour AS f (resource_id, device_type, hour, kwh, device_hours, rated_kwh, devices,
                                            rolled_at)
SELECT s.resource_id, s.device_type, s.hour, s.kwh, s.device_hours, s.rated_kwh, s.devices, %(now)s
FROM sums s JOIN groups g USING (resource_id, device_type, hour)
ON CONFLICT (resource_id, device_type, hour) DO UPDATE
    SET kwh = EXCLUDED.kwh, device_hours = EXCLUDED.device_hours, rated_kwh = EXCLUDED.rated_kwh,
        devices = EXCLUDED.devices, rolled_at = EXCLUDED.rolled_at
"""

# Chargers: each touched hour recomputed from its readings; the profile takes (new - stored) contributions.
_CHARGERS = """
WITH spans AS (
    SELECT t.device_id, min(t.hour) AS lo, max(t.hour) + interval '1 hour' AS hi
    FROM forecast_touched t JOIN enrollment_device d ON d.id = t.device_id AND d.device_type = 'ev_charger'
    GROUP BY 1
), fresh AS (
    SELECT r.meter_id AS device_id, date_trunc('hour', r.start, 'UTC') AS hour,
           coalesce(sum(r.kwh), 0)::float8 AS kwh,
           coalesce(sum(r.interval_seconds) FILTER (WHERE r.kwh IS NOT NULL), 0) / 3600.0 AS covered_hours
    FROM spans JOIN settlement_reading r ON r.meter_kind = 2 AND r.meter_id = spans.device_id
         AND r.start >= spans.lo AND r.start < spans.hi
    GROUP BY 1, 2
), keyed AS (
    SELECT f.device_id, f.hour, f.kwh, f.covered_hours, d.rated_kw::float8 AS rated_kw,
           ((extract(isodow FROM f.hour AT TIME ZONE s.time_zone)::int - 1) * 24
            + extract(hour FROM f.hour AT TIME ZONE s.time_zone)::int) AS how
    FROM fresh f
    JOIN forecast_touched t USING (device_id, hour)
    JOIN enrollment_device d ON d.id = f.device_id
    JOIN enrollment_site s ON s.id = d.site_id
), stored AS (
    SELECT c.device_id, c.hour, c.kwh, c.covered_hours, k.rated_kw, c.how
    FROM market_chargerhour c JOIN keyed k USING (device_id, hour)
), written AS (  -- runs to completion though nothing reads it (PostgreSQL's rule for WITH writes)
    INSERT INTO market_chargerhour AS c (device_id, hour, kwh, covered_hours, how)
    SELECT device_id, hour, kwh, covered_hours, how FROM keyed
    ON CONFLICT (device_id, hour) DO UPDATE
        SET kwh = EXCLUDED.kwh, covered_hours = EXCLUDED.covered_hours, how = EXCLUDED.how
), contributions AS (
    SELECT device_id, how, sign,
           (covered_hours >= %(min_covered)s)::int AS observed,
           (covered_hours >= %(min_covered)s AND kwh >= %(share)s * rated_kw * covered_hours)::int AS charging,
           kwh, covered_hours
    FROM (SELECT *, 1 AS sign FROM keyed UNION ALL SELECT *, -1 AS sign FROM stored) both_sides
), delta AS (
    SELECT device_id, how, sum(sign * observed) AS observed, sum(sign * charging) AS charging,
           sum(sign * charging * kwh) AS charging_kwh, sum(sign * charging * covered_hours) AS charging_covered
    FROM contributions GROUP BY 1, 2
)
INSERT INTO market_chargerprofile AS p (device_id, how, observed_hours, charging_hours, charging_kwh,
                                        charging_covered_hours)
SELECT device_id, how, observed, charging, charging_kwh, charging_covered FROM delta
ON CONFLICT (device_id, how) DO UPDATE
    SET observed_hours = p.observed_hours + EXCLUDED.observed_hours,
        charging_hours = p.charging_hours + EXCLUDED.charging_hours,
        charging_kwh = p.charging_kwh + EXCLUDED.charging_kwh,
        charging_covered_hours = p.charging_covered_hours + EXCLUDED.charging_covered_hours
"""


def roll_up_readings(*, now: datetime) -> dict[str, int | str | None]:
    """Roll up device readings received since the watermark (see the module docstring); returns what it did."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('market.forecast_rollup'))")
        mark = RollupWatermark.objects.select_for_update().filter(name=WATERMARK).first()
        since = (mark.received_through - OVERLAP) if mark else datetime(1970, 1, 1, tzinfo=UTC)
        cursor.execute("DROP TABLE IF EXISTS forecast_touched")  # a caller's outer transaction may hold one
        cursor.execute(_TOUCHED, {"types": list(LOAD_TYPES), "since": since})
        cursor.execute("SELECT count(*), max(received_at) FROM forecast_touched")
        touched, latest = cursor.fetchone()
        if not touched:
            return {"device_hours": 0, "group_hours": 0, "charger_profiles": 0, "received_through": None}
        cursor.execute("ANALYZE forecast_touched")
        cursor.execute(_GROUPS, {"now": now})
        groups = cursor.rowcount
        cursor.execute(_CHARGERS, {"min_covered": MIN_COVERED_HOURS, "share": CHARGING_SHARE})
        profiles = cursor.rowcount
        through = max(latest, mark.received_through) if mark else latest
        RollupWatermark.objects.update_or_create(name=WATERMARK, defaults={"received_through": through})
    return {
        "device_hours": touched,
        "group_hours": groups,
        "charger_profiles": profiles,
        "received_through": through.isoformat(),
    }


_ZONE_TEMPERATURES = """
INSERT INTO aggregator_temperature AS t (station, start, temperature_f, imported_at)
SELECT left(upper(mk.code || ':' || s.zone), 32), %(hour)s, avg(st.outdoor_temperature_f), %(now)s
FROM enrollment_devicestatus st
JOIN enrollment_device d ON d.id = st.device_id
JOIN enrollment_site s ON s.id = d.site_id
JOIN aggregator_market mk ON mk.id = s.market_id
WHERE st.outdoor_temperature_f IS NOT NULL AND st.last_seen_at >= %(hour)s AND st.last_seen_at < %(end)s
  AND st.last_seen_at <= %(now)s AND s.zone <> ''
GROUP BY 1
ON CONFLICT (station, start) DO UPDATE SET temperature_f = EXCLUDED.temperature_f, imported_at = EXCLUDED.imported_at
"""


def zone_station(market_code: str, zone: str) -> str:
    """The station name a zone's series is kept under, e.g. PJM:BGE."""
    return f"{market_code}:{zone}".upper()[:32]


def record_zone_temperatures(*, now: datetime) -> int:
    """The current hour's mean outdoor temperature per market zone, from the heartbeats that reported one in it
    (each device's latest), into the Temperature table under the zone's station (`zone_station`). Run every few
    minutes, it refines the hour as more devices report; it replaces any value stored for that zone-hour."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(_ZONE_TEMPERATURES, {"hour": hour, "end": hour + timedelta(hours=1), "now": now})
        return cursor.rowcount
