"""The readings API end to end: POST /api/device/v1/readings and the GETs that read them back.

Real PostgreSQL (partitioned settlement_reading), real tokens, no mocks.
See aggregator/reference/readings.py for the reading format.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone as django_timezone
from rest_framework.test import APIClient

from aggregator.reference import partitions
from aggregator.reference.models import MeterKind, Quality, Reading, ReadingRevision
from enrollment.models import DeviceCredential
from tests.conftest import operator_token
from tests.factories import DeviceFactory, GatewayFactory

pytestmark = pytest.mark.django_db

URL = "/api/device/v1/readings"
T0 = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
CONSUMER_PARAMETERS = {
    "thermostat": {"max_setpoint_offset_f": Decimal("3"), "max_event_hours": Decimal("4")},
    "water_heater": {},
    "controllable_load": {"max_event_hours": Decimal("4")},
}


@pytest.fixture
def device():
    return DeviceFactory()


@pytest.fixture
def client(device, device_client):
    return device_client(device=device)[0]


def reading(i: int = 0, *, start: datetime = T0, interval: int = 300, **fields) -> dict:
    """The i-th consecutive interval from `start`; fields override (kwh 0.4 unless kw given)."""
    body = {"start": (start + timedelta(seconds=interval * i)).isoformat(), "interval_seconds": interval}
    if "kw" not in fields:
        body["kwh"] = 0.4
    body.update(fields)
    return body


def batch(n: int, **fields) -> list[dict]:
    return [reading(i, **fields) for i in range(n)]


def post(client, readings, **kwargs):
    return client.post(URL, {"readings": readings}, format="json", **kwargs)


def problems(response) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in response.json()["errors"]]


def window(start: datetime, end: datetime) -> dict:
    return {"start": start.isoformat(), "end": end.isoformat()}


def device_meter(device) -> dict:
    return {"meter_kind": MeterKind.DEVICE, "meter_id": device.pk}


def partition_exists(month: datetime) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_class WHERE relname = %s", [partitions.name_for(month)])
        return cursor.fetchone() is not None


# --- Authentication and scope ------------------------------------------------------


def test_without_a_token_both_methods_are_401(device):
    anonymous = APIClient()

    assert post(anonymous, batch(1)).status_code == 401
    assert anonymous.get(URL).status_code == 401
    assert not Reading.objects.exists()


@pytest.mark.parametrize("token", ["not-a-token", "dev_0123456789abcdef_secret", "gw_short_secret", "{real}x"])
def test_a_malformed_unknown_or_altered_token_is_401(device, device_client, token):
    _, credential = device_client(device=device)
    if token == "{real}x":
        # A real key id with the wrong secret.
        token = f"dev_{credential.key_id}_not-the-secret"
    anonymous = APIClient()
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = post(anonymous, batch(1))

    assert response.status_code == 401
    assert response.json()["type"] == "invalid_token"
    assert not Reading.objects.exists()


def test_a_revoked_token_is_401_and_writes_nothing(device, device_client):
    client, credential = device_client(device=device)
    DeviceCredential.objects.filter(pk=credential.pk).update(revoked_at=django_timezone.now() - timedelta(seconds=1))

    response = post(client, batch(3))

    assert response.status_code == 401
    assert response.json()["type"] == "token_revoked"
    assert client.get(URL).status_code == 401
    assert not Reading.objects.exists()


def test_an_operator_token_on_the_device_api_is_401(device, make_operator):
    operator = APIClient()
    operator.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_token(make_operator('admin'))}")

    response = post(operator, [reading(device=device.pk)])

    assert response.status_code == 401
    assert response.json()["type"] == "wrong_token_kind"
    assert not Reading.objects.exists()


@pytest.mark.parametrize("meter", ["device", "site"])
@pytest.mark.parametrize("same_site", [True, False])
def test_a_device_token_cannot_write_another_devices_meter(device, client, meter, same_site):
    other = DeviceFactory(site=device.site) if same_site else DeviceFactory()

    response = post(client, [reading(0), reading(1, device=other.pk, meter=meter)])

    assert response.status_code == 400
    assert problems(response) == [("readings[1].device", "unknown_meter")]
    assert not Reading.objects.exists()


def test_a_device_token_cannot_read_another_devices_meter(device, client, device_client):
    other = DeviceFactory()
    other_client, _ = device_client(device=other)
    assert post(other_client, batch(2, meter="site")).status_code == 200
    assert post(other_client, batch(2)).status_code == 200

    for meter in ("device", "site"):
        response = client.get(URL, {"device": other.pk, "meter": meter, **window(T0, T0 + timedelta(hours=1))})
        assert response.status_code == 400
        assert problems(response) == [("device", "unknown_meter")]

    own = client.get(URL, window(T0, T0 + timedelta(hours=1))).json()
    assert (own["meter"], own["meter_id"], own["start"]) == ("device", device.pk, [])


def test_a_gateway_token_writes_and_reads_for_the_devices_behind_it_only(device_client):
    gateway = GatewayFactory()
    first, second = (DeviceFactory(site=gateway.site, gateway=gateway) for _ in range(2))
    not_behind = DeviceFactory(site=gateway.site)
    client, _ = device_client(gateway=gateway)

    ok = post(
        client, [*batch(2, device=first.pk), *batch(2, device=second.pk), *batch(2, device=first.pk, meter="site")]
    )
    refused = post(client, [reading(5, device=first.pk), reading(5, device=not_behind.pk)])
    unnamed = post(client, [reading(6)])

    assert ok.status_code == 200 and ok.json()["inserted"] == 6
    assert Reading.objects.filter(**device_meter(first)).count() == 2
    assert Reading.objects.filter(**device_meter(second)).count() == 2
    assert Reading.objects.filter(meter_kind=MeterKind.SITE, meter_id=gateway.site_id).count() == 2
    assert refused.status_code == 400 and problems(refused) == [("readings[1].device", "unknown_meter")]
    assert unnamed.status_code == 400 and problems(unnamed) == [("readings[0].device", "unknown_meter")]
    assert Reading.objects.count() == 6
    assert not Reading.objects.filter(**device_meter(not_behind)).exists()

    span = window(T0, T0 + timedelta(hours=1))
    assert len(client.get(URL, {"device": second.pk, **span}).json()["start"]) == 2
    assert client.get(URL, {"device": not_behind.pk, **span}).status_code == 400
    assert client.get(URL, span).status_code == 400  # a gateway must name the device


# --- Resends and corrections ---------------------------------------------------------


def test_resending_a_batch_changes_nothing(device, client):
    readings = [*batch(12), *batch(12, meter="site"), reading(20, quality="missing", kwh=None)]

    first = post(client, readings)
    received_at = set(Reading.objects.values_list("received_at", flat=True))
    second = post(client, readings)

    assert first.json() == {"received": 25, "inserted": 25, "updated": 0, "unchanged": 0}
    assert second.status_code == 200
    assert second.json() == {"received": 25, "inserted": 0, "updated": 0, "unchanged": 25}
    assert not ReadingRevision.objects.exists()
    assert set(Reading.objects.values_list("revision", flat=True)) == {1}
    assert set(Reading.objects.values_list("received_at", flat=True)) == received_at


def test_a_corrected_value_replaces_the_stored_one_and_keeps_the_old(device, client):
    readings = batch(6)
    post(client, readings)
    corrected = [dict(r) for r in readings]
    corrected[3]["kwh"] = 0.55

    response = post(client, corrected)

    assert response.json() == {"received": 6, "inserted": 0, "updated": 1, "unchanged": 5}
    changed = Reading.objects.get(**device_meter(device), start=T0 + timedelta(minutes=15))
    assert (changed.kwh, changed.revision) == (Decimal("0.55"), 2)
    old = ReadingRevision.objects.get()
    assert (old.meter_kind, old.meter_id, old.start) == (MeterKind.DEVICE, device.pk, T0 + timedelta(minutes=15))
    assert (old.kwh, old.revision, old.quality, old.interval_seconds) == (Decimal("0.4"), 1, Quality.ACTUAL, 300)
    assert old.replaced_at >= old.received_at
    assert changed.received_at == old.replaced_at
    body = client.get(URL, window(T0, T0 + timedelta(hours=1))).json()
    assert body["revision"] == [1, 1, 1, 2, 1, 1]
    assert body["kwh"] == [0.4, 0.4, 0.4, 0.55, 0.4, 0.4]
    # The corrected batch sent again is a resend: no new revision.
    assert post(client, corrected).json() == {"received": 6, "inserted": 0, "updated": 0, "unchanged": 6}
    assert ReadingRevision.objects.count() == 1


def test_a_quality_change_alone_is_a_correction(device, client):
    post(client, batch(2, quality="estimated"))

    response = post(client, batch(2))

    assert response.json()["updated"] == 2
    assert set(Reading.objects.values_list("quality", "revision")) == {(Quality.ACTUAL, 2)}
    assert set(ReadingRevision.objects.values_list("quality", flat=True)) == {Quality.ESTIMATED}


# --- Units ---------------------------------------------------------------------------


def test_kw_is_stored_as_energy_over_the_interval(device, client):
    response = post(client, [reading(0, kw=6.0), reading(1, start=T0 + timedelta(hours=1), interval=900, kw=4)])

    assert response.status_code == 200, response.json()
    stored = dict(Reading.objects.filter(**device_meter(device)).values_list("interval_seconds", "kwh"))
    assert stored == {300: Decimal("0.5"), 900: Decimal("1.0")}
    assert client.get(URL, window(T0, T0 + timedelta(hours=2))).json()["kwh"] == [0.5, 1.0]
    # The same energy sent as kWh is a resend.
    same = post(client, [reading(0, kwh=0.5), reading(1, start=T0 + timedelta(hours=1), interval=900, kwh=1)])
    assert same.json()["unchanged"] == 2


def test_a_site_meter_and_a_battery_meter_may_read_below_zero_export(device, client):
    response = post(
        client, [reading(0, meter="site", kwh=-1.25), reading(1, meter="site", kw=-3.0), reading(0, kwh=-1.0)]
    )

    assert response.status_code == 200, response.json()
    assert sorted(Reading.objects.values_list("meter_kind", "kwh")) == [
        (MeterKind.SITE, Decimal("-1.25")),
        (MeterKind.SITE, Decimal("-0.25")),
        (MeterKind.DEVICE, Decimal("-1")),
    ]


# --- DST -----------------------------------------------------------------------------


def local_day(day: datetime) -> list[dict]:
    """Five-minute readings over one New York calendar day, stepped in UTC, sent with local offsets."""
    start = day.replace(tzinfo=NEW_YORK).astimezone(UTC)
    end = (day + timedelta(days=1)).replace(tzinfo=NEW_YORK).astimezone(UTC)
    out, at = [], start
    while at < end:
        out.append(
            {"meter": "site", "start": at.astimezone(NEW_YORK).isoformat(), "interval_seconds": 300, "kwh": 0.25}
        )
        at += timedelta(minutes=5)
    return out


def test_the_23_hour_spring_forward_day_has_276_intervals(device, client):
    readings = local_day(datetime(2026, 3, 8))
    assert len(readings) == 276
    assert readings[0]["start"].endswith("-05:00") and readings[-1]["start"].endswith("-04:00")

    response = post(client, readings)

    assert response.json() == {"received": 276, "inserted": 276, "updated": 0, "unchanged": 0}
    body = client.get(
        URL, {"meter": "site", "start": "2026-03-08T00:00:00-05:00", "end": "2026-03-09T00:00:00-04:00"}
    ).json()
    starts = [datetime.fromisoformat(s) for s in body["start"]]
    assert len(set(starts)) == 276 and starts == sorted(starts)
    assert starts == [datetime.fromisoformat(r["start"]) for r in readings]


def test_the_25_hour_fall_back_day_has_300_intervals_and_its_repeated_hour_twice(device, client):
    readings = local_day(datetime(2026, 11, 1))
    assert len(readings) == 300
    repeated = [r["start"] for r in readings if r["start"].startswith("2026-11-01T01:")]
    assert len(repeated) == 24
    assert sum(s.endswith("-04:00") for s in repeated) == sum(s.endswith("-05:00") for s in repeated) == 12

    response = post(client, readings)

    assert response.json() == {"received": 300, "inserted": 300, "updated": 0, "unchanged": 0}
    assert Reading.objects.filter(meter_kind=MeterKind.SITE, meter_id=device.site_id).count() == 300
    body = client.get(
        URL, {"meter": "site", "start": "2026-11-01T00:00:00-04:00", "end": "2026-11-02T00:00:00-05:00"}
    ).json()
    starts = [datetime.fromisoformat(s) for s in body["start"]]
    assert len(set(starts)) == 300 and starts == sorted(starts)
    one_am = [s for s in starts if s.astimezone(NEW_YORK).hour == 1]
    assert len(one_am) == 24
    assert [s.astimezone(UTC) for s in one_am] == [
        datetime(2026, 11, 1, 5, 0, tzinfo=UTC) + timedelta(minutes=5 * i) for i in range(24)
    ]
    assert [s.astimezone(NEW_YORK).strftime("%H:%M %z") for s in one_am[::12]] == ["01:00 -0400", "01:00 -0500"]


# --- Validation: every problem named, nothing of the batch written ---------------------


def _future_start():
    return (django_timezone.now() + timedelta(minutes=10)).replace(microsecond=0).isoformat()


def _other_device():
    return DeviceFactory().pk


# (bad reading at index 2 of a batch whose other readings are valid, expected field, expected code)
BAD_READINGS = {
    "not an object": (lambda: "x", "readings[2]", "invalid"),
    "a list as a reading": (lambda: [1, 2], "readings[2]", "invalid"),
    "unknown field": (lambda: reading(2, kwhh=1), "readings[2].kwhh", "unknown_field"),
    "unknown meter": (lambda: reading(2, meter="grid"), "readings[2].meter", "unknown_meter"),
    "no such device": (lambda: reading(2, device=2_000_000_000), "readings[2].device", "unknown_meter"),
    "another device": (lambda: reading(2, device=_other_device()), "readings[2].device", "unknown_meter"),
    "start yesterday": (lambda: {**reading(2), "start": "yesterday"}, "readings[2].start", "invalid_timestamp"),
    "start month 13": (
        lambda: {**reading(2), "start": "2026-13-01T00:00:00Z"},
        "readings[2].start",
        "invalid_timestamp",
    ),
    "start a number": (lambda: {**reading(2), "start": 12345}, "readings[2].start", "invalid_timestamp"),
    "start naive": (lambda: {**reading(2), "start": "2026-07-15T14:00:00"}, "readings[2].start", "naive_timestamp"),
    "start future": (lambda: {**reading(2), "start": _future_start()}, "readings[2].start", "future_timestamp"),
    "interval 120": (lambda: reading(2, interval_seconds=120), "readings[2].interval_seconds", "invalid_interval"),
    "interval string": (lambda: reading(2, interval_seconds="300"), "readings[2].interval_seconds", "invalid_interval"),
    "interval missing": (
        lambda: {k: v for k, v in reading(2).items() if k != "interval_seconds"},
        "readings[2].interval_seconds",
        "invalid_interval",
    ),
    "quality unknown": (lambda: reading(2, quality="good"), "readings[2].quality", "invalid_choice"),
    "kwh and kw": (lambda: reading(2, kwh=0.4, kw=4.8), "readings[2].kwh", "ambiguous_value"),
    "no value, actual": (lambda: {k: v for k, v in reading(2).items() if k != "kwh"}, "readings[2].kwh", "required"),
    "null value, estimated": (lambda: reading(2, kwh=None, quality="estimated"), "readings[2].kwh", "required"),
    "kwh text": (lambda: reading(2, kwh="abc"), "readings[2].kwh", "not_a_number"),
    "kwh numeric text": (lambda: reading(2, kwh="0.4"), "readings[2].kwh", "not_a_number"),
    "kwh bool": (lambda: reading(2, kwh=True), "readings[2].kwh", "not_a_number"),
    "kw text": (lambda: reading(2, kw="abc"), "readings[2].kw", "not_a_number"),
    "duplicate of readings[0]": (lambda: reading(0), "readings[2].start", "duplicate_interval"),
    "1 min inside readings[3]": (
        lambda: reading(0, start=T0 + timedelta(minutes=16), interval=60),
        "readings[2].start",
        "overlapping_interval",
    ),
    "1 min at readings[1]'s start": (
        lambda: reading(0, start=T0 + timedelta(minutes=5), interval=60),
        "readings[2].start",
        "overlapping_interval",
    ),
}


@pytest.mark.parametrize("case", list(BAD_READINGS.values()), ids=list(BAD_READINGS))
def test_a_bad_reading_is_named_and_nothing_of_its_batch_is_written(device, client, case):
    make, field, code = case
    post(client, batch(3, start=T0 - timedelta(days=1)))  # something already stored, untouched
    before = list(Reading.objects.order_by("start").values_list("start", "kwh", "revision"))

    response = post(client, [reading(0), reading(1), make(), reading(3)])

    assert response.status_code == 400, response.json()
    body = response.json()
    assert set(body) == {"type", "title", "status", "errors"} and body["status"] == 400
    assert (field, code) in problems(response)
    assert {f for f, _ in problems(response)} == {field}  # the valid readings are not blamed
    assert list(Reading.objects.order_by("start").values_list("start", "kwh", "revision")) == before
    assert not ReadingRevision.objects.exists()


def test_every_bad_reading_in_a_batch_is_named(device, client):
    readings = [
        reading(0),
        {**reading(1), "start": "yesterday"},
        reading(2, quality="good"),
        reading(3),
        reading(4, kwh="x"),
    ]

    response = post(client, readings)

    assert problems(response) == [
        ("readings[1].start", "invalid_timestamp"),
        ("readings[2].quality", "invalid_choice"),
        ("readings[4].kwh", "not_a_number"),
    ]
    assert not Reading.objects.exists()


def test_problems_are_named_in_two_stages_shape_and_values_first(device, client):
    """A naive start is named first; the interval that has not ended is named once the batch's shape is right."""
    future = (django_timezone.now() + timedelta(hours=1)).replace(microsecond=0).isoformat()
    readings = [reading(0), {**reading(1), "start": "2026-07-15T14:00:00"}, {**reading(2), "start": future}]

    first = post(client, readings)
    second = post(client, [readings[0], reading(1), readings[2]])

    assert set(problems(first)) == {("readings[1].start", "naive_timestamp")}
    assert set(problems(second)) == {("readings[2].start", "future_timestamp")}
    assert not Reading.objects.exists()


