"""Signed push of new commands to a device's or gateway's own endpoint (a real HTTP server on loopback)."""

import hashlib
import hmac
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dispatch import push, services, tasks
from dispatch.models import DeviceCommand, PushEndpoint
from tests.dispatch.conftest import queued, task_of
from tests.factories import GatewayFactory

PUSH = "/api/device/v1/push"


class Receiver:
    """An HTTP endpoint that records what it is posted and answers `status`."""

    def __init__(self):
        self.received, self.status, self.location, self.text = [], 200, None, b""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((self.headers, body))  # case-insensitive, as HTTP headers are
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", str(len(receiver.text)))
                self.end_headers()
                self.wfile.write(receiver.text)

            do_GET = do_POST  # a client that follows a redirect may turn the POST into a GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/vpp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receivers(settings):
    """receivers() -> a new Receiver, shut down after the test."""
    settings.DISPATCH_PUSH_ALLOW_HTTP = True
    settings.DISPATCH_PUSH_ALLOW_PRIVATE = True
    made = []

    def make():
        made.append(Receiver())
        return made[-1]

    yield make
    for r in made:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture
def receiver(receivers):
    return receivers()


def verified(headers, body: bytes, key: str) -> bool:
    """What a device checks: the signature over "<t>." + body with its key."""
    fields = dict(part.split("=", 1) for part in headers["X-VPP-Signature"].split(","))
    expected = hmac.new(key.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(fields["v1"], expected)


def start_event(resource, capture):
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    with capture(execute=False):
        event = services.create_event(
            resource=resource,
            source="operator_test",
            start=start,
            end=start + timedelta(hours=1),
            target_kw=90,
            over_commit_pct=0,
            by="tester",
        )
    with capture(execute=False):
        chunks = services.advance(event_id=event.pk)
    with capture(execute=False) as callbacks:
        for chunk in chunks:
            services.issue_commands(
                event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3]
            )
    return event, chunks, callbacks


def test_a_device_registers_its_endpoint_and_receives_its_new_commands_signed(
    make_resource, device_client, receiver, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=3)
    device = resource.memberships.order_by("device_id").first().device
    client, _ = device_client(device=device)
    registered = client.put(PUSH, {"url": receiver.url}, format="json")
    assert registered.status_code == 200, registered.content
    key = registered.json()["signing_key"]

    event, chunks, callbacks = start_event(resource, django_capture_on_commit_callbacks)
    pushes = [c for c in queued(callbacks) if task_of(c) == "dispatch.tasks.push_chunk"]
    assert len(pushes) == len(chunks) == 1  # the chunk's commit queues its push
    assert tasks.push_chunk(*chunks[0]) == 1

    ((headers, body),) = receiver.received
    assert headers["X-VPP-Endpoint"] == f"device:{device.pk}"
    assert verified(headers, body, key)
    assert not verified(headers, body.replace(b'"kind"', b'"kinD"'), key)  # any change breaks the signature
    commands = json.loads(body)["commands"]
    assert [c["id"] for c in commands] == [str(DeviceCommand.objects.get(event=event, device=device).pk)]
    assert commands[0]["schedule"] and commands[0]["expires_at"]
    assert client.get(PUSH).json()["last_success_at"] is not None


def test_a_gateway_endpoint_gets_all_its_devices_commands_in_one_post_and_no_other_devices(
    program, make_resource, device_client, receiver, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=3)
    devices = [m.device for m in resource.memberships.order_by("device_id")]
    gateway = GatewayFactory(site=devices[0].site)
    for d in devices[:2]:
        d.gateway = gateway
        d.save(update_fields=["gateway"])
    client, _ = device_client(gateway=gateway)
    key = client.put(PUSH, {"url": receiver.url}, format="json").json()["signing_key"]

    event, chunks, _ = start_event(resource, django_capture_on_commit_callbacks)
    for chunk in chunks:
        tasks.push_chunk(*chunk)

    ((headers, body),) = receiver.received
    assert headers["X-VPP-Endpoint"] == f"gateway:{gateway.pk}" and verified(headers, body, key)
    served = set(DeviceCommand.objects.filter(event=event, device__in=devices[:2]).values_list("device_id", flat=True))
    assert {c["device"] for c in json.loads(body)["commands"]} == served and served


def test_a_failed_push_is_recorded_and_the_commands_still_wait_for_the_poll(
    make_resource, device_client, receiver, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=3)
    device = resource.memberships.order_by("device_id").first().device
    client, _ = device_client(device=device)
    client.put(PUSH, {"url": receiver.url}, format="json")
    receiver.status = 503

    _, chunks, _ = start_event(resource, django_capture_on_commit_callbacks)
    failed = push.deliver(
        push.chunk_bodies(
            event_id=chunks[0][0], round_number=chunks[0][1], first_device=chunks[0][2], last_device=chunks[0][3]
        )
    )

    endpoint = PushEndpoint.objects.get(device=device)
    assert failed == {endpoint.pk: "HTTP 503"}
    assert (
        endpoint.last_error == "HTTP 503" and endpoint.last_failure_at is not None and endpoint.last_success_at is None
    )
    polled = client.get("/api/device/v1/commands").json()["commands"]
    assert [c["device"] for c in polled] == [device.pk]


