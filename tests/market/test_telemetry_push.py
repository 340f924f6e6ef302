"""Telemetry pushed to a market's endpoint: a real HTTP server on this machine receives it (no mocks)."""

import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.utils import timezone

from aggregator.market import telemetry
from aggregator.market.models import MarketConnection, TelemetryScan
from aggregator.market.scan_grid import grid_instant
from tests.factories import market
from tests.market.telemetry_setup import heartbeat, resource, set_rules

pytestmark = pytest.mark.django_db

AT = datetime(2026, 7, 15, 14, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)
TOKEN_ENV = "PJM_TELEMETRY_TOKEN_FOR_TESTS"


class MarketEndpoint:
    """A market's telemetry receiver: records each POST; answers `status`, after `delay` seconds."""

    def __init__(self):
        self.received: list[dict] = []
        self.status = 200
        self.delay = 0.0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(endpoint.delay)
                endpoint.received.append(
                    {"path": self.path, "authorization": self.headers.get("Authorization"), "body": json.loads(body)}
                )
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/telemetry"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    server = MarketEndpoint()
    yield server
    server.close()


@pytest.fixture
def pjm(endpoint, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "market-secret-1")
    pjm = set_rules(market("PJM"), scan_seconds=10)
    MarketConnection.objects.create(market=pjm, telemetry_push_url=endpoint.url, telemetry_token_env=TOKEN_ENV)
    return pjm


def states(pjm) -> list[tuple]:
    return list(
        TelemetryScan.objects.filter(market=pjm).order_by("at").values_list("at", "push_state", "push_attempts")
    )


def test_a_scan_is_pushed_with_the_bearer_token_and_times_in_the_market_zone(pjm, endpoint):
    res, (a, _b) = resource(pjm, members=2)
    heartbeat(a, at=AT - S, kw="2.250")
    telemetry.scan(market=pjm, at=AT)

    outcome = telemetry.push(market=pjm, at=AT)

    assert outcome == telemetry.PushOutcome(scans=1, samples=1, error=None)
    assert endpoint.received == [
        {
            "path": "/telemetry",
            "authorization": "Bearer market-secret-1",
            "body": {
                "market": "PJM",
                "samples": [
                    {
                        "resource": res.market_resource_id,
                        "at": "2026-07-15T10:00:00-04:00",
                        "kw": 2.25,
                        "devices_reporting": 1,
                        "devices_expected": 2,
                        "quality": "poor",
                    }
                ],
            },
        }
    ]
    scan = TelemetryScan.objects.get(market=pjm, at=AT)
    assert (scan.push_state, scan.push_attempts, scan.push_error) == ("sent", 1, "")
    assert scan.pushed_at is not None
    assert telemetry.push(market=pjm, at=AT) == telemetry.PushOutcome(scans=0, samples=0, error=None)  # sent once
    assert len(endpoint.received) == 1


def test_a_refused_push_is_recorded_and_its_samples_ride_with_the_next_push_inside_the_window(pjm, endpoint):
    resource(pjm, members=0)
    endpoint.status = 503
    telemetry.scan(market=pjm, at=AT)
    refused = telemetry.push(market=pjm, at=AT)

    endpoint.status = 204
    telemetry.scan(market=pjm, at=AT + 10 * S)
    taken = telemetry.push(market=pjm, at=AT + 10 * S)

    assert refused.error == "HTTP 503"
    assert taken == telemetry.PushOutcome(scans=2, samples=2, error=None)
    assert [s["at"] for s in endpoint.received[1]["body"]["samples"]] == [
        "2026-07-15T10:00:00-04:00",
        "2026-07-15T10:00:10-04:00",
    ]
    assert states(pjm) == [(AT, "sent", 2), (AT + 10 * S, "sent", 1)]


def test_samples_older_than_the_window_are_never_sent_again(pjm, endpoint, settings):
    settings.MARKET_TELEMETRY_PUSH_WINDOW_SECONDS = 60
    resource(pjm, members=0)
    endpoint.status = 500
    telemetry.scan(market=pjm, at=AT)
    telemetry.push(market=pjm, at=AT)
    endpoint.status = 200
    telemetry.scan(market=pjm, at=AT + 70 * S)

    outcome = telemetry.push(market=pjm, at=AT + 70 * S)

    assert outcome.scans == 1
    assert [len(r["body"]["samples"]) for r in endpoint.received] == [1, 1]
    assert endpoint.received[1]["body"]["samples"][0]["at"] == "2026-07-15T10:01:10-04:00"
    assert states(pjm) == [(AT, "expired", 1), (AT + 70 * S, "sent", 1)]


def test_a_slow_endpoint_times_out_quickly_and_is_recorded(pjm, endpoint, settings):
    settings.MARKET_TELEMETRY_PUSH_TIMEOUT_SECONDS = 0.3
    resource(pjm, members=0)
    endpoint.delay = 2.0
    telemetry.scan(market=pjm, at=AT)

    started = time.monotonic()
    outcome = telemetry.push(market=pjm, at=AT)

    assert time.monotonic() - started < 1.5
    assert outcome.error == "timed out"
    assert TelemetryScan.objects.get(market=pjm).push_error == "timed out"


def test_a_missing_token_variable_sends_nothing_and_says_so(pjm, endpoint, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV)
    resource(pjm, members=0)
    telemetry.scan(market=pjm, at=AT)

    outcome = telemetry.push(market=pjm, at=AT)

    assert outcome.error == f"environment variable {TOKEN_ENV} is not set"
    assert endpoint.received == []
    assert states(pjm) == [(AT, "failed", 1)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_stream_keeps_scanning_on_its_grid_while_a_slow_push_is_out(pjm, endpoint, settings):
    """Real time: a 2-second scan, an endpoint that takes 3 s to answer. The scans stay on the grid; the scans made
    while the first push was out go, together, with the next push."""
    settings.MARKET_TELEMETRY_PUSH_TIMEOUT_SECONDS = 5
    settings.MARKET_TELEMETRY_PUSH_WINDOW_SECONDS = 30
    set_rules(pjm, scan_seconds=2)
    res, (device,) = resource(pjm, members=1)
    heartbeat(device, at=timezone.now(), kw="1.000")
    endpoint.delay = 3.0
    scans = []
    stop = threading.Event()

    def scanner():
        try:
            telemetry.stream(stop=stop, on_scan=scans.append, max_sleep_seconds=0.5)
        finally:
            connection.close()

    worker = threading.Thread(target=scanner)

    worker.start()
    deadline = time.monotonic() + 20
    while len(endpoint.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    worker.join(timeout=10)

    instants = [s.at for s in scans]
    assert len(instants) >= 3
    assert all(later - earlier == 2 * S for earlier, later in itertools.pairwise(instants))
    assert instants[0] == grid_instant(instants[0], 2)
    first, second = (r["body"]["samples"] for r in endpoint.received[:2])
    assert len(first) == 1
    assert len(second) >= 2  # the scans made during the first push's 3 s
    assert {s["resource"] for s in first + second} == {res.market_resource_id}
