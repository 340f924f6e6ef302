"""PostgreSQL or Redis out of reach: the API answers 503 with Retry-After in the one error shape, not a 500."""

import socket
from contextlib import contextmanager

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIClient

from tests.conftest import operator_token


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def database_unreachable():
    """The default database's address points at a closed port, as when PostgreSQL is down."""
    connection.close()
    saved = connection.settings_dict["HOST"], connection.settings_dict["PORT"]
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", closed_port()
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["HOST"], connection.settings_dict["PORT"] = saved


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.content
    assert response.json() == {
        "type": "service_unavailable",
        "title": "A service the platform depends on is unavailable; try again shortly.",
        "status": 503,
        "errors": [],
    }
    assert int(response["Retry-After"]) > 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_operator_api_answers_503_while_postgresql_is_down(make_operator):
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_token(make_operator('analyst'))}")
    assert client.get("/api/v1/customers/").status_code == 200

    with database_unreachable():
        response = client.get("/api/v1/customers/")

    assert_unavailable(response)
    assert client.get("/api/v1/customers/").status_code == 200  # and serves again once it is back


@api_view(["GET"])
@permission_classes([AllowAny])
def _cached_value(request):
    return Response({"value": cache.get("a-key")})


urlpatterns = [path("cached/", _cached_value)]


@pytest.mark.urls(__name__)
def test_an_api_view_answers_503_while_redis_is_down():
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
        }
    }
    with override_settings(CACHES=unreachable):
        response = APIClient(raise_request_exception=False).get("/cached/")

    assert_unavailable(response)