def test_a_rejected_batch_leaves_nothing_behind_for_the_next(device, client):
    future = (django_timezone.now() + timedelta(hours=1)).replace(microsecond=0).isoformat()
    rejected = post(client, [*batch(5, kwh=9.9), {**reading(5), "start": future}])
    overlapping = post(
        client, [reading(0, start=T0 + timedelta(hours=1)), reading(0, start=T0 + timedelta(hours=1, minutes=2))]
    )

    accepted = post(client, batch(3))

    assert rejected.status_code == overlapping.status_code == 400
    assert accepted.json() == {"received": 3, "inserted": 3, "updated": 0, "unchanged": 0}
    assert list(Reading.objects.order_by("start").values_list("start", "kwh")) == [
        (T0 + timedelta(minutes=5 * i), Decimal("0.4")) for i in range(3)
    ]


def test_an_interval_that_ended_within_the_clock_skew_is_accepted(device, client):
    now = django_timezone.now().astimezone(UTC).replace(microsecond=0)

    response = post(client, [{"start": (now - timedelta(minutes=2)).isoformat(), "interval_seconds": 300, "kwh": 0.1}])

    assert response.status_code == 200, response.json()
    assert Reading.objects.get().start == now - timedelta(minutes=2)


@pytest.mark.parametrize(
    "start",
    [
        "2026-W29-3T10:00:00Z",
        "2026-07-15T10:00:00,0Z",
        "2026-07-15T10:00:00.000+00:00",
        "2026-07-15 10:00:00+0000",
    ],
)
def test_other_iso_8601_spellings_are_stored_or_named_never_a_server_error(device, client, start):
    """ISO 8601 allows week dates and a decimal comma: store them, or refuse them naming the reading."""
    response = post(client, [reading(3), {"start": start, "interval_seconds": 300, "kwh": 0.2}])

    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert Reading.objects.filter(start=T0).values_list("kwh", flat=True).get() == Decimal("0.2")
    else:
        assert problems(response) == [("readings[1].start", "invalid_timestamp")]
        assert not Reading.objects.exists()