def test_no_push_is_queued_when_no_endpoint_is_registered(make_resource, django_capture_on_commit_callbacks):
    _, _, callbacks = start_event(make_resource(generators=3), django_capture_on_commit_callbacks)
    assert not [c for c in queued(callbacks) if task_of(c) == "dispatch.tasks.push_chunk"]


@pytest.mark.parametrize(
    ("url", "code", "settings_override"),
    [
        ("ftp://example.com/x", "invalid_url", {}),
        ("http://example.com/x", "insecure_url", {"DISPATCH_PUSH_ALLOW_HTTP": False}),
        ("https://127.0.0.1/x", "private_url", {"DISPATCH_PUSH_ALLOW_PRIVATE": False}),
        ("https://10.1.2.3/x", "private_url", {"DISPATCH_PUSH_ALLOW_PRIVATE": False}),
    ],
)
def test_an_endpoint_that_is_not_public_https_is_refused_naming_the_field(
    make_resource, device_client, settings, url, code, settings_override
):
    for name, value in settings_override.items():
        setattr(settings, name, value)
    device = make_resource(generators=1).memberships.first().device
    client, _ = device_client(device=device)
    response = client.put(PUSH, {"url": url}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "url"
    assert response.json()["errors"][0]["code"] == code
    assert not PushEndpoint.objects.exists()


def test_each_device_has_its_own_key_and_reregistering_keeps_it(make_resource, device_client, receiver):
    first, second = [m.device for m in make_resource(generators=2).memberships.order_by("device_id")]
    one, _ = device_client(device=first)
    two, _ = device_client(device=second)
    key_one = one.put(PUSH, {"url": receiver.url}, format="json").json()["signing_key"]
    key_two = two.put(PUSH, {"url": receiver.url}, format="json").json()["signing_key"]
    assert key_one != key_two
    assert one.put(PUSH, {"url": receiver.url + "/v2"}, format="json").json()["signing_key"] == key_one
    assert PushEndpoint.objects.get(device=first).url.endswith("/v2")
    assert one.delete(PUSH).status_code == 204 and one.get(PUSH).status_code == 404


def test_an_endpoint_that_turns_private_after_registration_is_not_posted_to(
    make_resource, device_client, receiver, settings, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=3)
    device = resource.memberships.order_by("device_id").first().device
    client, _ = device_client(device=device)
    client.put(PUSH, {"url": receiver.url}, format="json")
    settings.DISPATCH_PUSH_ALLOW_PRIVATE = False  # as if the name now resolved to a private address

    _, chunks, _ = start_event(resource, django_capture_on_commit_callbacks)
    push.deliver(
        push.chunk_bodies(
            event_id=chunks[0][0], round_number=chunks[0][1], first_device=chunks[0][2], last_device=chunks[0][3]
        )
    )

    assert receiver.received == []
    assert PushEndpoint.objects.get(device=device).last_error.startswith("refused")


def push_first_chunk(resource, capture) -> dict:
    _, chunks, _ = start_event(resource, capture)
    return push.deliver(
        push.chunk_bodies(
            event_id=chunks[0][0], round_number=chunks[0][1], first_device=chunks[0][2], last_device=chunks[0][3]
        )
    )


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failed_push_and_is_never_followed(
    make_resource, device_client, receivers, django_capture_on_commit_callbacks, status
):
    resource = make_resource(generators=3)
    device = resource.memberships.order_by("device_id").first().device
    client, _ = device_client(device=device)
    checked, internal = receivers(), receivers()
    internal.text = b"internal service: admin console at 10.0.0.5"
    client.put(PUSH, {"url": checked.url}, format="json")
    checked.status, checked.location = status, internal.url

    failed = push_first_chunk(resource, django_capture_on_commit_callbacks)

    assert len(checked.received) == 1
    assert internal.received == []  # neither the body nor the signature went past the checked address
    endpoint = PushEndpoint.objects.get(device=device)
    assert failed == {endpoint.pk: f"HTTP {status}: redirects are not followed"}
    seen = client.get(PUSH).json()
    assert seen["last_success_at"] is None and seen["last_failure_at"] is not None
    assert seen["last_error"] == f"HTTP {status}: redirects are not followed"


def test_what_an_endpoint_answers_is_never_shown_back_to_the_device(
    make_resource, device_client, receiver, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=3)
    device = resource.memberships.order_by("device_id").first().device
    client, _ = device_client(device=device)
    banner = b"SSH-2.0-OpenSSH_9.6 internal-bastion-7"
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_with_banner():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(banner + b"\r\n")

    threading.Thread(target=answer_with_banner, daemon=True).start()
    client.put(PUSH, {"url": f"http://127.0.0.1:{listener.getsockname()[1]}/vpp"}, format="json")

    try:
        failed = push_first_chunk(resource, django_capture_on_commit_callbacks)
    finally:
        listener.close()

    endpoint = PushEndpoint.objects.get(device=device)
    assert failed == {endpoint.pk: "invalid HTTP response"}
    assert client.get(PUSH).json()["last_error"] == "invalid HTTP response"
