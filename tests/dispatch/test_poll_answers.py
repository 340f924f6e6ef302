"""A device's repeated command poll is answered from Redis, and never with an answer a change made stale."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import connection

from aggregator.core import redis_client
from aggregator.core.access import tokens
from dispatch import poll_cache, services
from dispatch.models import DeviceCommand, DispatchEvent
from enrollment import services as enrollment_services
from tests.factories import GatewayFactory

COMMANDS = "/api/device/v1/commands"


@pytest.fixture
def live(make_resource, django_capture_on_commit_callbacks):
    """An active event on three generators, its commands issued; returns (event, device, client, credential, token)."""

    def make(hours: float = 1, **device_kwargs):
        resource = make_resource(generators=3, **device_kwargs)
        start = datetime.now(UTC).replace(second=0, microsecond=0)
        with django_capture_on_commit_callbacks(execute=False):
            event = services.create_event(
                resource=resource,
                source="operator_test",
                start=start,
                end=start + timedelta(hours=hours),
                target_kw=90,
                over_commit_pct=0,
                by="tester",
            )
            for chunk in services.advance(event_id=event.pk):
                services.issue_commands(
                    event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3]
                )
        command = DeviceCommand.objects.filter(event=event).order_by("device_id").first()
        credential, token = enrollment_services.issue_credential(device=command.device, by="test")
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return event, command, client, credential, token

    return make


def change_behind_the_cache(command) -> None:
    """Alter a command in PostgreSQL without marking it: only a poll that reads PostgreSQL can see it."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE dispatch_devicecommand SET ramp_seconds = 777 WHERE id = %s", [command.pk])


def commands(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["commands"]


def test_a_repeated_poll_is_answered_from_its_stored_answer(live):
    _, command, client, _, _ = live()
    first = commands(client.get(COMMANDS))
    assert DeviceCommand.objects.get(pk=command.pk).delivered_at is not None  # the full path stamped delivery
    change_behind_the_cache(command)
    again = commands(client.get(COMMANDS))
    assert again == first and [c["id"] for c in again] == [str(command.pk)] and again[0]["ramp_seconds"] != 777


def test_an_acknowledgement_shows_in_the_next_poll(live):
    _, command, client, _, _ = live()
    assert commands(client.get(COMMANDS))[0]["status"] == "pending"
    assert client.post(f"{COMMANDS}/{command.pk}/ack", {"status": "accepted"}, format="json").status_code == 200
    assert commands(client.get(COMMANDS))[0]["status"] == "accepted"


def test_an_opt_out_removes_the_command_from_the_next_poll(live):
    _, command, client, _, _ = live()
    assert commands(client.get(COMMANDS))
    assert client.post(f"{COMMANDS}/{command.pk}/opt-out", {"reason": "too hot"}, format="json").status_code in (
        200,
        201,
    )
    assert commands(client.get(COMMANDS)) == []


def test_a_cancellation_reaches_a_device_whose_answer_was_stored(live, django_capture_on_commit_callbacks):
    event, _command, client, _, _ = live()
    assert [c["kind"] for c in commands(client.get(COMMANDS))] == ["dispatch"]
    with django_capture_on_commit_callbacks(execute=False):
        services.cancel(event=event, by="operator", reason="grid recovered")
        for chunk in services.pending_chunks(event=DispatchEvent.objects.get(pk=event.pk)):
            services.issue_commands(
                event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3]
            )
    assert [c["kind"] for c in commands(client.get(COMMANDS))] == ["cancel"]


def test_the_end_of_the_event_empties_the_next_poll(live, django_capture_on_commit_callbacks):
    event, _, client, _, _ = live()
    assert commands(client.get(COMMANDS))
    with django_capture_on_commit_callbacks(execute=False):
        services.advance(event_id=event.pk, now=event.end + timedelta(seconds=1))
    assert DispatchEvent.objects.get(pk=event.pk).state == "completed"
    assert commands(client.get(COMMANDS)) == []


