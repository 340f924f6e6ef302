"""Synthetic fleets with a known truth for the forecast's tests: devices in a resource, and their readings written
straight into settlement_reading (set-based COPY; the ingest path has its own tests)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
from django.db import connection

from aggregator.aggregation.models import ResourceMembership, ResourceState, VirtualResource
from aggregator.reference import partitions
from tests.factories import DeviceFactory, ProgramFactory, SiteFactory

NEW_YORK = ZoneInfo("America/New_York")
THERMOSTAT = {
    "device_type": "thermostat",
    "rated_kw": Decimal("4"),
    "charge_kw": None,
    "energy_kwh": None,
    "backup_reserve_pct": None,
    "max_setpoint_offset_f": Decimal("4"),
    "max_event_hours": Decimal("4"),
}
EV_CHARGER = {
    "device_type": "ev_charger",
    "rated_kw": Decimal("7"),
    "charge_kw": None,
    "energy_kwh": None,
    "backup_reserve_pct": None,
}
BATTERY = {"device_type": "battery", "rated_kw": Decimal("5"), "energy_kwh": Decimal("13.5"), "backup_reserve_pct": 20}


def resource(name: str = "Forecast fleet", *, state: str = ResourceState.ACTIVE, program=None) -> VirtualResource:
    program = program or ProgramFactory()
    return VirtualResource.objects.create(
        name=name,
        market=program.market,
        program=program,
        participation_model="capacity",
        scope="PECO_N001",
        state=state,
    )


def members(resource: VirtualResource, count: int, spec: dict, *, joined: datetime, station: str = "") -> list:
    site = SiteFactory(market=resource.market, time_zone=resource.market.time_zone, weather_station=station)
    devices = [DeviceFactory(site=site, **spec) for _ in range(count)]
    ResourceMembership.objects.bulk_create(
        [ResourceMembership(resource=resource, device=d, joined_at=joined) for d in devices]
    )
    return devices


def hours(start: datetime, days: int) -> list[datetime]:
    return [start + timedelta(hours=h) for h in range(days * 24)]


def write_readings(rows: list[tuple[int, datetime, int, float]], *, received_at: datetime) -> None:
    """(device id, start, interval seconds, kWh) rows into settlement_reading."""
    if not rows:
        return
    partitions.ensure(first=min(r[1] for r in rows), last=max(r[1] for r in rows))
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY settlement_reading (meter_kind, meter_id, start, interval_seconds, kwh, quality, received_at, "
            "revision) FROM STDIN"
        ) as copy,
    ):
        for device_id, start, seconds, kwh in rows:
            copy.write_row((2, device_id, start, seconds, round(kwh, 6), 1, received_at, 1))


def thermostat_kw(at: datetime, temperature_f: float) -> float:
    """The truth: a thermostat's load, 4 kW rated: a base, an afternoon bump on weekdays, cooling above 65 °F."""
    local = at.astimezone(NEW_YORK)
    base = 0.4 + (1.2 if local.weekday() < 5 and 12 <= local.hour < 20 else 0.0)
    return base + 0.05 * max(temperature_f - 65.0, 0.0)


def charging(at: datetime) -> bool:
    """The truth: EVs charge 19:00-23:00 on weekdays."""
    local = at.astimezone(NEW_YORK)
    return local.weekday() < 5 and 19 <= local.hour < 23


def temperature(at: datetime, rng: np.random.Generator | None = None) -> float:
    local = at.astimezone(NEW_YORK)
    return 75.0 + 10.0 * np.sin((local.hour - 9) / 24 * 2 * np.pi) + (rng.normal(0, 1) if rng else 0.0)


def day_start(day: datetime) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).astimezone(UTC)
