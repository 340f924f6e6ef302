"""GET /api/v1/ lists every collection the apps' routers registered (each app owns its URLs)."""

from rest_framework.test import APIClient

COLLECTIONS = {
    "aggregation-proposals", "consents", "credentials", "customers", "devices", "dispatch-events", "enrollments",
    "fleet-imports", "gateways", "market/awards", "market/forecasts", "market/offers", "market/refused-awards",
    "markets", "programs", "retail-programs", "settlement-runs", "sites", "storm-watches", "virtual-resources",
}  # fmt: skip


def test_the_api_root_links_every_collection_of_every_app(api_as):
    response = api_as("analyst").get("/api/v1/")
    assert response.status_code == 200, response.content
    links = response.json()
    assert set(links) == COLLECTIONS
    assert links["dispatch-events"].endswith("/api/v1/dispatch-events/")
    assert api_as("analyst").get(links["markets"]).status_code == 200


def test_the_api_root_needs_a_login(db):
    assert APIClient().get("/api/v1/").status_code == 401
