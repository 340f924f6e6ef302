"""Console and portal logins: repeated failures lock the account and the address for a while, with a message.

django-axes counts failures in PostgreSQL; the device API and operator tokens do not log in and are not counted.
"""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import operator_token
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
LOCKED = "Too many failed logins"


@pytest.fixture
def operator(make_operator):
    user = make_operator("operator", username="op-1")
    user.set_password(PASSWORD)
    user.save()
    return user


def login(path: str, username: str, password: str, address: str = "198.51.100.7"):
    client = Client()
    return client, client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def fail(path: str, username: str, address: str = "198.51.100.7", times: int | None = None) -> None:
    for _ in range(times or settings.AXES_FAILURE_LIMIT):
        login(path, username, "wrong password", address)


@pytest.mark.parametrize("path", ["/console/login/", "/portal/login/"])
def test_failed_logins_lock_the_account_with_a_message_and_refuse_the_right_password(operator, path):
    fail(path, operator.username)

    client, response = login(path, operator.username, PASSWORD, address="203.0.113.9")  # another address too

    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_failures_below_the_limit_do_not_lock(operator):
    fail("/console/login/", operator.username, times=settings.AXES_FAILURE_LIMIT - 1)

    _, response = login("/console/login/", operator.username, PASSWORD)

    assert response.status_code == 302


def test_failed_logins_from_one_address_lock_that_address_for_every_account(operator, django_user_model):
    for n in range(settings.AXES_FAILURE_LIMIT):
        login("/console/login/", f"guess-{n}", "wrong password", address="192.0.2.50")

    _, here = login("/console/login/", operator.username, PASSWORD, address="192.0.2.50")
    _, elsewhere = login("/console/login/", operator.username, PASSWORD, address="192.0.2.51")

    assert here.status_code == 429 and LOCKED in here.content.decode()
    assert elsewhere.status_code == 302


def test_the_lock_expires_after_the_cool_off(operator):
    fail("/console/login/", operator.username)

    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=1), tick=False):
        _, response = login("/console/login/", operator.username, PASSWORD)

    assert response.status_code == 302


def test_an_admin_resets_a_locked_account(operator):
    fail("/console/login/", operator.username)
    assert login("/console/login/", operator.username, PASSWORD)[1].status_code == 429

    call_command("axes_reset_username", operator.username)

    assert login("/console/login/", operator.username, PASSWORD, address="203.0.113.9")[1].status_code == 302


def test_a_locked_address_still_reaches_the_device_api_and_the_operator_api(operator, device_client):
    address = "192.0.2.77"
    fail("/console/login/", operator.username, address=address)
    device_api = device_client(device=DeviceFactory())[0]
    operator_api = APIClient()
    operator_api.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_token(operator)}")

    assert device_api.get("/api/device/v1/commands", REMOTE_ADDR=address).status_code == 200
    assert operator_api.get("/api/v1/", REMOTE_ADDR=address).status_code == 200


def test_behind_a_proxy_the_address_counted_is_the_one_the_proxy_saw(operator, settings):
    settings.LOGIN_PROXY_HOPS = 1
    proxy = "10.0.0.2"
    for n in range(settings.AXES_FAILURE_LIMIT):
        # What the client itself put in front is not believed: only the proxy's own entry counts.
        Client().post(
            "/console/login/",
            {"username": f"guess-{n}", "password": "wrong"},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 198.51.100.20",
        )

    def through_proxy(client_address: str) -> int:
        return (
            Client()
            .post(
                "/console/login/",
                {"username": operator.username, "password": PASSWORD},
                REMOTE_ADDR=proxy,
                HTTP_X_FORWARDED_FOR=client_address,
            )
            .status_code
        )

    assert through_proxy("198.51.100.20") == 429
    assert through_proxy("198.51.100.21") == 302
