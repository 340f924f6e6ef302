import socket

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from aggregator.core.access import tokens
from aggregator.core.access.models import OperatorToken
from aggregator.core.access.roles import ensure_role_groups, grant
from enrollment import services
from tests.factories import ProgramFactory

# Transactional tests (django_db(transaction=True)) must also pass serialized_rollback=True:
# their flush empties the tables, and the rollback restores the markets the migrations seed.


def pytest_collection_modifyitems(items):
    """The worker tests (`-m worker`): those that start a real Celery worker, to be run on each broker."""
    for item in items:
        if "celery_worker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.worker)


@pytest.fixture(autouse=True, scope="session")
def _static_files_without_manifest():
    """Pages render without `collectstatic` having run (production uses the manifest)."""
    from django.conf import settings

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_partition_cache():
    """Each test's transaction rolls back the partitions it created; so must the process cache."""
    from aggregator.reference import partitions

    partitions.forget()
    yield
    partitions.forget()


@pytest.fixture(autouse=True)
def _live_server_closes_its_connections(request):
    """The live server answers each request on a new thread; with persistent connections each thread's
    connection would outlive it. Tests that use it close them at the end of each request instead."""
    if "live_server" not in request.fixturenames:
        yield
        return
    from django.db import connections

    saved = connections.settings["default"]["CONN_MAX_AGE"]
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    yield
    connections.settings["default"]["CONN_MAX_AGE"] = saved


@pytest.fixture
def program(db):
    return ProgramFactory()


@pytest.fixture
def superuser(db):
    """A superuser with the admin role, as the admin site's operators are."""
    ensure_role_groups()
    user = get_user_model().objects.create_superuser(username="root", password="x-not-used-x", email="root@example.com")
    grant(user, "admin")
    return user


@pytest.fixture
def browser(superuser):
    """A Django test client logged in to the admin as `superuser`."""
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def make_operator(db):
    """make_operator(role) -> a user with that operator role ('admin', 'operator', 'analyst')."""
    ensure_role_groups()
    created = {}

    def make(role: str = "operator", username: str | None = None):
        username = username or f"{role}-{len(created) + 1}"
        user = get_user_model().objects.create_user(username=username, password="x-not-used-x")
        grant(user, role)
        created[username] = user
        return user

    return make


def operator_token(user) -> str:
    issued = tokens.issue("op")
    OperatorToken.objects.create(user=user, key_id=issued.key_id, digest=issued.digest)
    return issued.plaintext


@pytest.fixture
def api_as(make_operator):
    """api_as(role) -> an APIClient authenticated with a real operator bearer token."""

    def client_for(role: str = "operator"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_token(make_operator(role))}")
        return client

    return client_for


@pytest.fixture
def device_client():
    """device_client(device=..., gateway=...) -> (APIClient with a fresh device or gateway token, credential)."""

    def client_for(*, device=None, gateway=None):
        credential, token = services.issue_credential(device=device, gateway=gateway, by="test")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client, credential

    return client_for


@pytest.fixture
def celery_worker():
    """A real Celery worker on the real broker (Redis, or CELERY_BROKER_URL's), in this process (use with a
    transactional test)."""
    from celery.contrib.testing.worker import start_worker

    from aggregator.celery import app
    from tests.rabbitmq import wake_often

    with start_worker(app, pool="threads", concurrency=1, perform_ping_check=False, shutdown_timeout=10) as worker:
        wake_often(worker)
        yield worker


@pytest.fixture
def redis_down(settings):
    """The cache's Redis (rate counters, the poll cache) is unreachable: its address is a port nothing listens on."""
    from aggregator.core import redis_client
    from dispatch import poll_cache

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once the socket closes: connections to it are refused
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"}}
    redis_client.client.cache_clear()  # the process's client was made for the reachable Redis
    poll_cache._scripts.cache_clear()
    yield
    redis_client.client.cache_clear()
    poll_cache._scripts.cache_clear()


@pytest.fixture
def redis_silent(settings):
    """The cache's Redis accepts connections and never answers (a hung server, a black-holed network path)."""
    import threading

    from aggregator.core import redis_client
    from dispatch import poll_cache

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # kept open, never read or written
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"}}
    redis_client.client.cache_clear()
    poll_cache._scripts.cache_clear()
    yield
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    listener.close()
    redis_client.client.cache_clear()
    poll_cache._scripts.cache_clear()


@pytest.fixture(autouse=True)
def fixed_dates_inside_the_device_look_back(settings):
    """The tests' fixed dates (the DST days of 2025 and 2026, a July afternoon) stay inside the device API's
    look-back as the calendar moves on: 60 years here, so a reading from 1900 is still refused. A test of the
    look-back itself sets its own."""
    settings.DEVICE_READINGS_LOOK_BACK_DAYS = 60 * 365
