"""OpenADR 3.1 at its own base path, beside 3.0.1, over the same objects and with the same isolation."""

import pytest

from dispatch.openadr import auth
from dispatch.openadr.models import Client, Ven
from tests.dispatch.openadr.test_openadr_errors import assert_problem, basic, bl, http  # noqa: F401  (fixtures)
from tests.factories import SiteFactory

V31 = "/openadr3/3.1.0"
V301 = "/openadr3/3.0.1"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def callbacks_anywhere(settings):
    settings.DISPATCH_PUSH_ALLOW_PRIVATE = True


def token_31(http, client_id, secret, **form) -> dict:
    response = http.post(
        f"{V31}/auth/token", {"grant_type": "client_credentials", **form}, HTTP_AUTHORIZATION=basic(client_id, secret)
    )
    assert response.status_code == 200, response.content
    return response.json()


def post(http, path, body, headers):
    return http.post(path, body, content_type="application/json", **headers)


@pytest.fixture
def ven_31(http):
    def make(client_id):
        _client, secret = auth.issue_client(client_id=client_id, role=Client.Role.VEN, site=SiteFactory())
        return {"HTTP_AUTHORIZATION": f"Bearer {token_31(http, client_id, secret)['access_token']}"}

    return make


def test_a_31_token_carries_the_31_scopes_of_the_role(http):
    _client, secret = auth.issue_client(client_id="ven-1", role=Client.Role.VEN, site=SiteFactory())
    granted = token_31(http, "ven-1", secret, scope="read_all")  # what 3.0.1 libraries ask for
    assert granted["scope"].split() == [
        "read_targets",
        "read_ven_objects",
        "write_reports",
        "write_subscriptions",
        "write_vens",
    ]
    _client, secret = auth.issue_client(client_id="bl-1", role=Client.Role.BUSINESS_LOGIC)
    assert {"read_all", "read_bl", "write_programs"} <= set(token_31(http, "bl-1", secret)["scope"].split())
    assert http.get(f"{V31}/auth/server").json() == {"tokenURL": f"http://testserver{V31}/auth/token"}


def test_a_ven_registers_itself_and_its_resources_at_the_top_level(http, ven_31):
    a, b = ven_31("ven-a"), ven_31("ven-b")
    ven = post(http, f"{V31}/vens", {"objectType": "VEN_VEN_REQUEST", "venName": "ven-a"}, a)
    assert ven.status_code == 201, ven.content
    ven = ven.json()
    assert ven["clientID"] == "ven-a" and ven["objectType"] == "VEN" and "resources" not in ven
    resource = post(
        http, f"{V31}/resources", {"objectType": "VEN_RESOURCE_REQUEST", "resourceName": "r1", "venID": ven["id"]}, a
    )
    assert resource.status_code == 201, resource.content
    assert resource.json()["clientID"] == "ven-a" and resource.json()["venID"] == ven["id"]
    assert [r["resourceName"] for r in http.get(f"{V31}/resources", **a).json()] == ["r1"]
    # The same objects through 3.0.1: the VEN embeds its resource.
    assert [r["resourceName"] for r in http.get(f"{V301}/vens/{ven['id']}", **a).json()["resources"]] == ["r1"]
    # Another VEN sees none of it, and cannot add to it.
    post(http, f"{V31}/vens", {"venName": "ven-b"}, b)
    assert http.get(f"{V31}/resources", **b).json() == []
    assert_problem(http.get(f"{V31}/resources/{resource.json()['id']}", **b), 404)
    assert_problem(post(http, f"{V31}/resources", {"resourceName": "x", "venID": ven["id"]}, b), 404)
    assert_problem(post(http, f"{V31}/resources", {"resourceName": "x"}, a), 400, "venID")
    # 3.1 documents no 409 for a new VEN.
    assert_problem(post(http, f"{V31}/vens", {"venName": "again"}, a), 400, "venName")


def test_business_logic_registers_a_ven_for_a_client_by_its_client_id(http, bl, ven_31):
    a = ven_31("ven-a")
    ven = post(http, f"{V31}/vens", {"objectType": "BL_VEN_REQUEST", "venName": "a", "clientID": "ven-a"}, bl)
    assert ven.status_code == 201, ven.content
    assert Ven.objects.get(pk=ven.json()["id"]).client.client_id == "ven-a"
    assert [v["venName"] for v in http.get(f"{V31}/vens", **a).json()] == ["a"]
    assert_problem(post(http, f"{V31}/vens", {"venName": "b", "clientID": "nobody"}, bl), 400, "clientID")
    assert_problem(post(http, f"{V31}/vens", {"venName": "b"}, bl), 400, "clientID")  # 3.1's VEN has a client


