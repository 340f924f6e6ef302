"""A platform dispatch event reaches a VEN through the VTN: real Celery worker, real HTTP, openadr3-client.

The worker fans the event out; the chunk holding the VEN's device writes the VEN's OpenADR
event (its allocation per interval) and notifies the VEN's subscription webhook; the VEN
reads it with the client library, reports what it delivered, and a cancellation deletes it.
"""

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from openadr3_client._models.common.interval import Interval
from openadr3_client._models.common.interval_period import IntervalPeriod
from openadr3_client.oadr301.models.program.program import NewProgram
from openadr3_client.oadr301.models.report.report import NewReport, ReportResource
from openadr3_client.oadr301.models.report.report_payload import ReportPayload
from openadr3_client.oadr301.models.ven.resource import NewResource
from openadr3_client.oadr301.models.ven.ven import NewVen
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory
from openadr3_client.version import OADRVersion

from dispatch import services
from dispatch.models import Allocation, DeliveryReport, DeviceCommand
from dispatch.openadr import auth
from dispatch.openadr.models import Client, Program
from tests.dispatch.conftest import online
from tests.dispatch.openadr.test_openadr_conformance import nulls
from tests.dispatch.openadr.test_openadr_vtn import bl_client
from tests.dispatch.test_dispatch_worker import celery_worker, dispatch_queue, wait_for  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def insecure_oauth_transport(monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def webhook():
    """Subscribers' callback endpoints on this machine: each records its notifications with their Authorization header."""
    servers = []

    def start():
        received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.headers.get("Authorization"), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/openadr", received

    yield start
    for server in servers:
        server.shutdown()


def token(vtn: str, client_id: str, secret: str) -> str:
    answer = requests.post(
        f"{vtn}/auth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=5
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def test_a_dispatch_event_reaches_its_ven_which_reports_delivery_and_hears_the_cancellation(
    live_server, make_resource, celery_worker, webhook, settings
):
    settings.DISPATCH_PUSH_ALLOW_PRIVATE = True  # the webhook listens on this machine
    vtn = f"{live_server.url}/openadr3/3.0.1"
    resource = make_resource(generators=2)
    mine, other = [m.device for m in resource.memberships.order_by("device_id")]
    online(mine, other)

    bl = bl_client(vtn)
    program = bl.programs.create_program(NewProgram(program_name="pjm-capacity"))
    Program.objects.filter(pk=program.id).update(platform_program=resource.program)  # the operator maps it (admin)

    _, secret = auth.issue_client(client_id="ven-home-1", role=Client.Role.VEN, site=mine.site)
    ven = VirtualEndNodeHttpClientFactory.create_http_ven_client(
        vtn_base_url=vtn,
        client_id="ven-home-1",
        client_secret=secret,
        token_url=f"{vtn}/auth/token",
        version=OADRVersion.OADR_301,
    )
    registered = ven.vens.create_ven(NewVen(ven_name="home-1"))
    ven.vens.create_ven_resource(registered.id, NewResource(resource_name=mine.serial, venID=registered.id))
    _, stranger_secret = auth.issue_client(client_id="ven-elsewhere", role=Client.Role.VEN, site=other.site)
    stranger = VirtualEndNodeHttpClientFactory.create_http_ven_client(
        vtn_base_url=vtn,
        client_id="ven-elsewhere",
        client_secret=stranger_secret,
        token_url=f"{vtn}/auth/token",
        version=OADRVersion.OADR_301,
    )
    stranger.vens.create_ven(NewVen(ven_name="elsewhere"))

    (url, received), (stranger_url, stranger_received) = webhook(), webhook()
    for client_id, key, hook in (("ven-home-1", secret, url), ("ven-elsewhere", stranger_secret, stranger_url)):
        subscribed = requests.post(
            f"{vtn}/subscriptions",
            timeout=5,
            headers={"Authorization": f"Bearer {token(vtn, client_id, key)}"},
            json={
                "clientName": client_id,
                "programID": program.id,
                "objectOperations": [
                    {
                        "objects": ["EVENT"],
                        "operations": ["POST", "PUT", "DELETE"],
                        "callbackUrl": hook,
                        "bearerToken": "callback-secret",
                    }
                ],
            },
        )
        assert subscribed.status_code == 201, subscribed.text

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=start,
        end=start + timedelta(hours=1),
        notify_at=datetime.now(UTC),
        target_kw=60,
        by="tester",
        over_commit_pct=0,
    )

    def my_events():
        return ven.events.get_events(target=None, pagination=None, program_id=None)

    seen = wait_for(my_events, timeout=20, what="the dispatch event to reach the VEN")
    assert len(seen) == 1
    oadr_event = seen[0]
    allocated = Allocation.objects.get(event=event, device=mine).kw[0]
    assert oadr_event.program_id == program.id
    assert {t.type: tuple(t.values) for t in oadr_event.targets} == {
        "VEN_NAME": ("home-1",),
        "RESOURCE_NAME": (mine.serial,),
    }
    [interval] = oadr_event.intervals
    assert interval.interval_period.start == start and interval.interval_period.duration == timedelta(hours=1)
    assert [(p.type, tuple(p.values)) for p in interval.payloads] == [("DISPATCH_SETPOINT_RELATIVE", (-allocated,))]
    assert DeviceCommand.objects.get(event=event, device=mine).delivered_at is not None  # read by its VEN
    assert stranger.events.get_events(target=None, pagination=None, program_id=None) == ()
    wait_for(
        lambda: any(n["operation"] == "POST" for _, n in received), timeout=10, what="the webhook's POST notification"
    )
    authorization, notification = next((a, n) for a, n in received if n["operation"] == "POST")
    assert authorization == "Bearer callback-secret"
    assert notification["objectType"] == "EVENT" and notification["object"]["id"] == oadr_event.id
    assert nulls(notification) == []  # optional members with no value are left out, not null

    # Once the interval has begun, the VEN reports its reduction; it becomes the device's delivered kW.
    wait_for(lambda: datetime.now(UTC) > start, timeout=5, what="the event to start")
    ven.reports.create_report(
        NewReport(
            programID=program.id,
            eventID=oadr_event.id,
            client_name="home-1",
            resources=(
                ReportResource(
                    resource_name=mine.serial,
                    interval_period=IntervalPeriod(start=start, duration=timedelta(hours=1)),
                    intervals=(Interval(id=0, payloads=(ReportPayload(type="DELTA_USAGE", values=(-allocated,)),)),),
                ),
            ),
        )
    )
    assert DeliveryReport.objects.get(event=event, device=mine).delivered_kw == pytest.approx(allocated)

    services.cancel(event=event, by="tester", reason="grid no longer needs it")
    wait_for(lambda: my_events() == (), timeout=20, what="the cancellation to delete the VEN's event")
    wait_for(lambda: any(n["operation"] == "DELETE" for _, n in received), timeout=10, what="the DELETE notification")
    assert all(n["object"]["id"] == oadr_event.id for _, n in received)
    assert stranger_received == []  # another VEN's subscription hears nothing of this VEN's event