@pytest.mark.parametrize("change", ["revoke", "expire", "delete"])
def test_a_token_that_stops_being_valid_is_refused_at_once_despite_its_stored_answer(live, change):
    _, _, client, credential, _ = live()
    assert commands(client.get(COMMANDS))
    if change == "revoke":
        enrollment_services.revoke_credential(credential=credential)
    elif change == "expire":
        credential.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        credential.save()
    else:
        credential.delete()
    response = client.get(COMMANDS)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] in ("token_revoked", "invalid_token")


def poll_cache_snapshot() -> dict[bytes, tuple[bytes, int]]:
    """The poll cache's keys as a Redis snapshot holds them (value and time left)."""
    client = redis_client.client()
    keys = client.scan_iter(match=cache.make_key("dispatch:poll:") + "*")
    return {key: (client.dump(key), max(client.pttl(key), 0)) for key in keys}


def restart_from(snapshot: dict[bytes, tuple[bytes, int]]) -> None:
    """The poll cache after Redis restarted from `snapshot`: what was written since is gone."""
    client = redis_client.client()
    for key in client.scan_iter(match=cache.make_key("dispatch:poll:") + "*"):
        client.delete(key)
    for key, (value, ttl) in snapshot.items():
        client.restore(key, ttl, value)


def test_a_revoked_token_is_refused_after_redis_restarts_from_a_snapshot_taken_before_the_revocation(live):
    from aggregator.wsgi import _cached_poll

    _, _, client, credential, token = live()
    assert commands(client.get(COMMANDS))
    snapshot = poll_cache_snapshot()
    enrollment_services.revoke_credential(credential=credential)
    restart_from(snapshot)  # the stored answer is back; the revocation's mark is not

    assert _cached_poll(wsgi_environ(token)) is None  # the entry point leaves it to Django...
    response = client.get(COMMANDS)  # ...which refuses it
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "token_revoked"


def test_the_rate_limit_counts_cached_and_full_polls_together(live, settings):
    settings.DEVICE_API_RATES = {**settings.DEVICE_API_RATES, "device": "3/min"}
    _, _, client, _, _ = live()
    assert [client.get(COMMANDS).status_code for _ in range(3)] == [200, 200, 200]  # one full, two cached
    refused = client.get(COMMANDS)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.json()["errors"][0]["code"] == "throttled"


def test_an_answer_read_before_a_change_was_marked_is_never_served(db):
    digest, device = tokens.digest(f"dev_{'0' * 16}_x"), 10**12
    key, limit, window = "vpp:test:rate:" + digest, 100, 60
    before = poll_cache.clock()  # the fill took the clock, then read PostgreSQL...
    poll_cache.changed(devices=[device])  # ...while a writer committed and marked
    poll_cache.store(
        digest=digest,
        version=before,
        device_id=device,
        key_id="k" * 16,
        commands="[]",
        until=datetime.now(UTC) + timedelta(minutes=1),
    )
    assert poll_cache.answer(digest=digest, rate_key=key, limit=limit, window=window) is None
    after = poll_cache.clock()  # a fill after the mark read the change: served
    poll_cache.store(
        digest=digest,
        version=after,
        device_id=device,
        key_id="k" * 16,
        commands="[]",
        until=datetime.now(UTC) + timedelta(minutes=1),
    )
    assert poll_cache.answer(digest=digest, rate_key=key, limit=limit, window=window) == (True, "[]")


def test_an_answer_is_not_kept_past_its_commands_expiry(live):
    event, _, client, _, token = live(hours=0.05, min_run_minutes=0)  # three minutes (engines that may run so little)
    commands(client.get(COMMANDS))
    left_ms = redis_client.client().pttl(poll_cache._keys()[0] + tokens.digest(token))
    assert 0 < left_ms <= (event.end - datetime.now(UTC)).total_seconds() * 1000


