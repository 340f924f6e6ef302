"""A path under /api/ that matches no URL (a malformed id, a typo) is the API's error body, not an HTML page."""

from rest_framework.test import APIClient


def test_an_unmatched_operator_api_path_answers_the_error_body(api_as):
    response = api_as("analyst").get("/api/v1/devices/1/no-such-action/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"type": "not_found", "title": "Not found.", "status": 404, "errors": []}


def test_an_unmatched_device_api_path_answers_the_error_body(db):
    response = APIClient().post("/api/device/v1/commands/null,null/ack", {"status": "accepted"}, format="json")
    assert response.status_code == 404
    assert response.json()["type"] == "not_found"


def test_other_unmatched_paths_keep_the_html_page(db):
    response = APIClient().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
