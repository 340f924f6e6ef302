"""The VTN's refusals: OAuth errors per RFC 6749, problem objects with the right status, scopes, isolation."""

import base64
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client as HttpClient
from django.utils import timezone

from dispatch.openadr import auth
from dispatch.openadr.models import AccessToken, Client, Event, Program, Report, Ven
from tests.factories import SiteFactory

BASE = "/openadr3/3.0.1"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def get_token(http, client_id, secret, **form) -> dict:
    response = http.post(
        f"{BASE}/auth/token", {"grant_type": "client_credentials", **form}, HTTP_AUTHORIZATION=basic(client_id, secret)
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def http():
    return HttpClient()


@pytest.fixture
def bl(http, db):
    _client, secret = auth.issue_client(client_id="bl", role=Client.Role.BUSINESS_LOGIC)
    return {"HTTP_AUTHORIZATION": f"Bearer {get_token(http, 'bl', secret)['access_token']}"}


@pytest.fixture
def ven_headers(http, db):
    def make(client_id):
        _client, secret = auth.issue_client(client_id=client_id, role=Client.Role.VEN, site=SiteFactory())
        return {"HTTP_AUTHORIZATION": f"Bearer {get_token(http, client_id, secret)['access_token']}"}

    return make


def assert_problem(response, status: int, field: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) >= PROBLEM_FIELDS and body["status"] == status
    assert body["type"].startswith("urn:") and body["instance"] == response.wsgi_request.build_absolute_uri(
        response.wsgi_request.path
    )
    if field is not None:
        assert field in [e["field"] for e in body["errors"]] and body["detail"].startswith(field)
    return body


@pytest.mark.django_db
def test_the_token_endpoint_answers_rfc_6749_errors(http):
    _client, secret = auth.issue_client(client_id="ven-1", role=Client.Role.VEN, site=SiteFactory())
    wrong = http.post(
        f"{BASE}/auth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic("ven-1", secret + "x")
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client" and "WWW-Authenticate" in wrong
    grant = http.post(f"{BASE}/auth/token", {"grant_type": "password"}, HTTP_AUTHORIZATION=basic("ven-1", secret))
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    missing = http.post(f"{BASE}/auth/token", {"client_id": "ven-1", "client_secret": secret})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    scope = http.post(
        f"{BASE}/auth/token",
        {"grant_type": "client_credentials", "scope": "write_events"},
        HTTP_AUTHORIZATION=basic("ven-1", secret),
    )
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    # Credentials in the form work too; the token carries the role's scopes and says so.
    ok = http.post(
        f"{BASE}/auth/token",
        {"grant_type": "client_credentials", "client_id": "ven-1", "client_secret": secret, "scope": "read_all"},
    )
    assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer"
    assert ok.json()["scope"] == "read_all write_reports write_subscriptions write_vens"
    assert ok.json()["expires_in"] == 3600 and "no-store" in ok["Cache-Control"]
    assert not AccessToken.objects.filter(digest=ok.json()["access_token"]).exists()  # stored hashed
    # A token without the scope an operation needs is refused it.
    AccessToken.objects.update(scopes=["read_all"])
    read_only = {"HTTP_AUTHORIZATION": f"Bearer {ok.json()['access_token']}"}
    assert_problem(http.post(f"{BASE}/vens", {"venName": "v"}, content_type="application/json", **read_only), 403)


@pytest.mark.django_db
def test_no_expired_or_revoked_token_gets_in(http):
    assert_problem(http.get(f"{BASE}/programs"), 401)
    assert_problem(http.get(f"{BASE}/programs", HTTP_AUTHORIZATION="Bearer op_0123456789abcdef_nope"), 401)
    _client, secret = auth.issue_client(client_id="bl-2", role=Client.Role.BUSINESS_LOGIC)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {get_token(http, 'bl-2', secret)['access_token']}"}
    assert http.get(f"{BASE}/programs", **headers).status_code == 200
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_problem(http.get(f"{BASE}/programs", **headers), 401)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {get_token(http, 'bl-2', secret)['access_token']}"}
    call_command("openadr_client", "bl-2", "--revoke")
    assert_problem(http.get(f"{BASE}/programs", **headers), 401)
    again = http.post(
        f"{BASE}/auth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic("bl-2", secret)
    )
    assert again.status_code == 401


@pytest.mark.django_db
def test_invalid_objects_are_problems_naming_the_field_and_change_nothing(http, bl):
    body = assert_problem(
        http.post(f"{BASE}/programs", {"programLongName": "x"}, content_type="application/json", **bl),
        400,
        "programName",
    )
    assert body["errors"][0]["code"] == "required"
    program = http.post(f"{BASE}/programs", {"programName": "p"}, content_type="application/json", **bl).json()
    assert_problem(
        http.post(f"{BASE}/programs", {"programName": "p"}, content_type="application/json", **bl), 409, "programName"
    )
    bad_event = {
        "programID": program["id"],
        "intervals": [
            {"id": 0, "intervalPeriod": {"start": "2026-07-15T14:00:00", "duration": "an hour"}, "payloads": []}
        ],
    }
    body = assert_problem(http.post(f"{BASE}/events", bad_event, content_type="application/json", **bl), 400)
    assert {e["field"] for e in body["errors"]} == {
        "intervals[0].intervalPeriod.start",
        "intervals[0].intervalPeriod.duration",
        "intervals[0].payloads",
    }
    unknown = {"programID": "999999", "intervals": []}
    assert_problem(http.post(f"{BASE}/events", unknown, content_type="application/json", **bl), 400, "programID")
    assert not Event.objects.exists()
    assert_problem(http.get(f"{BASE}/events/424242", **bl), 404)
    assert_problem(http.get(f"{BASE}/programs?limit=51", **bl), 400, "limit")
    assert_problem(http.get(f"{BASE}/programs?skip=-1", **bl), 400, "skip")
    not_json = http.post(f"{BASE}/programs", "programName=p", content_type="application/x-www-form-urlencoded", **bl)
    assert_problem(not_json, 400)
    # A program with events is not deleted.
    event = {
        "programID": program["id"],
        "intervals": [
            {
                "id": 0,
                "intervalPeriod": {"start": "2026-07-15T14:00:00-04:00", "duration": "PT1H"},
                "payloads": [{"type": "SIMPLE", "values": [1]}],
            }
        ],
    }
    assert http.post(f"{BASE}/events", event, content_type="application/json", **bl).status_code == 201
    assert_problem(http.delete(f"{BASE}/programs/{program['id']}", **bl), 400)
    assert Program.objects.count() == 1


@pytest.mark.django_db
def test_paging_and_target_filters(http, bl):
    program = http.post(f"{BASE}/programs", {"programName": "p"}, content_type="application/json", **bl).json()
    for n in range(7):
        http.post(
            f"{BASE}/events",
            {
                "programID": program["id"],
                "eventName": f"e{n}",
                "targets": [{"type": "GROUP", "values": [f"g{n % 3}"]}],
                "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [n]}]}],
            },
            content_type="application/json",
            **bl,
        )
    names = [e["eventName"] for e in http.get(f"{BASE}/events?skip=2&limit=3", **bl).json()]
    assert names == ["e2", "e3", "e4"]
    grouped = http.get(f"{BASE}/events?targetType=GROUP&targetValues=g1&targetValues=g2", **bl).json()
    assert [e["eventName"] for e in grouped] == ["e1", "e2", "e4", "e5"]
    assert all(e["objectType"] == "EVENT" and e["createdDateTime"].endswith("Z") for e in grouped)


@pytest.mark.django_db
def test_roles_and_isolation_between_vens(http, bl, ven_headers):
    a, b = ven_headers("ven-a"), ven_headers("ven-b")
    assert_problem(http.post(f"{BASE}/programs", {"programName": "mine"}, content_type="application/json", **a), 403)
    assert_problem(
        http.post(f"{BASE}/events", {"programID": "1", "intervals": []}, content_type="application/json", **a), 403
    )
    ven_a = http.post(f"{BASE}/vens", {"venName": "ven-a"}, content_type="application/json", **a).json()
    assert_problem(
        http.post(f"{BASE}/vens", {"venName": "second"}, content_type="application/json", **a), 409, "venName"
    )
    assert_problem(
        http.post(f"{BASE}/vens", {"venName": "ven-a"}, content_type="application/json", **b), 409, "venName"
    )
    assert http.post(f"{BASE}/vens", {"venName": "ven-b"}, content_type="application/json", **b).status_code == 201
    assert Ven.objects.get(ven_name="ven-a").site_id == Client.objects.get(client_id="ven-a").site_id
    # B cannot see, change or add to A's VEN.
    assert_problem(http.get(f"{BASE}/vens/{ven_a['id']}", **b), 404)
    assert_problem(
        http.put(f"{BASE}/vens/{ven_a['id']}", {"venName": "taken"}, content_type="application/json", **b), 404
    )
    assert_problem(
        http.post(f"{BASE}/vens/{ven_a['id']}/resources", {"resourceName": "r"}, content_type="application/json", **b),
        404,
    )
    # A VEN cannot report on an event it is not targeted by.
    program = http.post(f"{BASE}/programs", {"programName": "p"}, content_type="application/json", **bl).json()
    for_b = http.post(
        f"{BASE}/events",
        {
            "programID": program["id"],
            "targets": [{"type": "VEN_NAME", "values": ["ven-b"]}],
            "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
        },
        content_type="application/json",
        **bl,
    ).json()
    report = {
        "programID": program["id"],
        "eventID": for_b["id"],
        "clientName": "ven-a",
        "resources": [{"resourceName": "r", "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [1]}]}]}],
    }
    assert_problem(http.post(f"{BASE}/reports", report, content_type="application/json", **a), 400, "eventID")
    assert not Report.objects.exists()


@pytest.mark.django_db
def test_subscription_callbacks_must_be_public_https(http, ven_headers, settings):
    settings.DISPATCH_PUSH_ALLOW_HTTP = False
    a = ven_headers("ven-a")
    program = Program.objects.create(program_name="p")
    body = {
        "clientName": "a",
        "programID": str(program.pk),
        "objectOperations": [{"objects": ["EVENT"], "operations": ["POST"], "callbackUrl": "http://example.com/hook"}],
    }
    assert_problem(
        http.post(f"{BASE}/subscriptions", body, content_type="application/json", **a),
        400,
        "objectOperations[0].callbackUrl",
    )
    body["objectOperations"][0]["callbackUrl"] = "https://127.0.0.1/hook"
    assert_problem(
        http.post(f"{BASE}/subscriptions", body, content_type="application/json", **a),
        400,
        "objectOperations[0].callbackUrl",
    )
    body["objectOperations"][0]["objects"] = ["EVERYTHING"]
    assert_problem(
        http.post(f"{BASE}/subscriptions", body, content_type="application/json", **a),
        400,
        "objectOperations[0].objects[0]",
    )


@pytest.mark.django_db
def test_the_client_command_needs_a_site_for_a_ven_and_shows_the_secret_once(capsys):
    with pytest.raises(CommandError, match="site"):
        call_command("openadr_client", "ven-x", "--role", "ven")
    site = SiteFactory()
    call_command("openadr_client", "ven-x", "--role", "ven", "--site", str(site.pk))
    out = capsys.readouterr().out
    secret = out.split("client_secret=")[1].split()[0]
    assert Client.objects.get(client_id="ven-x").matches(secret) and secret not in Client.objects.get().digest
    with pytest.raises(CommandError, match="exists"):
        call_command("openadr_client", "ven-x", "--role", "ven", "--site", str(site.pk))


def test_discovery_points_at_the_token_endpoint(http):
    assert http.get(f"{BASE}/auth/server").json() == {"tokenURL": f"http://testserver{BASE}/auth/token"}


@pytest.mark.django_db
def test_a_level_only_resource_gets_simple_levels_and_a_dst_day_keeps_its_true_interval_lengths(http, make_resource):
    """A device that takes only levels is sent SIMPLE 1-3 by its share of rated kW; on the autumn DST day the
    event's hour-long intervals stay an hour long in absolute time."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from dispatch import services
    from dispatch.openadr import mapping
    from dispatch.openadr.models import Resource
    from tests.dispatch.conftest import online

    resource = make_resource(generators=2)
    first, second = [m.device for m in resource.memberships.order_by("device_id")]
    online(first, second)
    ven = Ven.objects.create(ven_name="levels", site=first.site)
    Resource.objects.create(ven=ven, resource_name="gen", device=first, signal=Resource.Signal.SIMPLE)
    new_york = ZoneInfo("America/New_York")
    start = datetime(2026, 11, 1, 0, 30, tzinfo=new_york)  # 00:30 EDT; 01:30 comes twice; ends 02:30 EST
    now = start - timedelta(minutes=5)
    end = datetime(2026, 11, 1, 2, 30, tzinfo=new_york)  # three hours later, not 03:30 (wall-clock arithmetic)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=start,
        end=end,
        target_kw=60,
        by="tester",
        over_commit_pct=0,
        now=now,
    )
    for _, round_number, low, high in services.advance(event_id=event.pk, now=now):
        services.issue_commands(
            event_id=event.pk, round_number=round_number, first_device=low, last_device=high, now=now
        )
    assert mapping.sync_commands(event_id=event.pk, first_device=first.pk, last_device=second.pk) == 1
    made = Event.objects.get(dispatch_event=event)
    kw = [float(v) for v in event.allocations.get(device=first).kw]
    levels = [i["payloads"][0]["values"][0] for i in made.body["intervals"]]
    assert levels == [0 if k == 0 else min(3, -(-3 * k // 50)) for k in kw] and set(levels) <= {0, 1, 2, 3}
    assert [i["payloads"][0]["type"] for i in made.body["intervals"]] == ["SIMPLE"] * 3
    assert [i["intervalPeriod"]["duration"] for i in made.body["intervals"]] == ["PT1H"] * 3
    assert [i["intervalPeriod"]["start"] for i in made.body["intervals"]] == [
        "2026-11-01T04:30:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:30:00Z",
    ]
    # Nothing changed: syncing again writes nothing.
    assert mapping.sync_commands(event_id=event.pk, first_device=first.pk, last_device=second.pk) == 0


@pytest.mark.django_db
def test_operators_issue_and_revoke_clients_in_the_admin(browser):
    response = browser.post(
        "/admin/openadr/client/add/", {"client_id": "utility-dr", "role": "bl", "label": "Utility DRMS"}, follow=True
    )
    shown = [str(m) for m in response.context["messages"] if "Client secret" in str(m)]
    assert len(shown) == 1
    secret = shown[0].rsplit(": ", 1)[1]
    client = Client.objects.get(client_id="utility-dr")
    assert client.matches(secret) and client.label == "Utility DRMS"
    refused = browser.post("/admin/openadr/client/add/", {"client_id": "ven-no-site", "role": "ven"})
    assert refused.status_code == 200 and not Client.objects.filter(client_id="ven-no-site").exists()
    browser.post("/admin/openadr/client/", {"action": "revoke", "_selected_action": [client.pk]})
    client.refresh_from_db()
    assert client.revoked_at is not None


def test_an_id_of_non_ascii_digits_is_not_found(http, bl):
    assert_problem(http.get(f"{BASE}/vens/\u00b3/resources", **bl), 404)
    assert_problem(http.get(f"{BASE}/programs/\u00b2\u00b3", **bl), 404)


def test_a_nul_character_in_a_filter_or_a_body_is_a_problem_naming_it(http, bl):
    refused = assert_problem(http.get(f"{BASE}/events", {"targetType": "VEN_NAME", "targetValues": "a\x00"}, **bl), 400)
    assert [e["field"] for e in refused["errors"]] == ["targetValues"]
    assert_problem(http.get(f"{BASE}/vens", {"venName": "\x00"}, **bl), 400, "venName")
    body = {"programName": "p", "programLongName": "long\x00name"}
    assert_problem(http.post(f"{BASE}/programs", body, content_type="application/json", **bl), 400, "programLongName")
    assert not Program.objects.exists()


def test_a_skip_beyond_an_integer_is_a_problem_naming_it(http, bl):
    assert_problem(http.get(f"{BASE}/vens", {"skip": str(2**63)}, **bl), 400, "skip")
    assert http.get(f"{BASE}/vens", {"skip": str(2**31 - 1)}, **bl).json() == []