@pytest.mark.parametrize("device_type", CONSUMER_PARAMETERS)
def test_a_consumption_only_devices_meter_cannot_read_below_zero(device_client, device_type):
    consumer = DeviceFactory(
        device_type=device_type,
        charge_kw=None,
        energy_kwh=None,
        backup_reserve_pct=None,
        **CONSUMER_PARAMETERS[device_type],
    )
    client, _ = device_client(device=consumer)

    refused = post(client, [reading(0), reading(1, kwh=-0.1), reading(2, kw=-1)])
    site_export = post(client, [reading(0, meter="site", kwh=-0.1)])

    assert refused.status_code == 400
    assert problems(refused) == [
        ("readings[1].kwh", "negative_consumption"),
        ("readings[2].kw", "negative_consumption"),
    ]
    assert site_export.status_code == 200  # the site meter exports
    assert list(Reading.objects.values_list("meter_kind", "kwh")) == [(MeterKind.SITE, Decimal("-0.1"))]


@pytest.mark.parametrize(
    "start, interval, code",
    [
        (T0 + timedelta(minutes=5), 300, "overlapping_interval"),  # inside the stored 10:00-10:15
        (T0, 300, "overlapping_interval"),  # same start, another length
        (T0 + timedelta(minutes=10), 1800, "overlapping_interval"),  # straddles its end
        (T0 - timedelta(minutes=30), 3600, "overlapping_interval"),  # covers it
        (T0 + timedelta(minutes=15), 300, None),  # right after it
        (T0 - timedelta(hours=1), 3600, None),  # right before it
    ],
)
def test_a_reading_overlapping_a_stored_one_of_another_length_is_refused(device, client, start, interval, code):
    assert post(client, [{"start": T0.isoformat(), "interval_seconds": 900, "kwh": 1.2}]).status_code == 200
    elsewhere = reading(0, start=T0 + timedelta(hours=3))

    response = post(client, [elsewhere, {"start": start.isoformat(), "interval_seconds": interval, "kwh": 0.1}])

    if code is None:
        assert response.status_code == 200, response.json()
        assert Reading.objects.count() == 3
    else:
        assert response.status_code == 400
        assert problems(response) == [("readings[1].start", code)]
        assert list(Reading.objects.values_list("start", "interval_seconds", "kwh")) == [(T0, 900, Decimal("1.2"))]


