"""The forecast's rollup: incremental from the readings' watermark, idempotent, late readings re-roll their hour;
heartbeats' outdoor temperatures averaged per zone and hour."""

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.market.forecasting import rollup
from aggregator.market.models import ChargerHour, ChargerProfile, ForecastRollupHour, RollupWatermark
from aggregator.reference.models import Temperature
from enrollment.models import DeviceStatus
from tests.market import forecast_fleets as ff

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)
HOUR = datetime(2026, 7, 20, 9, 0, tzinfo=UTC)  # a Monday, 05:00 in New York


@pytest.fixture
def fleet():
    resource = ff.resource()
    thermostats = ff.members(resource, 2, ff.THERMOSTAT, joined=HOUR - timedelta(days=1))
    chargers = ff.members(resource, 1, ff.EV_CHARGER, joined=HOUR - timedelta(days=1))
    return resource, thermostats, chargers[0]


def quarter_hours(device, hour, kwh_each):
    return [(device.pk, hour + timedelta(minutes=15 * q), 900, kwh_each) for q in range(4)]


def stored(resource):
    return {
        (r.device_type, r.hour): (round(r.kwh, 6), r.device_hours, r.rated_kwh, r.devices)
        for r in ForecastRollupHour.objects.filter(resource=resource)
    }


def test_the_rollup_sums_an_hour_per_resource_and_type_and_a_rerun_changes_nothing(fleet):
    resource, (a, b), charger = fleet
    ff.write_readings(
        quarter_hours(a, HOUR, 0.5) + quarter_hours(b, HOUR, 0.25) + quarter_hours(charger, HOUR, 1.75),
        received_at=NOW - timedelta(minutes=30),
    )

    first = rollup.roll_up_readings(now=NOW)
    again = rollup.roll_up_readings(now=NOW)

    # Thermostats: 2 kWh + 1 kWh read over 2 device-hours of 4 kW rated each.
    assert stored(resource) == {
        ("thermostat", HOUR): (3.0, 2.0, 8.0, 2),
        ("ev_charger", HOUR): (7.0, 1.0, 7.0, 1),
    }
    assert first["group_hours"] == 2
    assert again["group_hours"] == 2  # inside the overlap: recomputed, the same
    profile = ChargerProfile.objects.get(device=charger)
    assert (profile.how, profile.observed_hours, profile.charging_hours, profile.charging_kwh) == (5, 1, 1, 7.0)
    assert RollupWatermark.objects.get().received_through == NOW - timedelta(minutes=30)


def test_a_late_reading_re_rolls_its_hour_and_the_profile_takes_the_difference(fleet):
    resource, (a, _), charger = fleet
    ff.write_readings(quarter_hours(a, HOUR, 0.5)[:2] + quarter_hours(charger, HOUR, 1.75)[:1], received_at=NOW)
    rollup.roll_up_readings(now=NOW)
    assert stored(resource)[("thermostat", HOUR)] == (1.0, 0.5, 2.0, 1)
    assert ChargerProfile.objects.get(device=charger).observed_hours == 0  # a quarter of the hour: not observed

    later = NOW + timedelta(hours=2)
    ff.write_readings(quarter_hours(a, HOUR, 0.5)[2:] + quarter_hours(charger, HOUR, 1.75)[1:], received_at=later)
    rollup.roll_up_readings(now=later)
    rollup.roll_up_readings(now=later)

    assert stored(resource)[("thermostat", HOUR)] == (2.0, 1.0, 4.0, 1)
    profile = ChargerProfile.objects.get(device=charger)
    assert (profile.observed_hours, profile.charging_hours, profile.charging_kwh) == (1, 1, 7.0)
    assert ChargerHour.objects.get(device=charger).kwh == 7.0


def test_only_readings_received_since_the_watermark_less_the_overlap_are_read(fleet):
    resource, (a, b), charger = fleet
    ff.write_readings(quarter_hours(a, HOUR, 0.5), received_at=NOW - timedelta(hours=3))
    rollup.roll_up_readings(now=NOW)
    ff.write_readings(quarter_hours(b, HOUR + timedelta(hours=1), 0.25), received_at=NOW - timedelta(hours=1))
    rollup.roll_up_readings(now=NOW)
    ff.write_readings(quarter_hours(charger, HOUR + timedelta(hours=2), 1.0), received_at=NOW)

    result = rollup.roll_up_readings(now=NOW)

    # b's hour (received 1 hour ago, inside the 15-minute overlap of the watermark) and the charger's; not a's.
    assert result["device_hours"] == 2
    assert set(stored(resource)) == {
        ("thermostat", HOUR),
        ("thermostat", HOUR + timedelta(hours=1)),
        ("ev_charger", HOUR + timedelta(hours=2)),
    }


def test_a_device_counts_in_the_resource_it_was_a_member_of_when_it_read(fleet):
    resource, _, _ = fleet
    other = ff.resource("Another")
    (late_joiner,) = ff.members(other, 1, ff.THERMOSTAT, joined=HOUR + timedelta(minutes=30))
    ff.write_readings(quarter_hours(late_joiner, HOUR, 0.5), received_at=NOW)

    rollup.roll_up_readings(now=NOW)

    assert stored(other) == {("thermostat", HOUR): (1.0, 0.5, 2.0, 1)}  # the two quarters after it joined
    assert stored(resource) == {}


def test_heartbeats_outdoor_temperatures_average_per_zone_and_hour(fleet, device_client):
    _, (a, b), charger = fleet
    for device, value in ((a, 80.0), (b, 84.0), (charger, None)):
        client, _ = device_client(device=device)
        body = {"at": (NOW + timedelta(minutes=5)).isoformat()}
        if value is not None:
            body["outdoor_temperature_f"] = value
        assert client.post("/api/device/v1/status", body, format="json").status_code == 200

    assert rollup.record_zone_temperatures(now=NOW + timedelta(minutes=10)) == 1

    (row,) = Temperature.objects.all()
    assert (row.station, row.start, row.temperature_f) == ("PJM:PECO", NOW, 82.0)


@pytest.mark.parametrize("value", [141, -81, "nan", "warm"])
def test_a_heartbeat_refuses_an_implausible_outdoor_temperature(value, device_client):
    resource = ff.resource()
    (device,) = ff.members(resource, 1, ff.THERMOSTAT, joined=HOUR)
    client, _ = device_client(device=device)

    response = client.post("/api/device/v1/status", {"outdoor_temperature_f": value}, format="json")

    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["outdoor_temperature_f"]
    assert not DeviceStatus.objects.filter(device=device).exists()
