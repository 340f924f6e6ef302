"""The customer portal: a customer's own login, their own devices, events and earnings only, a one-click opt-out
and a backup reserve kept within their programs' limits."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client

from dispatch import services
from dispatch.models import DeviceCommand, DeviceOptOut
from enrollment.models import CustomerLogin, Device
from settlement.models import CustomerPayout, SettlementRun, SiteSettlement
from tests.dispatch.conftest import make_resource, online  # noqa: F401  (the fixture)
from tests.factories import active_device


@pytest.fixture
def two_customers(program, make_resource):
    program.min_backup_reserve_pct, program.max_backup_reserve_pct = Decimal(20), Decimal(80)
    program.save()
    mine = active_device(
        program,
        device_type="battery",
        model="Home Battery A",
        energy_kwh=Decimal("13.5"),
        backup_reserve_pct=Decimal("30"),
    )
    theirs = active_device(program, device_type="battery", model="Neighbour Battery B", energy_kwh=Decimal("13.5"))
    resource = make_resource(devices=[mine, theirs])
    online(mine, theirs, soc=Decimal("90"))
    return mine, theirs, resource


def login_for(device: Device, capsys) -> Client:
    call_command("create_customer_login", device.site.customer.external_ref, f"user-{device.pk}")
    password = capsys.readouterr().out.split(" / ")[1].split()[0]
    client = Client()
    response = client.post("/portal/login/", {"username": f"user-{device.pk}", "password": password})
    assert response.status_code == 302 and response["Location"] == "/portal/"
    return client


def test_a_customer_sees_only_their_own_and_opts_out_of_their_own_event(two_customers, capsys, make_operator):
    mine, theirs, resource = two_customers
    assert Client().get("/portal/")["Location"].startswith("/portal/login/")
    me = login_for(mine, capsys)
    assert CustomerLogin.objects.get(user__username=f"user-{mine.pk}").customer == mine.site.customer
    assert me.get("/console/").status_code == 403  # a customer is not an operator
    operator = Client()
    operator.force_login(make_operator("admin"))
    assert operator.get("/portal/").status_code == 403  # nor an operator a customer

    now = datetime.now(UTC)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=now + timedelta(hours=1),
        end=now + timedelta(hours=2),
        notify_at=now,
        target_kw=8,
        by="tester",
        over_commit_pct=0,
        now=now,
    )
    for _, number, low, high in services.advance(event_id=event.pk, now=now):
        services.issue_commands(event_id=event.pk, round_number=number, first_device=low, last_device=high, now=now)
    my_command = DeviceCommand.objects.get(event=event, device=mine)
    their_command = DeviceCommand.objects.get(event=event, device=theirs)

    page = me.get("/portal/").content.decode()
    assert "Home Battery A" in page and "Neighbour Battery B" not in page
    assert str(my_command.pk) in page and str(their_command.pk) not in page
    assert "<svg" in page and "Earnings and bill savings by month" in page

    assert me.post(f"/portal/commands/{their_command.pk}/opt-out/").status_code == 404
    their_command.refresh_from_db()
    assert their_command.status == "pending"
    assert me.post(f"/portal/commands/{my_command.pk}/opt-out/").status_code == 302
    my_command.refresh_from_db()
    assert my_command.status == "opted_out" and DeviceOptOut.objects.filter(device=mine, event=event).exists()
    assert str(my_command.pk) not in me.get("/portal/").content.decode()


def test_the_backup_reserve_stays_within_the_programs_limits(two_customers, capsys):
    mine, theirs, _ = two_customers
    me = login_for(mine, capsys)
    assert me.post(f"/portal/devices/{mine.pk}/reserve/", {"backup_reserve_pct": "55"}).status_code == 302
    mine.refresh_from_db()
    assert mine.backup_reserve_pct == Decimal("55.00")
    refused = me.post(f"/portal/devices/{mine.pk}/reserve/", {"backup_reserve_pct": "90"})
    assert (
        refused.status_code == 400
        and b"<strong>backup_reserve_pct</strong>" in refused.content
        and b"20 to 80" in refused.content
    )
    mine.refresh_from_db()
    assert mine.backup_reserve_pct == Decimal("55.00")
    assert me.post(f"/portal/devices/{theirs.pk}/reserve/", {"backup_reserve_pct": "50"}).status_code == 404


def test_settled_events_and_earnings_show_for_their_customer_only(two_customers, capsys):
    mine, theirs, resource = two_customers
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    from dispatch.models import DispatchEvent

    event = DispatchEvent.objects.create(
        resource=resource,
        source="operator_test",
        notify_at=start,
        start=start,
        end=start + timedelta(hours=1),
        state="completed",
        over_commit_pct=0,
        created_by_label="test",
    )
    money = {"energy": Decimal("4.00"), "capacity": Decimal("6.00"), "penalty": Decimal("0"), "net": Decimal("10.00")}
    run = SettlementRun.objects.create(
        event=event,
        version=1,
        kind="initial",
        created_at=start + timedelta(days=2),
        created_by="test",
        method="pjm-high-4-of-5",
        fingerprint="x",
        sites=2,
        delivered_kwh=Decimal("7"),
        committed_kwh=Decimal("8"),
        performance_factor=Decimal("0.875"),
        **money,
    )
    for device, kwh in ((mine, "4.5"), (theirs, "2.5")):
        SiteSettlement.objects.create(
            run=run,
            site=device.site,
            customer=device.site.customer,
            starts=[start],
            baseline_kw=[5.0],
            actual_kw=[1.0],
            reduction_kwh=[Decimal(kwh)],
            price_per_mwh=[Decimal("50")],
            energy=Decimal("0.2"),
        )
        CustomerPayout.objects.create(
            run=run,
            customer=device.site.customer,
            delivered_kwh=Decimal(kwh),
            gross=Decimal("3.00"),
            fee=Decimal("0.15"),
            net=Decimal("2.85") if device == mine else Decimal("1.11"),
        )
    page = login_for(mine, capsys).get("/portal/").content.decode()
    assert f"#{event.pk}" in page and "4.50 kWh" in page and "$2.85" in page
    assert "2.50 kWh" not in page and "1.11" not in page


def test_a_customer_sets_their_cars_nightly_charging_needs(program, capsys):
    from enrollment.models import EvChargingNeed
    from tests.factories import DeviceFactory

    charger = DeviceFactory(
        device_type="ev_charger",
        rated_kw=Decimal("7.2"),
        charge_kw=None,
        energy_kwh=None,
        backup_reserve_pct=None,
        model="Wallbox C",
    )
    me = login_for(charger, capsys)
    assert b"nightly charging" in me.get("/portal/").content
    refused = me.post(
        f"/portal/devices/{charger.pk}/charging/", {"plug_in_hour": "6", "ready_by_hour": "7", "energy_kwh": "500"}
    )
    assert refused.status_code == 400 and b"<strong>plug_in_hour</strong>" in refused.content
    assert not EvChargingNeed.objects.exists()
    too_much = me.post(
        f"/portal/devices/{charger.pk}/charging/", {"plug_in_hour": "20", "ready_by_hour": "6", "energy_kwh": "500"}
    )
    assert too_much.status_code == 400 and b"<strong>energy_kwh</strong>" in too_much.content
    assert (
        me.post(
            f"/portal/devices/{charger.pk}/charging/", {"plug_in_hour": "20", "ready_by_hour": "6", "energy_kwh": "35"}
        ).status_code
        == 302
    )
    need = EvChargingNeed.objects.get(device=charger)
    assert (need.plug_in_hour, need.ready_by_hour, need.energy_kwh) == (20, 6, Decimal("35.00"))