def test_an_empty_batch_is_refused(client):
    response = post(client, [])

    assert response.status_code == 400
    assert problems(response) == [("readings", "empty")]


@pytest.mark.parametrize(
    "body, code", [({"readings": {"start": "x"}}, "invalid"), ({"reading": []}, "required"), ([], "required")]
)
def test_a_body_without_a_readings_list_is_refused(client, body, code):
    response = client.post(URL, body, format="json")

    assert response.status_code == 400
    assert problems(response) == [("readings", code)]


def test_a_batch_of_10000_is_accepted_and_10001_is_too_large(device, client):
    start = datetime(2026, 6, 1, tzinfo=UTC)
    readings = batch(10_001, start=start)

    too_large = post(client, readings)
    exactly = post(client, readings[:10_000])

    assert too_large.status_code == 400
    assert problems(too_large) == [("readings", "too_large")]
    assert exactly.status_code == 200, exactly.json()
    assert exactly.json() == {"received": 10_000, "inserted": 10_000, "updated": 0, "unchanged": 0}
    assert Reading.objects.count() == 10_000


def test_a_body_over_the_size_limit_is_413(device, client, settings):
    settings.DEVICE_API_MAX_BODY_BYTES = 2_000

    small = post(client, batch(3))
    large = post(client, batch(40, start=T0 + timedelta(hours=1)))

    assert small.status_code == 200
    assert large.status_code == 413
    assert large.json()["status"] == 413 and large.json()["type"] == "payload_too_large"
    assert Reading.objects.count() == 3


