"""Identical creates racing each other on PostgreSQL: one is stored, every other gets the 400 a lone duplicate gets."""

import os
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from enrollment.models import Customer, Device
from tests.conftest import operator_token
from tests.factories import SiteFactory

RACERS = 4


def _test_database_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def race(table: str, send) -> list:
    """`send()` from RACERS threads at once, each on its own connection. Another connection holds the table
    against inserts until every racer has validated its input and waits to insert, so all of them race."""
    responses: list = []
    barrier = threading.Barrier(RACERS)

    def racer():
        try:
            barrier.wait(10)
            responses.append(send())
        finally:
            connections.close_all()

    with psycopg.connect(_test_database_url()) as blocker:
        blocker.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")  # reads pass, inserts wait
        threads = [threading.Thread(target=racer) for _ in range(RACERS)]
        for thread in threads:
            thread.start()
        for _ in range(1000):
            waiting = blocker.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass", [table]
            ).fetchone()[0]
            if waiting == RACERS:
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"only {waiting} of {RACERS} racers reached the insert")
        blocker.rollback()
    for thread in threads:
        thread.join(10)
    return responses


committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@committed
def test_racing_identical_customers_get_one_created_and_the_duplicate_400(make_operator):
    token = operator_token(make_operator("operator"))
    payload = {"external_ref": "C-RACE-1", "name": "Racing customer", "kind": "residential"}

    def send():
        client = APIClient(raise_request_exception=False)  # a 500 is an answer here, not the test's crash
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client.post("/api/v1/customers/", payload)

    responses = race("enrollment_customer", send)
    lone_duplicate = send()

    assert sorted(r.status_code for r in responses) == [201] + [400] * (RACERS - 1), [r.content for r in responses]
    assert lone_duplicate.status_code == 400
    assert all(r.json() == lone_duplicate.json() for r in responses if r.status_code == 400)
    assert lone_duplicate.json()["errors"][0]["field"] == "external_ref"
    assert Customer.objects.filter(external_ref="C-RACE-1").count() == 1


@committed
def test_racing_identical_devices_get_one_created_and_the_duplicate_400(make_operator):
    token = operator_token(make_operator("operator"))
    site = SiteFactory()
    payload = {
        "site": site.pk,
        "device_type": "battery",
        "manufacturer": "Tesla",
        "model": "Powerwall 3",
        "serial": "PW-RACE",
        "rated_kw": "5",
        "charge_kw": "5",
        "energy_kwh": "13.5",
        "backup_reserve_pct": "20",
    }

    def send():
        client = APIClient(raise_request_exception=False)  # a 500 is an answer here, not the test's crash
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client.post("/api/v1/devices/", payload)

    responses = race("enrollment_device", send)
    lone_duplicate = send()

    assert sorted(r.status_code for r in responses) == [201] + [400] * (RACERS - 1), [r.content for r in responses]
    assert all(r.json() == lone_duplicate.json() for r in responses if r.status_code == 400)
    assert [(e["field"], e["code"]) for e in lone_duplicate.json()["errors"]] == [("serial", "unique")]
    assert Device.objects.filter(serial="PW-RACE").count() == 1
