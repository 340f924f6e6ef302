"""A request body sent chunked (no Content-Length) through the production web server is read whole, not as empty."""

import http.client
import json
import os
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from aggregator.reference.models import MeterKind, Reading
from enrollment import services
from tests.bench import web_server
from tests.factories import GENERATOR, DeviceFactory


@pytest.fixture
def server():
    """The web process on a free port, on this test's database (a transactional test: it sees what is committed)."""
    url = urlsplit(os.environ["DATABASE_URL"])
    test_database = urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))
    port = web_server.free_port()
    process = web_server.start(port, DATABASE_URL=test_database, WEB_CONCURRENCY="1", WEB_THREADS="1")
    yield port
    process.terminate()
    process.wait(timeout=20)


def chunked_post(port: int, path: str, token: str, parts: list[bytes]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request(
        "POST",
        path,
        body=iter(parts),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_chunked_batch_of_readings_is_stored(server, settings):
    device = DeviceFactory(**GENERATOR)
    _, token = services.issue_credential(device=device, by="test")
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    batch = {
        "readings": [
            {"meter": "site", "start": (start + timedelta(hours=i)).isoformat(), "interval_seconds": 3600, "kwh": 1.5}
            for i in range(3)
        ]
    }
    text = json.dumps(batch).encode()

    status, body = chunked_post(server, "/api/device/v1/readings", token, [text[:40], text[40:90], text[90:]])

    assert status == 200, body
    assert Reading.objects.filter(meter_kind=MeterKind.SITE, meter_id=device.site_id).count() == 3


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_chunked_body_over_the_limit_is_a_413_in_the_error_shape(server, settings):
    device = DeviceFactory(**GENERATOR)
    _, token = services.issue_credential(device=device, by="test")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    status, body = chunked_post(server, "/api/device/v1/readings", token, [b" " * 65536] * (limit // 65536 + 2))
    assert status == 413 and body["type"] == "too_large"