@pytest.mark.parametrize("kind", ["device", "gateway"])
def test_more_requests_than_the_tokens_rate_are_429(device_client, settings, kind):
    settings.DEVICE_API_RATES = {"device": "2/min", "gateway": "2/min"}
    gateway = GatewayFactory()
    device = DeviceFactory(site=gateway.site, gateway=gateway)
    client, credential = device_client(**({"device": device} if kind == "device" else {"gateway": gateway}))
    other, other_credential = device_client(**({"device": device} if kind == "device" else {"gateway": gateway}))
    # The throttle counts in the (shared) Redis cache, per token: start both counts from zero.
    for key in (credential.key_id, other_credential.key_id):
        cache.delete(f"throttle:{kind}:{key}")
    readings = [reading(0, device=device.pk)]

    responses = [
        post(client, readings),
        client.get(URL, {"device": device.pk}),
        post(client, [reading(1, device=device.pk)]),
    ]

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[2].json()["status"] == 429 and int(responses[2]["Retry-After"]) > 0
    assert Reading.objects.count() == 1
    assert post(other, [reading(1, device=device.pk)]).status_code == 200  # another token has its own count


# --- Quality, order, late data ---------------------------------------------------------


def test_a_missing_interval_is_stored_with_or_without_a_value(device, client):
    response = post(
        client,
        [
            reading(0, kwh=None, quality="missing"),
            {**reading(1, quality="missing"), "kwh": 0.2},
            {k: v for k, v in reading(2, quality="missing").items() if k != "kwh"},
        ],
    )

    assert response.status_code == 200, response.json()
    stored = list(Reading.objects.order_by("start").values_list("kwh", "quality"))
    assert stored == [(None, Quality.MISSING), (Decimal("0.2"), Quality.MISSING), (None, Quality.MISSING)]
    body = client.get(URL, window(T0, T0 + timedelta(hours=1))).json()
    assert body["kwh"] == [None, 0.2, None] and body["quality"] == ["missing"] * 3


