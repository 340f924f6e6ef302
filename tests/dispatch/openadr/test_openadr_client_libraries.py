"""Two independent OpenADR 3 client libraries against both base paths, over real HTTP with a real worker.

openadr3-client (ElaadNL; speaks 3.0.1 and 3.1) registers VENs and their resources, reads each
VEN's own events and reports; python-oa3 (`openadr3` on PyPI; speaks 3.1's words) discovers the
token endpoint, subscribes a VEN to its events and reads the webhook notifications it gets. Every
answer is checked against the published definition of its version (conftest.py), and every
notification against the version's notification schema.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openadr3
import pytest
import requests
from openadr3_client._models.common.interval import Interval
from openadr3_client._models.common.interval_period import IntervalPeriod
from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory
from openadr3_client.oadr301.models.event.event import NewEvent as NewEvent301
from openadr3_client.oadr301.models.event.event_payload import EventPayload as EventPayload301
from openadr3_client.oadr301.models.event.event_payload import EventPayloadType as EventPayloadType301
from openadr3_client.oadr301.models.program.program import NewProgram as NewProgram301
from openadr3_client.oadr301.models.report.report import NewReport as NewReport301
from openadr3_client.oadr301.models.report.report import ReportResource as ReportResource301
from openadr3_client.oadr301.models.report.report_payload import ReportPayload as ReportPayload301
from openadr3_client.oadr301.models.report.report_payload import ReportPayloadType as ReportPayloadType301
from openadr3_client.oadr301.models.target import Target
from openadr3_client.oadr301.models.ven.resource import NewResource as NewResource301
from openadr3_client.oadr301.models.ven.ven import NewVen as NewVen301
from openadr3_client.oadr310.models.event.event import NewEvent as NewEvent310
from openadr3_client.oadr310.models.event.event_payload import EventPayload as EventPayload310
from openadr3_client.oadr310.models.event.event_payload import EventPayloadType as EventPayloadType310
from openadr3_client.oadr310.models.program.program import NewProgram as NewProgram310
from openadr3_client.oadr310.models.report.report import NewReport as NewReport310
from openadr3_client.oadr310.models.report.report import ReportResource as ReportResource310
from openadr3_client.oadr310.models.report.report_payload import ReportPayload as ReportPayload310
from openadr3_client.oadr310.models.report.report_payload import ReportPayloadType as ReportPayloadType310
from openadr3_client.oadr310.models.resource.resource import NewResourceVenRequest
from openadr3_client.oadr310.models.ven.ven import NewVenVenRequest
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory
from openadr3_client.version import OADRVersion

from aggregator.reference.models import MeterKind, Reading
from dispatch.openadr import auth
from dispatch.openadr.models import Client
from tests.dispatch.openadr.test_openadr_dispatch import webhook  # noqa: F401  (fixture)
from tests.dispatch.openadr.traffic import notification_violations
from tests.dispatch.test_dispatch_worker import celery_worker, dispatch_queue, wait_for  # noqa: F401  (fixtures)
from tests.factories import GENERATOR, SiteFactory, active_device

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
VERSIONS = {"3.0.1": OADRVersion.OADR_301, "3.1.0": OADRVersion.OADR_310}


@pytest.fixture(autouse=True)
def insecure_oauth_transport(monkeypatch):
    """The live test server speaks plain HTTP; oauthlib refuses that unless told it is a test."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def elaad(vtn: str, version: str, *, role: str, client_id: str, site=None):
    """openadr3-client's business-logic or VEN client for that base path, with new credentials."""
    client, secret = auth.issue_client(client_id=client_id, role=role, site=site)
    factory = (
        BusinessLogicHttpClientFactory.create_http_bl_client
        if role == Client.Role.BUSINESS_LOGIC
        else VirtualEndNodeHttpClientFactory.create_http_ven_client
    )
    return factory(
        vtn_base_url=vtn,
        client_id=client.client_id,
        client_secret=secret,
        token_url=f"{vtn}/auth/token",
        version=VERSIONS[version],
        allow_insecure_http=True,
    )


