"""Device heartbeats: POST /api/device/v1/status, going offline when they stop, and what that does to capability."""

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone as django_timezone
from rest_framework.test import APIClient

from aggregator.aggregation import services as aggregator_services
from enrollment import services
from enrollment.models import DeviceStatus
from tests.factories import DeviceFactory, GatewayFactory, SiteFactory, active_device

pytestmark = pytest.mark.django_db

URL = "/api/device/v1/status"
STATUS = {
    "state_of_charge_pct": 64.5,
    "power_kw": -2.25,
    "mode": "self_consumption",
    "firmware": "24.12.1",
    "ev_plugged_in": None,
}


@pytest.fixture
def device():
    return DeviceFactory(telemetry_interval_seconds=60)  # not the default 300: the response must follow the device


@pytest.fixture
def client(device, device_client):
    return device_client(device=device)[0]


def problems(response) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in response.json()["errors"]]


def test_a_heartbeat_stores_the_devices_status(device, client):
    before = django_timezone.now()

    response = client.post(URL, STATUS, format="json")

    after = django_timezone.now()
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["device"], body["online"], body["recommended_interval_seconds"]) == (device.pk, True, 60)
    status = DeviceStatus.objects.get(device=device)
    assert before <= status.last_seen_at <= after
    assert datetime.fromisoformat(body["last_seen_at"]) == status.last_seen_at
    assert status.online is True
    assert (status.state_of_charge_pct, status.power_kw, status.mode, status.firmware, status.ev_plugged_in) == (
        Decimal("64.5"),
        Decimal("-2.25"),
        "self_consumption",
        "24.12.1",
        None,
    )


def test_a_heartbeat_read_earlier_carries_its_own_time(device, client):
    at = (django_timezone.now() - timedelta(minutes=2)).replace(microsecond=0)

    response = client.post(URL, {**STATUS, "at": at.isoformat()}, format="json")

    assert response.status_code == 200
    assert DeviceStatus.objects.get(device=device).last_seen_at == at


def test_an_older_heartbeat_does_not_overwrite_a_newer_one(device, client):
    now = django_timezone.now().replace(microsecond=0)
    client.post(URL, {**STATUS, "at": now.isoformat(), "state_of_charge_pct": 80}, format="json")

    late = client.post(
        URL,
        {**STATUS, "at": (now - timedelta(minutes=3)).isoformat(), "state_of_charge_pct": 10, "mode": "backup"},
        format="json",
    )

    assert late.status_code == 200
    status = DeviceStatus.objects.get(device=device)
    assert (status.last_seen_at, status.state_of_charge_pct, status.mode) == (now, Decimal("80"), "self_consumption")
    newer = client.post(
        URL, {**STATUS, "at": (now + timedelta(seconds=60)).isoformat(), "state_of_charge_pct": 79}, format="json"
    )
    assert newer.status_code == 200
    assert DeviceStatus.objects.get(device=device).state_of_charge_pct == Decimal("79")


@pytest.mark.parametrize("soc", [120, -1, "full"])
def test_a_state_of_charge_outside_0_to_100_is_refused(device, client, soc):
    response = client.post(URL, {**STATUS, "state_of_charge_pct": soc}, format="json")

    assert response.status_code == 400
    assert [field for field, _ in problems(response)] == ["state_of_charge_pct"]
    assert not DeviceStatus.objects.exists()


def test_a_heartbeat_from_the_future_is_refused(device, client):
    response = client.post(
        URL, {**STATUS, "at": (django_timezone.now() + timedelta(minutes=10)).isoformat()}, format="json"
    )

    assert response.status_code == 400
    assert problems(response) == [("at", "future_timestamp")]
    assert not DeviceStatus.objects.exists()


def test_a_device_token_reports_only_for_its_own_device(device, client):
    other = DeviceFactory(site=device.site)

    response = client.post(URL, {**STATUS, "device": other.pk}, format="json")

    assert response.status_code == 400
    assert [field for field, _ in problems(response)] == ["device"]
    assert not DeviceStatus.objects.exists()