def test_readings_out_of_order_are_stored_and_read_back_in_order(device, client):
    readings = batch(24)[::-1]

    response = post(client, readings)

    assert response.json()["inserted"] == 24
    body = client.get(URL, window(T0, T0 + timedelta(hours=2))).json()
    assert [datetime.fromisoformat(s) for s in body["start"]] == [T0 + timedelta(minutes=5 * i) for i in range(24)]


def test_late_data_for_last_month_and_last_year_creates_its_partitions(device, client):
    this_month = django_timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    last_year = this_month.replace(year=this_month.year - 1)
    late = [*batch(6, start=last_month + timedelta(days=9)), *batch(6, start=last_year + timedelta(days=9))]

    response = post(client, late)

    assert response.status_code == 200, response.json()
    assert response.json()["inserted"] == 12
    assert partition_exists(last_month) and partition_exists(last_year)
    assert Reading.objects.filter(start__gte=last_month, start__lt=this_month).count() == 6
    # A later batch at the same month finds the partition there.
    partitions.forget()
    assert post(client, batch(2, start=last_month + timedelta(days=20))).json()["inserted"] == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # DETACH ... CONCURRENTLY runs outside one
def test_late_data_for_a_month_dropped_by_retention_is_stored_in_a_new_partition(device, client):
    month = T0.replace(day=1, hour=0)
    assert post(client, batch(3)).status_code == 200  # this process now knows the month's partition
    name = partitions.name_for(month)
    with connection.cursor() as cursor:  # the retention step in deploy/README.md, archiving aside
        cursor.execute(f"ALTER TABLE settlement_reading DETACH PARTITION {name} CONCURRENTLY")
        cursor.execute(f"DROP TABLE {name}")

    response = post(client, batch(2, start=T0 + timedelta(days=1)))

    assert response.status_code == 200, response.json()
    assert response.json()["inserted"] == 2
    assert partition_exists(month)
    assert Reading.objects.filter(**device_meter(device)).count() == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_late_data_for_a_month_detached_for_archiving_is_refused_not_a_server_error(device, client):
    month = T0.replace(day=1, hour=0)
    assert post(client, batch(3)).status_code == 200
    name = partitions.name_for(month)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE settlement_reading DETACH PARTITION {name} CONCURRENTLY")
    try:
        response = post(client, batch(2, start=T0 + timedelta(days=1)))
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {name}")

    assert response.status_code == 409
    assert problems(response) == [("readings", "month_unavailable")]
    assert not Reading.objects.filter(**device_meter(device)).exists()  # managed=False: not flushed between tests


