"""The forecasts on the operator API: who may read them, the latest per resource by default, intervals."""

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from aggregator.market.models import Forecast
from tests.market import forecast_fleets as ff

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 20, 4, 0, tzinfo=UTC)
URL = "/api/v1/market/forecasts/"


def forecast(resource, *, issued_at=NOW, kind="hourly", model="learned", values=(2.0, 3.0)):
    return Forecast.objects.create(
        resource=resource,
        kind=kind,
        model=model,
        issued_at=issued_at,
        start=issued_at,
        interval_minutes=60 if kind == "hourly" else 5,
        expected_kw=list(values),
        p10_kw=[v - 1 for v in values],
        p50_kw=list(values),
        p90_kw=[v + 1 for v in values],
        inputs={"history_days": 42},
    )


def test_an_operator_token_is_needed():
    assert APIClient().get(URL).status_code in (401, 403)


def test_the_list_shows_the_latest_per_resource_kind_and_model(api_as):
    a, b = ff.resource("A"), ff.resource("B")
    forecast(a, issued_at=NOW - timedelta(hours=1))
    latest_a = forecast(a)
    latest_b = forecast(b)
    real_time = forecast(a, kind="real_time")

    body = api_as("analyst").get(URL).json()

    assert sorted(row["id"] for row in body["results"]) == sorted([latest_a.pk, latest_b.pk, real_time.pk])
    only = api_as("analyst").get(URL, {"resource": a.pk, "kind": "hourly"}).json()["results"]
    assert [row["id"] for row in only] == [latest_a.pk]
    assert only[0] == {
        "id": latest_a.pk,
        "resource": a.pk,
        "kind": "hourly",
        "model": "learned",
        "issued_at": "2026-07-20T04:00:00Z",
        "start": "2026-07-20T04:00:00Z",
        "interval_minutes": 60,
    }
    every = api_as("analyst").get(URL, {"resource": a.pk, "kind": "hourly", "latest": "false"}).json()["results"]
    assert len(every) == 2


def test_a_forecast_shows_its_intervals(api_as):
    row = forecast(ff.resource())

    body = api_as("analyst").get(f"{URL}{row.pk}/").json()

    assert body["intervals"] == [
        {"start": "2026-07-20T04:00:00Z", "expected_kw": 2.0, "p10_kw": 1.0, "p50_kw": 2.0, "p90_kw": 3.0},
        {"start": "2026-07-20T05:00:00Z", "expected_kw": 3.0, "p10_kw": 2.0, "p50_kw": 3.0, "p90_kw": 4.0},
    ]
    assert body["inputs"] == {"history_days": 42}


@pytest.mark.parametrize(("name", "value"), [("kind", "weekly"), ("resource", "x"), ("latest", "maybe")])
def test_a_bad_filter_is_refused_naming_it(api_as, name, value):
    response = api_as("analyst").get(URL, {name: value})

    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [name]


def test_the_schema_documents_the_intervals(api_as):
    schema = api_as("analyst").get("/api/schema/?format=json").json()

    detail = schema["paths"]["/api/v1/market/forecasts/{id}/"]["get"]["responses"]["200"]
    ref = detail["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    interval = schema["components"]["schemas"][ref]["properties"]["intervals"]["items"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][interval]["properties"]) == {
        "start",
        "expected_kw",
        "p10_kw",
        "p50_kw",
        "p90_kw",
    }
