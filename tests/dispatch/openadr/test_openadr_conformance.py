"""What the published OpenADR 3.0.1 definition says the VTN's answers look like, and which inputs it must take."""

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.reference.models import MeterKind, Reading
from dispatch.openadr import auth
from dispatch.openadr.models import Client, Report, Subscription
from enrollment.models import DeviceStatus
from tests.dispatch.openadr.test_openadr_errors import BASE, assert_problem, bl, get_token, http  # noqa: F401  (fixtures)
from tests.factories import GENERATOR, SiteFactory, active_device

pytestmark = pytest.mark.django_db


def nulls(value, path="") -> list[str]:
    """Where a JSON value holds a null, by path."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in ([f"{path}.{k}"] if v is None else nulls(v, f"{path}.{k}"))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
    return []


def post(http, path, body, headers):
    return http.post(f"{BASE}/{path}", body, content_type="application/json", **headers)


@pytest.fixture(autouse=True)
def callbacks_anywhere(settings):
    """Callback hosts need not resolve here (the check of public addresses has its own test)."""
    settings.DISPATCH_PUSH_ALLOW_PRIVATE = True


@pytest.fixture
def ven_client(http):
    """A VEN client at a site (its token and the client), optionally with a device at that site."""

    def make(client_id, site=None):
        site = site or SiteFactory()
        _client, secret = auth.issue_client(client_id=client_id, role=Client.Role.VEN, site=site)
        return {"HTTP_AUTHORIZATION": f"Bearer {get_token(http, client_id, secret)['access_token']}"}

    return make


def test_objects_leave_out_the_optional_fields_they_have_no_value_for(http, bl, ven_client):
    program = post(http, "programs", {"programName": "p"}, bl).json()
    event = post(
        http,
        "events",
        {"programID": program["id"], "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]},
        bl,
    ).json()
    assert "timeZoneOffset" not in program and "intervalPeriod" not in program and "intervalPeriod" not in event
    a = ven_client("ven-a")
    ven = post(http, "vens", {"venName": "ven-a"}, a).json()
    resource = post(http, f"vens/{ven['id']}/resources", {"resourceName": "r"}, a).json()
    subscription = post(
        http,
        "subscriptions",
        {
            "clientName": "a",
            "programID": program["id"],
            "objectOperations": [
                {"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": "https://x.example/h"}
            ],
        },
        a,
    ).json()
    report = post(
        http,
        "reports",
        {
            "programID": program["id"],
            "eventID": event["id"],
            "clientName": "a",
            "resources": [{"resourceName": "r", "intervalPeriod": {"start": "2026-07-01T00:00:00Z"}, "intervals": []}],
        },
        a,
    ).json()
    answers = [program, event, ven, resource, subscription, report]
    assert all(answer.get("objectType") for answer in answers), answers
    answers += [http.get(f"{BASE}/{kind}", **bl).json() for kind in ("programs", "events", "vens", "reports")]
    assert [nulls(answer) for answer in answers] == [[]] * len(answers)


def test_subscription_operations_are_the_definitions_words_and_http_verbs_are_accepted_for_them(http, bl, ven_client):
    program = post(http, "programs", {"programName": "p"}, bl).json()
    a = ven_client("ven-a")

    def subscribe(operations):
        return post(
            http,
            "subscriptions",
            {
                "clientName": "a",
                "programID": program["id"],
                "objectOperations": [
                    {
                        "objects": ["EVENT"],
                        "operations": operations,
                        "callbackUrl": "https://x.example/h",
                        "bearerToken": "mine",
                    }
                ],
            },
            a,
        )

    verbs = subscribe(["GET", "POST", "PUT", "DELETE"])
    assert verbs.status_code == 201
    assert verbs.json()["objectOperations"][0]["operations"] == ["READ", "CREATE", "UPDATE", "DELETE"]
    words = subscribe(["CREATE", "UPDATE"]).json()
    assert words["objectOperations"][0]["operations"] == ["CREATE", "UPDATE"]
    assert Subscription.objects.get(pk=words["id"]).object_operations[0]["operations"] == ["CREATE", "UPDATE"]
    assert_problem(subscribe(["PATCH"]), 400, "objectOperations[0].operations[0]")
    assert_problem(subscribe(["CREATE", {"not": "a word"}]), 400, "objectOperations[0].operations[1]")
    assert_problem(subscribe([["CREATE"]]), 400, "objectOperations[0].operations[0]")
    # Another client reads the subscription without its callback's secret: left out, not null.
    seen_by_bl = http.get(f"{BASE}/subscriptions/{words['id']}", **bl).json()
    assert "bearerToken" not in seen_by_bl["objectOperations"][0]


def test_problems_name_their_instance_by_an_absolute_uri(http, bl):
    body = assert_problem(http.get(f"{BASE}/programs/424242", **bl), 404)
    assert body["instance"] == f"http://testserver{BASE}/programs/424242"


def test_refusals_have_the_statuses_the_definition_documents(http, bl):
    # A body that is not JSON is a bad request (the definition documents no 415).
    form = http.post(f"{BASE}/programs", "programName=p", content_type="application/x-www-form-urlencoded", **bl)
    assert_problem(form, 400)
    # A program its events still refer to is not deleted: 400 (409 is documented for creates and updates only).
    program = post(http, "programs", {"programName": "p"}, bl).json()
    post(
        http,
        "events",
        {"programID": program["id"], "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]},
        bl,
    )
    assert_problem(http.delete(f"{BASE}/programs/{program['id']}", **bl), 400)


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("programs", "targetType"),
        ("events", "targetValues"),
        ("vens", "venName"),
        ("reports", "clientName"),
        ("subscriptions", "clientName"),
    ],
)
def test_a_nul_byte_in_a_query_parameter_is_a_problem_naming_it(http, bl, path, param):
    assert_problem(http.get(f"{BASE}/{path}", {param: "a\x00b"}, **bl), 400, param)


def test_a_lone_surrogate_or_a_nul_byte_in_a_json_string_is_a_problem_naming_it(http, bl):
    raw = '{"venName": "v", "attributes": [{"type": "A", "values": ["\\ud800"]}]}'
    assert_problem(
        http.post(f"{BASE}/vens", raw, content_type="application/json", **bl), 400, "attributes[0].values[0]"
    )
    raw = '{"venName": "v\\u0000"}'
    assert_problem(http.post(f"{BASE}/vens", raw, content_type="application/json", **bl), 400, "venName")
    assert http.get(f"{BASE}/vens", **bl).json() == []


def test_a_skip_beyond_64_bits_is_a_problem_naming_it(http, bl):
    assert_problem(http.get(f"{BASE}/events", {"skip": str(2**64 + 1)}, **bl), 400, "skip")


def test_a_duration_of_billions_of_minutes_is_a_problem_naming_it(http, bl):
    program = {"programName": "p", "timeZoneOffset": "PT9999999999999M"}
    assert_problem(post(http, "programs", program, bl), 400, "timeZoneOffset")
    program = post(http, "programs", {"programName": "p"}, bl).json()
    event = {
        "programID": program["id"],
        "intervals": [
            {
                "id": 0,
                "intervalPeriod": {"start": "2026-07-01T00:00:00Z", "duration": "P99999999999D"},
                "payloads": [{"type": "SIMPLE", "values": [1]}],
            }
        ],
    }
    assert_problem(post(http, "events", event, bl), 400, "intervals[0].intervalPeriod.duration")


def test_unknown_paths_under_the_vtn_are_problem_objects(http, bl):
    for path in ("nowhere", "programs/1/extra", "vens/1/resources/2/more"):
        body = assert_problem(http.get(f"{BASE}/{path}", **bl), 404)
        assert body["type"] == "urn:vpp:problem:not_found"


def test_target_values_without_a_target_type_match_any_type(http, bl):
    program = post(http, "programs", {"programName": "p"}, bl).json()
    for name, target in (("e1", {"type": "GROUP", "values": ["g1"]}), ("e2", {"type": "ZONE", "values": ["g1"]})):
        post(
            http,
            "events",
            {
                "programID": program["id"],
                "eventName": name,
                "targets": [target],
                "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
            },
            bl,
        )
    post(
        http,
        "events",
        {
            "programID": program["id"],
            "eventName": "other",
            "targets": [{"type": "GROUP", "values": ["g2"]}],
            "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
        },
        bl,
    )
    found = http.get(f"{BASE}/events", {"targetValues": "g1"}, **bl)
    assert found.status_code == 200 and [e["eventName"] for e in found.json()] == ["e1", "e2"]


def test_a_ven_asking_for_read_all_gets_its_roles_scopes_and_can_register(http):
    _client, secret = auth.issue_client(client_id="ven-lib", role=Client.Role.VEN, site=SiteFactory())
    token = get_token(http, "ven-lib", secret, scope="read_all")
    assert set(token["scope"].split()) == {"read_all", "write_reports", "write_subscriptions", "write_vens"}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token['access_token']}"}
    assert post(http, "vens", {"venName": "ven-lib"}, headers).status_code == 201


@pytest.fixture
def reporting_ven(http, bl, ven_client, program):
    """A VEN whose resource is a generator, and a program for its events."""
    device = active_device(program, **GENERATOR, serial="GEN-1")
    headers = ven_client("ven-a", site=device.site)
    ven = post(http, "vens", {"venName": "ven-a"}, headers).json()
    post(http, f"vens/{ven['id']}/resources", {"resourceName": "GEN-1"}, headers)
    oadr_program = post(http, "programs", {"programName": "p"}, bl).json()
    return device, headers, oadr_program


def test_a_report_without_any_interval_period_takes_the_time_of_receipt(http, bl, reporting_ven):
    device, headers, program = reporting_ven
    event = post(
        http,
        "events",
        {"programID": program["id"], "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]},
        bl,
    ).json()
    before = datetime.now(UTC)
    report = {
        "programID": program["id"],
        "eventID": event["id"],
        "clientName": "ven-a",
        "resources": [
            {
                "resourceName": "GEN-1",
                "intervals": [{"id": 0, "payloads": [{"type": "OPERATING_STATE", "values": ["ON"]}]}],
            }
        ],
    }
    answer = post(http, "reports", report, headers)
    assert answer.status_code == 201, answer.content
    assert Report.objects.get(pk=answer.json()["id"]).period_from == Report.PeriodFrom.RECEIPT
    status = DeviceStatus.objects.get(device=device)
    assert status.mode == "ON" and status.last_seen_at >= before - timedelta(seconds=1)


def test_a_report_without_interval_periods_takes_its_events(http, bl, reporting_ven):
    device, headers, program = reporting_ven
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    event = post(
        http,
        "events",
        {
            "programID": program["id"],
            "intervalPeriod": {"start": start.isoformat(), "duration": "PT1H"},
            "intervals": [
                {"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]},
                {"id": 1, "payloads": [{"type": "SIMPLE", "values": [1]}]},
            ],
        },
        bl,
    ).json()
    report = {
        "programID": program["id"],
        "eventID": event["id"],
        "clientName": "ven-a",
        "resources": [
            {
                "resourceName": "GEN-1",
                "intervals": [
                    {"id": 0, "payloads": [{"type": "USAGE", "values": [2.5]}]},
                    {"id": 1, "payloads": [{"type": "USAGE", "values": [1.5]}]},
                ],
            }
        ],
    }
    answer = post(http, "reports", report, headers)
    assert answer.status_code == 201, answer.content
    assert Report.objects.get(pk=answer.json()["id"]).period_from == Report.PeriodFrom.EVENT
    stored = {r.start: float(r.kwh) for r in Reading.objects.filter(meter_kind=MeterKind.DEVICE, meter_id=device.pk)}
    assert stored == {start: 2.5, start + timedelta(hours=1): 1.5}