def reading_partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'settlement_reading'::regclass"
        )
        return {name for (name,) in cursor.fetchall()}


def test_a_reading_older_than_the_look_back_is_refused_and_creates_no_partition(device, client):
    before = reading_partitions()

    response = post(client, [reading(0, start=datetime(1900, 1, 1, tzinfo=UTC)), reading(0)])

    assert response.status_code == 400
    assert problems(response) == [("readings[0].start", "too_old")]
    assert reading_partitions() == before
    assert not Reading.objects.exists()


def test_the_look_back_is_a_setting(device, client, settings):
    settings.DEVICE_READINGS_LOOK_BACK_DAYS = 30
    this_hour = django_timezone.now().replace(minute=0, second=0, microsecond=0)

    old = post(client, [reading(0, start=this_hour - timedelta(days=31))])
    recent = post(client, [reading(0, start=this_hour - timedelta(days=29))])

    assert old.status_code == 400 and problems(old) == [("readings[0].start", "too_old")]
    assert recent.status_code == 200 and recent.json()["inserted"] == 1


def test_a_reading_at_the_first_instant_of_a_month_lands_in_that_months_partition(device, client):
    start = datetime(2026, 5, 1, tzinfo=UTC)

    assert post(client, [reading(0, start=start - timedelta(minutes=5)), reading(0, start=start)]).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM settlement_reading ORDER BY start")
        assert [name for (name,) in cursor.fetchall()] == [
            partitions.name_for(datetime(2026, 4, 1, tzinfo=UTC)),
            partitions.name_for(start),
        ]