def test_a_gateway_poll_always_reads_postgresql(program, make_resource, django_capture_on_commit_callbacks):
    resource = make_resource(generators=1)
    device = resource.memberships.first().device
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=False):
        event = services.create_event(
            resource=resource,
            source="operator_test",
            start=start,
            end=start + timedelta(hours=1),
            target_kw=30,
            over_commit_pct=0,
            by="tester",
        )
        for chunk in services.advance(event_id=event.pk):
            services.issue_commands(
                event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3]
            )
    gateway = GatewayFactory(site=device.site)
    device.gateway = gateway
    device.save(update_fields=["gateway"])
    _, token = enrollment_services.issue_credential(gateway=gateway, by="test")
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert commands(client.get(COMMANDS))
    change_behind_the_cache(DeviceCommand.objects.get(event=event, device=device))
    assert commands(client.get(COMMANDS))[0]["ramp_seconds"] == 777


def test_with_the_cache_off_every_poll_reads_postgresql(live, settings):
    settings.DISPATCH_POLL_CACHE_SECONDS = 0
    _, command, client, _, _ = live()
    commands(client.get(COMMANDS))
    change_behind_the_cache(command)
    assert commands(client.get(COMMANDS))[0]["ramp_seconds"] == 777


def test_with_redis_down_a_poll_is_answered_from_postgresql(live, redis_down, caplog):
    _, command, client, _, token = live()
    change_behind_the_cache(command)
    assert commands(client.get(COMMANDS))[0]["ramp_seconds"] == 777
    assert commands(client.get(COMMANDS))[0]["ramp_seconds"] == 777  # nothing stored, nothing served stale
    assert "rate limit not applied" in caplog.text

    from aggregator.wsgi import _cached_poll

    assert _cached_poll(wsgi_environ(token)) is None  # the entry point leaves the poll to Django


# --- the WSGI entry point serves a hit ahead of Django --------------------------------------


def wsgi_environ(token: str, *, query: str = "", host: str = "localhost") -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": COMMANDS,
        "QUERY_STRING": query,
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }


def wsgi_get(token: str, **kwargs) -> dict:
    from aggregator.wsgi import application

    environ = wsgi_environ(token, **kwargs)
    answer = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    answer["body"] = b"".join(application(environ, start_response))
    return answer


def test_the_wsgi_entry_point_answers_a_stored_poll_without_django_and_with_the_security_headers(live, settings):
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    _, command, client, _, token = live()
    first = commands(client.get(COMMANDS))
    change_behind_the_cache(command)
    answer = wsgi_get(token)  # Django's handler would close this thread's connection; a hit never reaches it
    assert answer["status"] == 200
    import json

    assert json.loads(answer["body"])["commands"] == first
    assert answer["headers"]["X-Content-Type-Options"] == "nosniff" and answer["headers"]["X-Frame-Options"] == "DENY"


def test_the_wsgi_entry_point_leaves_everything_but_a_hit_to_django(live, settings):
    from aggregator.wsgi import _cached_poll

    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    _, _, client, _, token = live()
    commands(client.get(COMMANDS))
    assert _cached_poll(wsgi_environ(token)) is not None
    assert _cached_poll(wsgi_environ(token, query="device=1")) is None  # Django checks the device
    assert _cached_poll(wsgi_environ("dev_0123456789abcdef_not-a-real-secret")) is None
    assert _cached_poll(wsgi_environ(token, host="evil.example")) is None
    settings.SECURE_SSL_REDIRECT = True
    assert _cached_poll(wsgi_environ(token)) is None  # Django redirects to https
    settings.SECURE_SSL_REDIRECT = False
    # Through the entry point, Django answers: it refuses the host as for any other request.
    assert wsgi_get(token, host="evil.example")["status"] == 400
    connection.ensure_connection()  # the Django handler closed this thread's connection at the request's end
