"""Offers on the operator API: list with filters, detail with intervals, edit (PATCH or POST) as a new version,
approve, submit; analysts read only; refusals name the field and write nothing."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from aggregator.market.models import MarketConnection, Offer
from aggregator.market.offers import services
from tests.factories import market
from tests.market.offer_setup import forecast, program_with_terms, resource_with

pytestmark = pytest.mark.django_db

WINDOW_START = datetime(2026, 3, 9, 4, tzinfo=UTC)
NOW = datetime(2026, 3, 8, 9, tzinfo=UTC)  # the deadline is 14:30Z
URL = "/api/v1/market/offers/"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def offer():
    resource = resource_with(program_with_terms(), [{"rated_kw": Decimal("10")}], joined_at=NOW - timedelta(days=30))
    forecast(resource, start=WINDOW_START, issued_at=NOW - timedelta(hours=1), p10=8)
    (built,) = services.build_offers(
        market_kind="day_ahead", resources=[resource], day=WINDOW_START.date(), now=NOW
    ).built
    return built


def test_offers_are_listed_with_filters_and_read_with_their_intervals(api_as, offer):
    analyst = api_as("analyst")
    listed = analyst.get(
        URL,
        {
            "market_kind": "day_ahead",
            "state": "draft",
            "resource": offer.resource_id,
            "window_from": "2026-03-09T00:00:00-04:00",
        },
    )
    assert listed.status_code == 200
    assert [(o["id"], o["offer_ref"], o["market"], o["allowed_actions"]) for o in listed.json()["results"]] == [
        (offer.pk, f"{offer.pk}-v1", "PJM", ["approve", "edit"])
    ]
    assert analyst.get(URL, {"state": "submitted"}).json()["results"] == []
    assert analyst.get(URL, {"window_to": "2026-03-09T04:00:00Z"}).json()["results"] == []
    detail = analyst.get(f"{URL}{offer.pk}/").json()
    assert len(detail["intervals"]) == 24
    assert detail["intervals"][0]["segments"] == [[8.0, 0.0]]


def test_a_bad_filter_is_a_400_naming_it(api_as, offer):
    refused = api_as("analyst").get(URL, {"state": "sleeping"})
    assert refused.status_code == 400
    assert [e["field"] for e in refused.json()["errors"]] == ["state"]


def test_an_analyst_cannot_edit_approve_or_submit(api_as, offer):
    analyst = api_as("analyst")
    for response in (
        analyst.patch(
            f"{URL}{offer.pk}/", {"intervals": [{"start": WINDOW_START.isoformat(), "min_kw": 1}]}, format="json"
        ),
        analyst.post(f"{URL}{offer.pk}/approve/"),
        analyst.post(f"{URL}{offer.pk}/submit/"),
    ):
        assert response.status_code == 403
    assert Offer.objects.get().state == "draft"


@pytest.mark.parametrize("how", ["patch", "post"])
def test_an_edit_answers_the_new_version(api_as, offer, how):
    body = {"intervals": [{"start": "2026-03-09T00:00:00-04:00", "segments": [[5, 20], [3, 40]]}], "notes": "hedge"}
    client = api_as("operator")
    response = (
        client.patch(f"{URL}{offer.pk}/", body, format="json")
        if how == "patch"
        else client.post(f"{URL}{offer.pk}/edit/", body, format="json")
    )
    assert response.status_code == 201
    new = response.json()
    assert (new["version"], new["state"], new["supersedes"], new["notes"]) == (2, "draft", offer.pk, "hedge")
    assert new["intervals"][0]["segments"] == [[5.0, 20.0], [3.0, 40.0]]
    assert new["intervals"][0]["max_kw"] == "8.000"
    assert Offer.objects.get(pk=offer.pk).state == "superseded"


def test_a_refused_edit_is_a_400_naming_each_field_and_writes_nothing(api_as, offer):
    body = {"intervals": [{"start": WINDOW_START.isoformat(), "segments": [[5, 50], [5, 40]]}]}
    refused = api_as("operator").patch(f"{URL}{offer.pk}/", body, format="json")
    assert refused.status_code == 400
    assert {(e["code"], e["field"]) for e in refused.json()["errors"]} == {
        ("not_monotone", "intervals[0].segments[1][1]"),
        ("above_forecast_quantile", "intervals[0].segments"),
    }
    for interval, name in (
        ({"start": WINDOW_START.isoformat(), "max_kw": 3}, "max_kw"),
        ({"start": "2026-03-09T04:00:00"}, "start"),
    ):
        shape = api_as("operator").patch(f"{URL}{offer.pk}/", {"intervals": [interval]}, format="json")
        assert shape.status_code == 400
        assert [e["field"] for e in shape.json()["errors"]] == [f"intervals.0.{name}"]  # DRF names shape errors
    assert Offer.objects.count() == 1


def test_approve_then_submit_through_the_file_adapter(api_as, offer, tmp_path):
    MarketConnection.objects.create(
        market=market("PJM"), adapter="file", directory=str(tmp_path), layout="ercot-ews-offer-xml"
    )
    client = api_as("operator")
    early = client.post(f"{URL}{offer.pk}/submit/")
    assert (early.status_code, early.json()["errors"][0]["field"]) == (409, "state")
    approved = client.post(f"{URL}{offer.pk}/approve/")
    assert (approved.status_code, approved.json()["state"], approved.json()["approved_by"]) == (
        200,
        "approved",
        "operator-1",
    )
    submitted = client.post(f"{URL}{offer.pk}/submit/").json()
    assert (submitted["state"], submitted["submitted_via"]) == ("submitted", "file")
    assert (tmp_path / submitted["submission_ref"]).is_file()
    again = client.post(f"{URL}{offer.pk}/approve/")
    assert again.status_code == 409


def test_after_the_deadline_an_edit_is_a_409_naming_the_deadline(api_as, offer):
    with time_machine.travel(datetime(2026, 3, 8, 14, 30, tzinfo=UTC), tick=False):
        refused = api_as("operator").post(f"{URL}{offer.pk}/approve/")
    assert (refused.status_code, refused.json()["errors"][0]["field"]) == (409, "deadline")


def test_the_schema_documents_the_offer_operations(api_as):
    schema = api_as("analyst").get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert {"get", "patch"} <= set(paths["/api/v1/market/offers/{id}/"])
    for name in ("edit", "approve", "submit"):
        assert "post" in paths[f"/api/v1/market/offers/{{id}}/{name}/"]
    assert "201" in paths["/api/v1/market/offers/{id}/"]["patch"]["responses"]