# --- Reading back ----------------------------------------------------------------------


def test_operators_read_a_devices_and_a_sites_readings_as_columns(device, client, api_as):
    post(client, [*batch(3, kwh=0.1), *batch(2, meter="site", kwh=-0.3)])
    analyst = api_as("analyst")
    span = window(T0, T0 + timedelta(hours=1))

    device_body = analyst.get(f"/api/v1/devices/{device.pk}/readings/", span).json()
    site_body = analyst.get(f"/api/v1/sites/{device.site_id}/readings/", span).json()

    assert device_body == {
        "meter": "device",
        "meter_id": device.pk,
        "start": device_body["start"],
        "interval_seconds": [300] * 3,
        "kwh": [0.1] * 3,
        "quality": ["actual"] * 3,
        "revision": [1] * 3,
    }
    assert [datetime.fromisoformat(s) for s in device_body["start"]] == [
        T0 + timedelta(minutes=5 * i) for i in range(3)
    ]
    assert (site_body["meter"], site_body["meter_id"], site_body["kwh"]) == ("site", device.site_id, [-0.3, -0.3])
    assert analyst.get(f"/api/v1/devices/{device.pk + 10_000}/readings/", span).status_code == 404
    assert APIClient().get(f"/api/v1/sites/{device.site_id}/readings/", span).status_code in (401, 403)


def test_the_device_get_reads_the_half_open_window(device, client):
    post(client, batch(12))

    body = client.get(URL, {"meter": "device", **window(T0 + timedelta(minutes=10), T0 + timedelta(minutes=30))}).json()

    assert [datetime.fromisoformat(s) for s in body["start"]] == [T0 + timedelta(minutes=m) for m in (10, 15, 20, 25)]
    assert client.get(URL, {"start": "2026-07-15T10:00:00", "end": "2026-07-15T11:00:00"}).status_code == 400


# --- Inputs that must be refused, not crash ---------------------------------------------


def test_a_list_as_quality_is_an_invalid_choice(device, client):
    response = post(client, [reading(0), reading(1, quality=["actual"])])

    assert response.status_code == 400
    assert problems(response) == [("readings[1].quality", "invalid_choice")]


def test_a_list_as_device_is_an_unknown_meter(device, client):
    response = post(client, [reading(0), reading(1, device=[device.pk])])

    assert response.status_code == 400
    assert problems(response) == [("readings[1].device", "unknown_meter")]


def test_a_start_at_the_end_of_time_is_refused_not_a_server_error(device, client):
    response = post(client, [reading(0), {**reading(1), "start": "9999-12-31T23:59:00+00:00"}])

    assert response.status_code == 400
    # Either refusal is right: a start beyond the accepted years, or an interval that has not ended.
    assert problems(response) in (
        [("readings[1].start", "invalid_timestamp")],
        [("readings[1].start", "future_timestamp")],
    )
    assert not Reading.objects.exists()


@pytest.mark.parametrize("offset", ["+16:00", "-23:00", "+00:99", "+0560"])
def test_an_impossible_utc_offset_is_named_at_its_reading(device, client, offset):
    response = post(client, [reading(0), {**reading(1), "start": "2026-07-15T10:05:00" + offset}, reading(2)])

    assert response.status_code == 400
    assert problems(response) == [("readings[1].start", "invalid_timestamp")]
    assert not Reading.objects.exists()


def test_a_start_in_year_one_is_refused(device, client):
    response = post(client, [reading(0), {**reading(1), "start": "0001-01-01T00:00:00+00:00"}])

    assert response.status_code == 400
    assert [f for f, _ in problems(response)] == ["readings[1].start"]
    assert not Reading.objects.exists()


def test_readings_are_stored_while_redis_is_down(device, client, redis_down):
    response = post(client, batch(3))
    assert response.status_code == 200, response.content
    assert response.json()["inserted"] == 3
    assert Reading.objects.filter(**device_meter(device)).count() == 3
