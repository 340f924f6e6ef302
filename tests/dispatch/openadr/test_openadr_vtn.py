"""The OpenADR 3 VTN driven by an independent client library (openadr3-client), over real HTTP.

The business-logic side creates a program and events; VENs register with their own
credentials, read only the events targeted at them and post reports that land as the
platform's telemetry. The problem objects and OAuth errors are checked with plain requests.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from openadr3_client._models.common.interval import Interval
from openadr3_client._models.common.interval_period import IntervalPeriod
from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory
from openadr3_client.oadr301.models.event.event import NewEvent
from openadr3_client.oadr301.models.event.event_payload import EventPayload, EventPayloadType
from openadr3_client.oadr301.models.program.program import NewProgram
from openadr3_client.oadr301.models.report.report import NewReport, ReportResource
from openadr3_client.oadr301.models.report.report_payload import ReportPayload, ReportPayloadType
from openadr3_client.oadr301.models.target import Target
from openadr3_client.oadr301.models.ven.resource import NewResource
from openadr3_client.oadr301.models.ven.ven import NewVen
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory
from openadr3_client.version import OADRVersion

from aggregator.reference.models import MeterKind, Reading
from dispatch.openadr import auth
from dispatch.openadr.models import Client, Resource
from enrollment.models import DeviceStatus
from tests.factories import SiteFactory

BASE = "/openadr3/3.0.1"
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def insecure_oauth_transport(monkeypatch):
    """The live test server speaks plain HTTP; oauthlib refuses that unless told it is a test."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def vtn(live_server):
    return f"{live_server.url}{BASE}"


def bl_client(vtn):
    client, secret = auth.issue_client(client_id="utility-bl", role=Client.Role.BUSINESS_LOGIC)
    return BusinessLogicHttpClientFactory.create_http_bl_client(
        vtn_base_url=vtn,
        client_id=client.client_id,
        client_secret=secret,
        token_url=f"{vtn}/auth/token",
        version=OADRVersion.OADR_301,
    )


def ven_client(vtn, *, client_id, site):
    client, secret = auth.issue_client(client_id=client_id, role=Client.Role.VEN, site=site)
    return VirtualEndNodeHttpClientFactory.create_http_ven_client(
        vtn_base_url=vtn,
        client_id=client.client_id,
        client_secret=secret,
        token_url=f"{vtn}/auth/token",
        version=OADRVersion.OADR_301,
    )


def one_hour(start: datetime, value: float) -> Interval:
    return Interval(
        id=0,
        interval_period=IntervalPeriod(start=start, duration=timedelta(hours=1)),
        payloads=(EventPayload(type=EventPayloadType.SIMPLE, values=(value,)),),
    )


def test_business_logic_and_vens_through_the_client_library(vtn, program):
    from tests.factories import GENERATOR, active_device

    battery = active_device(program, **GENERATOR, serial="GEN-A-1")
    other_site = SiteFactory(market=program.market)
    bl = bl_client(vtn)
    ven_a = ven_client(vtn, client_id="ven-a", site=battery.site)
    ven_b = ven_client(vtn, client_id="ven-b", site=other_site)

    created = bl.programs.create_program(
        NewProgram(program_name="summer-peak", program_long_name="Summer peak rebate", country="US")
    )
    assert created.program_name == "summer-peak" and created.id

    # The VENs register themselves; a resource named as the device's serial maps onto it.
    registered = ven_a.vens.create_ven(NewVen(ven_name="ven-a"))
    resource = ven_a.vens.create_ven_resource(registered.id, NewResource(resource_name="GEN-A-1", venID=registered.id))
    assert resource.ven_id == registered.id
    assert Resource.objects.get(resource_name="GEN-A-1").device_id == battery.pk
    ven_b.vens.create_ven(NewVen(ven_name="ven-b"))

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    for name, targets in (
        ("for-a", (Target(type="VEN_NAME", values=("ven-a",)),)),
        ("for-b", (Target(type="VEN_NAME", values=("ven-b",)),)),
        ("for-all", None),
    ):
        bl.events.create_event(
            NewEvent(programID=created.id, event_name=name, targets=targets, intervals=(one_hour(start, 1.0),))
        )

    seen_by_a = {e.event_name for e in ven_a.events.get_events(target=None, pagination=None, program_id=None)}
    seen_by_b = {e.event_name for e in ven_b.events.get_events(target=None, pagination=None, program_id=None)}
    assert seen_by_a == {"for-a", "for-all"} and seen_by_b == {"for-b", "for-all"}
    everything = bl.events.get_events(target=None, pagination=None, program_id=created.id)
    assert {e.event_name for e in everything} == {"for-a", "for-b", "for-all"}
    for_b = next(e for e in everything if e.event_name == "for-b")
    with pytest.raises(requests.HTTPError) as hidden:
        ven_a.events.get_event_by_id(for_b.id)
    assert hidden.value.response.status_code == 404
    assert hidden.value.response.json()["status"] == 404

    # A report lands as the device's meter readings and status.
    for_a = next(e for e in everything if e.event_name == "for-a")
    period = IntervalPeriod(start=start, duration=timedelta(hours=1))
    report = ven_a.reports.create_report(
        NewReport(
            programID=created.id,
            eventID=for_a.id,
            client_name="ven-a",
            resources=(
                ReportResource(
                    resource_name="GEN-A-1",
                    interval_period=period,
                    intervals=(
                        Interval(
                            id=0,
                            payloads=(
                                ReportPayload(type=ReportPayloadType.USAGE, values=(12.5,)),
                                ReportPayload(type=ReportPayloadType.STORAGE_CHARGE_LEVEL, values=(64.0,)),
                            ),
                        ),
                        Interval(id=1, payloads=(ReportPayload(type=ReportPayloadType.USAGE, values=(3.25,)),)),
                    ),
                ),
            ),
        )
    )
    assert report.id and report.event_id == for_a.id
    stored = {r.start: r.kwh for r in Reading.objects.filter(meter_kind=MeterKind.DEVICE, meter_id=battery.pk)}
    assert stored == {start: Decimal("12.500000"), start + timedelta(hours=1): Decimal("3.250000")}
    assert DeviceStatus.objects.get(device=battery).state_of_charge_pct == Decimal("64.00")

    assert [
        r.id for r in ven_a.reports.get_reports(pagination=None, program_id=None, event_id=None, client_name=None)
    ] == [report.id]
    assert ven_b.reports.get_reports(pagination=None, program_id=None, event_id=None, client_name=None) == ()
    assert [
        r.id for r in bl.reports.get_reports(pagination=None, program_id=created.id, event_id=None, client_name=None)
    ] == [report.id]
    # A VEN sees only itself.
    assert [v.ven_name for v in ven_b.vens.get_vens(ven_name=None, target=None, pagination=None)] == ["ven-b"]
    assert {v.ven_name for v in bl.vens.get_vens(ven_name=None, target=None, pagination=None)} == {"ven-a", "ven-b"}