def test_targets_are_strings_in_31_and_value_maps_in_301_over_the_same_events(http, bl, ven_31):
    a, b = ven_31("ven-a"), ven_31("ven-b")
    for name in ("ven-a", "ven-b"):
        post(http, f"{V31}/vens", {"venName": name}, a if name == "ven-a" else b)
    program = post(http, f"{V31}/programs", {"programName": "p", "targets": ["region-1"]}, bl).json()
    assert program["targets"] == ["region-1"]
    assert http.get(f"{V301}/programs/{program['id']}", **bl).json()["targets"] == [
        {"type": "TARGET", "values": ["region-1"]}
    ]
    interval = [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]
    for name, targets in (("for-a", ["VEN_NAME:ven-a"]), ("for-b", ["VEN_NAME:ven-b"]), ("for-all", None)):
        body = {"programID": program["id"], "eventName": name, "intervals": interval}
        if targets:
            body["targets"] = targets
        assert post(http, f"{V31}/events", body, bl).status_code == 201
    assert {e["eventName"] for e in http.get(f"{V31}/events", **a).json()} == {"for-a", "for-all"}
    for_a = next(e for e in http.get(f"{V301}/events", **a).json() if e["eventName"] == "for-a")
    assert for_a["targets"] == [{"type": "VEN_NAME", "values": ["ven-a"]}]
    found = http.get(f"{V31}/events", {"targets": "VEN_NAME:ven-b"}, **bl).json()
    assert [e["eventName"] for e in found] == ["for-b"]
    for_b = found[0]
    assert_problem(http.get(f"{V31}/events/{for_b['id']}", **a), 404)


def test_a_ven_does_not_set_the_targets_that_decide_what_it_reads(http, bl, ven_31):
    a = ven_31("ven-a")
    ven = post(http, f"{V31}/vens", {"venName": "ven-a", "targets": ["VEN_NAME:ven-b"]}, a).json()
    assert "targets" not in ven
    http.put(
        f"{V301}/vens/{ven['id']}",
        {"venName": "ven-a", "targets": [{"type": "VEN_NAME", "values": ["ven-b"]}]},
        content_type="application/json",
        **a,
    )
    program = post(http, f"{V31}/programs", {"programName": "p"}, bl).json()
    interval = [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]
    post(http, f"{V31}/events", {"programID": program["id"], "targets": ["VEN_NAME:ven-b"], "intervals": interval}, bl)
    assert http.get(f"{V31}/events", **a).json() == []
    # Business logic does set them.
    http.put(
        f"{V31}/vens/{ven['id']}",
        {"venName": "ven-a", "targets": ["VEN_NAME:ven-b"]},
        content_type="application/json",
        **bl,
    )
    assert len(http.get(f"{V31}/events", **a).json()) == 1


def test_reports_and_subscriptions_in_31_name_their_client_and_need_no_program(http, bl, ven_31):
    a = ven_31("ven-a")
    post(http, f"{V31}/vens", {"venName": "ven-a"}, a)
    program = post(http, f"{V31}/programs", {"programName": "p"}, bl).json()
    interval = [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]
    event = post(http, f"{V31}/events", {"programID": program["id"], "intervals": interval}, bl).json()
    report = post(
        http,
        f"{V31}/reports",
        {"eventID": event["id"], "clientName": "a", "resources": [{"resourceName": "r", "intervals": []}]},
        a,
    )
    assert report.status_code == 201, report.content
    assert report.json()["clientID"] == "ven-a" and "programID" not in report.json()
    assert http.get(f"{V301}/reports/{report.json()['id']}", **a).json()["programID"] == program["id"]
    subscription = post(
        http,
        f"{V31}/subscriptions",
        {
            "clientName": "a",
            "objectOperations": [
                {"objects": ["EVENT"], "operations": ["CREATE", "DELETE"], "callbackUrl": "https://x.example/h"}
            ],
        },
        a,
    )
    assert subscription.status_code == 201, subscription.content
    assert subscription.json()["clientID"] == "ven-a" and "programID" not in subscription.json()
    assert http.get(f"{V31}/notifiers", **a).json() == {"WEBHOOK": True}
    assert_problem(http.get(f"{V31}/notifiers/mqtt/topics/programs", **a), 404)
