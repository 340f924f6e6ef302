"""Telemetry on the outbound API (market tokens: a market sees only its own resources) and the operator API."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from aggregator.core.access import tokens
from aggregator.market import telemetry
from dispatch.models import MarketCredential
from tests.factories import market
from tests.market.telemetry_setup import heartbeat, resource, set_rules

pytestmark = pytest.mark.django_db

OUTBOUND = "/api/outbound/v1/telemetry"
OPERATOR = "/api/v1/market/telemetry"
AT = datetime(2026, 7, 15, 14, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def market_client(code: str, *, source: str = "market_instruction") -> APIClient:
    issued = tokens.issue("mkt")
    MarketCredential.objects.create(market=market(code), source=source, key_id=issued.key_id, digest=issued.digest)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


def errors(response) -> list[tuple]:
    return [(e["field"], e["code"]) for e in response.json()["errors"]]


@pytest.fixture
def series():
    """Two PJM resources scanned at AT, AT+10 s and AT+20 s; one NYISO resource at AT."""
    pjm = set_rules(market("PJM"), scan_seconds=10)
    first, (a,) = resource(pjm, members=1)
    second, (b, _c) = resource(pjm, members=2)
    nyiso_resource, (d,) = resource(set_rules(market("NYISO"), scan_seconds=10), members=1)
    for step, kw in enumerate(["1.000", "2.000", "3.000"]):
        at = AT + step * 10 * S
        heartbeat(a, at=at, kw=kw)
        heartbeat(b, at=at, kw="0.500")
        telemetry.scan(market=pjm, at=at)
    heartbeat(d, at=AT, kw="9.000")
    telemetry.scan(market=market("NYISO"), at=AT)
    return first, second, nyiso_resource


def test_the_market_reads_one_resource_in_a_half_open_window_in_its_own_time_zone(series):
    first, _, _ = series

    response = market_client("PJM").get(
        OUTBOUND,
        {"resource": first.market_resource_id, "since": "2026-07-15T10:00:00-04:00", "until": "2026-07-15T14:00:20Z"},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 2
    assert body["results"] == [
        {
            "resource": first.market_resource_id,
            "at": "2026-07-15T10:00:00-04:00",
            "kw": 1.0,
            "devices_reporting": 1,
            "devices_expected": 1,
            "quality": "good",
        },
        {
            "resource": first.market_resource_id,
            "at": "2026-07-15T10:00:10-04:00",
            "kw": 2.0,
            "devices_reporting": 1,
            "devices_expected": 1,
            "quality": "good",
        },
    ]


def test_without_a_resource_the_market_reads_all_of_its_own_and_no_others(series):
    first, second, _ = series

    response = market_client("PJM").get(OUTBOUND, {"since": "2026-07-15T14:00:00Z", "until": "2026-07-15T14:00:10Z"})

    assert response.status_code == 200
    assert [(s["resource"], s["kw"], s["quality"]) for s in response.json()["results"]] == [
        (first.market_resource_id, 1.0, "good"),
        (second.market_resource_id, 0.5, "poor"),  # 1 of 2 reporting
    ]


def test_another_markets_token_sees_nothing_of_this_markets_resources(series):
    first, _, nyiso_resource = series
    nyiso = market_client("NYISO")
    window = {"since": "2026-07-15T13:00:00Z", "until": "2026-07-15T15:00:00Z"}

    asked = nyiso.get(OUTBOUND, {**window, "resource": first.market_resource_id})
    everything = nyiso.get(OUTBOUND, window)

    assert asked.status_code == 400
    assert errors(asked) == [("resource", "unknown_resource")]
    assert asked.json() == nyiso.get(OUTBOUND, {**window, "resource": "NO-SUCH-ID"}).json()
    assert [s["resource"] for s in everything.json()["results"]] == [nyiso_resource.market_resource_id]


def test_the_outbound_api_takes_only_a_market_token(series, api_as):
    assert APIClient().get(OUTBOUND).status_code == 401
    assert api_as("admin").get(OUTBOUND).status_code == 401  # an operator token is the wrong kind
    utility = market_client("PJM", source="utility_call").get(OUTBOUND)
    assert utility.status_code == 403


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"since": "2026-07-15T14:00:00"}, [("since", "naive_timestamp")]),
        ({"since": "yesterday"}, [("since", "invalid")]),
        ({"since": "2026-07-15T14:00:00Z", "until": "2026-07-15T13:00:00Z"}, [("until", "window_order")]),
        ({"since": "2026-07-01T00:00:00Z", "until": "2026-07-15T00:00:00Z"}, [("until", "window_too_long")]),
        ({"resource": "x" * 65}, [("resource", "max_length")]),
        ({"until": "2026-07-15T10:00:00+22:00"}, [("until", "invalid_offset")]),
    ],
)
def test_bad_parameters_are_400_naming_them(series, params, expected):
    response = market_client("PJM").get(OUTBOUND, params)

    assert response.status_code == 400
    assert errors(response) == expected


def test_pages_are_bounded(series):
    response = market_client("PJM").get(
        OUTBOUND, {"since": "2026-07-15T14:00:00Z", "until": "2026-07-15T14:01:00Z", "page_size": 4}
    )

    body = response.json()
    assert (body["count"], len(body["results"]), body["next"] is not None) == (6, 4, True)


def test_an_analyst_reads_a_resources_telemetry_on_the_operator_api(series, api_as):
    _, second, _ = series

    response = api_as("analyst").get(
        OPERATOR, {"resource": second.pk, "since": "2026-07-15T14:00:10Z", "until": "2026-07-15T14:00:30Z"}
    )

    assert response.status_code == 200, response.content
    assert [
        (s["resource"], s["market_resource_id"], s["at"], s["kw"], s["devices_reporting"], s["devices_expected"])
        for s in response.json()["results"]
    ] == [
        (second.pk, second.market_resource_id, "2026-07-15T14:00:10Z", 0.5, 1, 2),
        (second.pk, second.market_resource_id, "2026-07-15T14:00:20Z", 0.5, 1, 2),
    ]


def test_the_operator_api_needs_a_role_and_names_a_missing_or_unknown_resource(series, api_as):
    no_role = APIClient()
    no_role.force_authenticate(get_user_model().objects.create_user("nobody"))

    assert no_role.get(OPERATOR, {"resource": series[0].pk}).status_code == 403
    assert errors(api_as("analyst").get(OPERATOR)) == [("resource", "required")]
    assert errors(api_as("analyst").get(OPERATOR, {"resource": 999_999})) == [("resource", "unknown_resource")]


def test_the_outbound_api_is_in_the_schema_with_its_parameters(api_as):
    schema = api_as("analyst").get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/outbound/v1/telemetry"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"resource", "since", "until", "page", "page_size"}
    assert operation["security"] == [{"marketToken": []}]
    assert "/api/v1/market/telemetry" in schema["paths"]