def hour(start: datetime, payload) -> Interval:
    return Interval(id=0, interval_period=IntervalPeriod(start=start, duration=timedelta(hours=1)), payloads=(payload,))


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_a_ven_library_registers_reads_only_its_events_and_reports_telemetry(
    version, live_server, program, vtn_traffic
):
    vtn = f"{live_server.url}/openadr3/{version}"
    device = active_device(program, **GENERATOR, serial="GEN-A-1")
    bl = elaad(vtn, version, role=Client.Role.BUSINESS_LOGIC, client_id="utility-bl")
    ven_a = elaad(vtn, version, role=Client.Role.VEN, client_id="ven-a", site=device.site)
    ven_b = elaad(vtn, version, role=Client.Role.VEN, client_id="ven-b", site=SiteFactory(market=program.market))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)

    if version == "3.0.1":
        created = bl.programs.create_program(NewProgram301(program_name="summer-peak"))
        registered = ven_a.vens.create_ven(NewVen301(ven_name="ven-a"))
        ven_a.vens.create_ven_resource(registered.id, NewResource301(resource_name="GEN-A-1", venID=registered.id))
        ven_b.vens.create_ven(NewVen301(ven_name="ven-b"))
        payload = EventPayload301(type=EventPayloadType301.SIMPLE, values=(1.0,))
        for name, targets in (
            ("for-a", (Target(type="VEN_NAME", values=("ven-a",)),)),
            ("for-b", (Target(type="VEN_NAME", values=("ven-b",)),)),
            ("for-all", None),
        ):
            bl.events.create_event(
                NewEvent301(programID=created.id, event_name=name, targets=targets, intervals=(hour(start, payload),))
            )
    else:
        created = bl.programs.create_program(NewProgram310(program_name="summer-peak"))
        registered = ven_a.vens.create_ven(NewVenVenRequest(ven_name="ven-a"))
        assert registered.client_id == "ven-a"
        resource = ven_a.resources.create_resource(NewResourceVenRequest(resource_name="GEN-A-1", venID=registered.id))
        assert resource.ven_id == registered.id
        ven_b.vens.create_ven(NewVenVenRequest(ven_name="ven-b"))
        payload = EventPayload310(type=EventPayloadType310.SIMPLE, values=(1.0,))
        for name, targets in (("for-a", ("VEN_NAME:ven-a",)), ("for-b", ("VEN_NAME:ven-b",)), ("for-all", None)):
            bl.events.create_event(
                NewEvent310(programID=created.id, event_name=name, targets=targets, intervals=(hour(start, payload),))
            )

    seen_by_a = ven_a.events.get_events(target=None, pagination=None, program_id=None)
    assert {e.event_name for e in seen_by_a} == {"for-a", "for-all"}
    assert {e.event_name for e in ven_b.events.get_events(target=None, pagination=None, program_id=None)} == {
        "for-b",
        "for-all",
    }
    for_b = next(
        e for e in bl.events.get_events(target=None, pagination=None, program_id=None) if e.event_name == "for-b"
    )
    with pytest.raises(requests.HTTPError) as hidden:
        ven_a.events.get_event_by_id(for_b.id)
    assert hidden.value.response.status_code == 404

    for_a = next(e for e in seen_by_a if e.event_name == "for-a")
    period = IntervalPeriod(start=start, duration=timedelta(hours=1))
    if version == "3.0.1":
        usage = ReportPayload301(type=ReportPayloadType301.USAGE, values=(12.5,))
        report = NewReport301(
            programID=created.id,
            eventID=for_a.id,
            client_name="ven-a",
            resources=(
                ReportResource301(
                    resource_name="GEN-A-1", interval_period=period, intervals=(Interval(id=0, payloads=(usage,)),)
                ),
            ),
        )
    else:
        usage = ReportPayload310(type=ReportPayloadType310.USAGE, values=(12.5,))
        report = NewReport310(
            eventID=for_a.id,
            client_name="ven-a",
            resources=(
                ReportResource310(
                    resource_name="GEN-A-1", interval_period=period, intervals=(Interval(id=0, payloads=(usage,)),)
                ),
            ),
        )
    assert ven_a.reports.create_report(report).id
    stored = {r.start: r.kwh for r in Reading.objects.filter(meter_kind=MeterKind.DEVICE, meter_id=device.pk)}
    assert stored == {start: Decimal("12.500000")}
    assert ven_b.reports.get_reports(pagination=None, program_id=None, event_id=None, client_name=None) == ()
    assert {e.version for e in vtn_traffic.exchanges} == {version}  # what was checked against the definition


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_a_ven_library_subscribes_and_hears_of_its_own_events_only(
    version, live_server, celery_worker, webhook, settings, vtn_traffic
):
    settings.DISPATCH_PUSH_ALLOW_PRIVATE = True  # the webhooks listen on this machine
    vtn = f"{live_server.url}/openadr3/{version}"
    bl_client, bl_secret = auth.issue_client(client_id="utility-bl", role=Client.Role.BUSINESS_LOGIC)
    bl = openadr3.create_bl_client(vtn, openadr3.fetch_token(vtn, bl_client.client_id, bl_secret))
    program = bl.create_program({"programName": "summer-peak"})
    assert program.status_code == 201, program.text
    program_id = program.json()["id"]

    hooks = {}
    for name in ("ven-a", "ven-b"):
        client, secret = auth.issue_client(client_id=name, role=Client.Role.VEN, site=SiteFactory())
        ven = openadr3.create_ven_client(vtn, openadr3.fetch_token(vtn, client.client_id, secret))  # discovery
        assert ven.create_ven({"objectType": "VEN_VEN_REQUEST", "venName": name}).status_code == 201
        url, received = webhook()
        hooks[name] = received
        subscribed = ven.create_subscription(
            {
                "clientName": name,
                "programID": program_id,
                "objectOperations": [
                    {
                        "objects": ["EVENT"],
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                        "callbackUrl": url,
                        "bearerToken": f"{name}-secret",
                    }
                ],
            }
        )
        assert subscribed.status_code == 201, subscribed.text
        assert ven.subscription(subscribed.json()["id"]).object_operations[0].operations == [
            "CREATE",
            "UPDATE",
            "DELETE",
        ]

    targets = ["VEN_NAME:ven-a"] if version == "3.1.0" else [{"type": "VEN_NAME", "values": ["ven-a"]}]
    event = bl.create_event(
        {
            "programID": program_id,
            "eventName": "for-a",
            "targets": targets,
            "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
        }
    )
    assert event.status_code == 201, event.text
    assert bl.delete_event(event.json()["id"]).status_code == 200

    wait_for(lambda: len(hooks["ven-a"]) >= 2, timeout=20, what="ven-a's CREATE and DELETE notifications")
    created_words, deleted_words = ("POST", "DELETE") if version == "3.0.1" else ("CREATE", "DELETE")
    assert [n["operation"] for _, n in hooks["ven-a"]] == [created_words, deleted_words]
    for authorization, notification in hooks["ven-a"]:
        assert authorization == "Bearer ven-a-secret"
        assert notification_violations(notification, version) == []
        assert notification["object"]["eventName"] == "for-a"
    if version == "3.1.0":
        coerced = openadr3.coerce_notification(hooks["ven-a"][0][1])
        assert coerced.object_type == "EVENT" and coerced.object.targets == ["VEN_NAME:ven-a"]
    assert hooks["ven-b"] == []  # another VEN's subscription hears nothing of ven-a's event
    assert vtn_traffic.exchanges
