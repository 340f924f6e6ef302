from datetime import UTC, datetime, timedelta

from aggregator.reference.models import Reading


def test_a_batch_lands(db, device_client):
    from tests.factories import DeviceFactory

    device = DeviceFactory()
    client, _ = device_client(device=device)
    start = datetime(2026, 7, 15, 4, 0, tzinfo=UTC)
    batch = [
        {"meter": "site", "start": (start + timedelta(minutes=5 * i)).isoformat(), "interval_seconds": 300, "kwh": 0.4}
        for i in range(288)
    ]
    response = client.post("/api/device/v1/readings", {"readings": batch}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"received": 288, "inserted": 288, "updated": 0, "unchanged": 0}
    again = client.post("/api/device/v1/readings", {"readings": batch}, format="json").json()
    assert again == {"received": 288, "inserted": 0, "updated": 0, "unchanged": 288}
    assert Reading.objects.filter(meter_id=device.site_id).count() == 288


def test_operator_reads_a_sites_readings_back_as_columns(db, device_client, api_as):
    from tests.factories import DeviceFactory

    device = DeviceFactory()
    client, _ = device_client(device=device)
    start = datetime(2026, 7, 15, 4, 0, tzinfo=UTC)
    batch = [
        {"meter": "site", "start": (start + timedelta(minutes=5 * i)).isoformat(), "interval_seconds": 300, "kw": 6.0}
        for i in range(3)
    ]
    client.post("/api/device/v1/readings", {"readings": batch}, format="json")
    body = (
        api_as("analyst")
        .get(
            f"/api/v1/sites/{device.site_id}/readings/",
            {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
        )
        .json()
    )
    assert body["meter"] == "site" and body["meter_id"] == device.site_id
    assert body["kwh"] == [0.5, 0.5, 0.5] and body["quality"] == ["actual"] * 3
    assert [datetime.fromisoformat(s) for s in body["start"]] == [start + timedelta(minutes=5 * i) for i in range(3)]