def test_a_gateway_must_name_a_device_behind_it(device_client):
    gateway = GatewayFactory()
    behind = DeviceFactory(site=gateway.site, gateway=gateway)
    not_behind = DeviceFactory(site=gateway.site)
    client, _ = device_client(gateway=gateway)

    unnamed = client.post(URL, STATUS, format="json")
    elsewhere = client.post(URL, {**STATUS, "device": not_behind.pk}, format="json")
    named = client.post(URL, {**STATUS, "device": behind.pk}, format="json")

    assert unnamed.status_code == elsewhere.status_code == 400
    assert [field for field, _ in problems(unnamed)] == [field for field, _ in problems(elsewhere)] == ["device"]
    assert named.status_code == 200 and named.json()["device"] == behind.pk
    assert list(DeviceStatus.objects.values_list("device_id", flat=True)) == [behind.pk]


def test_a_heartbeat_without_a_token_is_401(device):
    assert APIClient().post(URL, STATUS, format="json").status_code == 401
    assert not DeviceStatus.objects.exists()


# --- Going offline ----------------------------------------------------------------------

SEEN = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "silent, offline",
    [
        (timedelta(seconds=299), False),
        (timedelta(seconds=600), False),
        (timedelta(seconds=899), False),
        (timedelta(seconds=900), False),  # the third heartbeat is due now, not yet missed
        (timedelta(seconds=901), True),
        (timedelta(hours=2), True),
    ],
)
def test_a_device_goes_offline_after_three_missed_intervals_and_not_before(device_client, silent, offline):
    device = DeviceFactory(telemetry_interval_seconds=300)
    services.record_heartbeat(device_id=device.pk, at=SEEN, state_of_charge_pct=Decimal("50"))

    marked = services.mark_silent_devices_offline(now=SEEN + silent)

    assert marked == int(offline)
    assert DeviceStatus.objects.get(device=device).online is not offline


def test_going_offline_follows_each_devices_own_interval():
    fast = DeviceFactory(telemetry_interval_seconds=60)
    slow = DeviceFactory(telemetry_interval_seconds=300)
    for device in (fast, slow):
        services.record_heartbeat(device_id=device.pk, at=SEEN)

    assert services.mark_silent_devices_offline(now=SEEN + timedelta(seconds=181)) == 1
    assert dict(DeviceStatus.objects.values_list("device_id", "online")) == {fast.pk: False, slow.pk: True}
    # Already offline: not counted again.
    assert services.mark_silent_devices_offline(now=SEEN + timedelta(seconds=901)) == 1
    assert not DeviceStatus.objects.filter(online=True).exists()


def test_a_heartbeat_after_silence_brings_the_device_back_online(device, client):
    services.record_heartbeat(device_id=device.pk, at=django_timezone.now() - timedelta(hours=1))
    services.mark_silent_devices_offline(now=django_timezone.now())
    assert DeviceStatus.objects.get(device=device).online is False

    response = client.post(URL, STATUS, format="json")

    assert response.json()["online"] is True
    status = DeviceStatus.objects.get(device=device)
    assert status.online is True and django_timezone.now() - status.last_seen_at < timedelta(seconds=30)


def test_an_offline_battery_gives_no_capability_now(program, device_client):
    battery = active_device(program, site=SiteFactory(market=program.market, pricing_node="PECO_N001"))
    resource = aggregator_services.create_resource(
        market=program.market,
        program=program,
        name="vr-heartbeat",
        scope_kind="pricing_node",
        scope="PECO_N001",
        by="tester",
    )
    aggregator_services.add_member(resource=resource, device=battery, by="tester")
    client, _ = device_client(device=battery)
    now = django_timezone.now()
    assert client.post(URL, {**STATUS, "state_of_charge_pct": 90}, format="json").status_code == 200

    online_kw = aggregator_services.capability_now(resource=resource, now=now)
    services.mark_silent_devices_offline(now=now + timedelta(seconds=3 * battery.telemetry_interval_seconds + 1))
    offline_kw = aggregator_services.capability_now(resource=resource, now=now)

    assert online_kw > 0
    assert DeviceStatus.objects.get(device=battery).online is False
    assert offline_kw == 0


def test_a_heartbeat_is_recorded_while_redis_is_down(device, client, redis_down):
    response = client.post(URL, STATUS, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["online"] is True
    assert DeviceStatus.objects.get(device=device).firmware == "24.12.1"


def test_a_heartbeat_is_answered_in_about_a_second_while_redis_hangs(device, client, redis_silent):
    """A Redis that accepts and never answers costs the call its short timeouts, not redis-py's default retries."""
    started = time.monotonic()
    response = client.post(URL, STATUS, format="json")
    assert response.status_code == 200, response.content
    assert time.monotonic() - started < 3.0
