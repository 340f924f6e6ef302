"""Resilience: a device off the grid serves its own site. It is never commanded, counts nothing in a resource's
capability, and leaves an event it is serving when it islands."""

from datetime import UTC, datetime, timedelta

from aggregator.reference import services as reference_services
from dispatch import services
from dispatch.models import DeviceCommand, DeviceOptOut
from tests.dispatch.conftest import online, queued


def heartbeat(device_client, device, **fields):
    client, _ = device_client(device=device)
    response = client.post("/api/device/v1/status", {"online": True, **fields}, format="json")
    assert response.status_code == 200, response.content
    return response


def test_an_islanded_device_is_never_commanded_and_counts_nothing_now(make_resource, device_client, api_as):
    resource = make_resource(generators=2)
    grid, island = [m.device for m in resource.memberships.order_by("device_id")]
    online(grid, island)
    heartbeat(device_client, island, grid_status="islanded")
    members = {
        m["device"]: m for m in api_as("analyst").get(f"/api/v1/virtual-resources/{resource.pk}/members/").json()
    }
    assert members[island.pk]["available_kw"] == 0 and "islanded" in members[island.pk]["explanation"]
    assert members[grid.pk]["available_kw"] == 50 and "islanded" not in members[grid.pk]["explanation"]
    assert api_as("analyst").get(f"/api/v1/virtual-resources/{resource.pk}/capability/").json()["now_kw"] == 50.0

    now = datetime.now(UTC)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=now + timedelta(minutes=5),
        end=now + timedelta(hours=1, minutes=5),
        notify_at=now,
        target_kw=80,
        by="tester",
        over_commit_pct=0,
        now=now,
    )
    for _, number, low, high in services.advance(event_id=event.pk, now=now):
        services.issue_commands(event_id=event.pk, round_number=number, first_device=low, last_device=high, now=now)
    assert set(DeviceCommand.objects.filter(event=event).values_list("device_id", flat=True)) == {grid.pk}


def test_a_device_that_islands_mid_event_leaves_it_and_is_replaced(
    make_resource, device_client, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=3)
    devices = [m.device for m in resource.memberships.order_by("device_id")]
    online(*devices)
    now = datetime.now(UTC)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=now + timedelta(minutes=1),
        end=now + timedelta(hours=1, minutes=1),
        notify_at=now,
        target_kw=60,
        by="tester",
        over_commit_pct=0,
        now=now,
    )
    for _, number, low, high in services.advance(event_id=event.pk, now=now):
        services.issue_commands(event_id=event.pk, round_number=number, first_device=low, last_device=high, now=now)
    serving = DeviceCommand.objects.filter(event=event).order_by("device_id").first()
    device = next(d for d in devices if d.pk == serving.device_id)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        heartbeat(device_client, device, grid_status="outage")
    serving.refresh_from_db()
    assert serving.status == DeviceCommand.Status.OPTED_OUT and "off the grid" in serving.reason
    assert DeviceOptOut.objects.filter(device=device, end=event.end).exists()
    assert len(queued(callbacks)) == 1  # the rebalance that replaces it
    # A repeated outage heartbeat changes nothing more.
    with django_capture_on_commit_callbacks(execute=False) as again:
        heartbeat(device_client, device, grid_status="outage")
    assert queued(again) == [] and DeviceOptOut.objects.filter(device=device).count() == 1


def test_a_storm_watch_takes_a_zones_devices_out_of_events_and_capability_for_its_window(
    make_resource, api_as, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=3)
    devices = [m.device for m in resource.memberships.order_by("device_id")]
    online(*devices)
    now = datetime.now(UTC)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=now + timedelta(minutes=1),
        end=now + timedelta(hours=2),
        notify_at=now,
        target_kw=100,
        by="tester",
        over_commit_pct=0,
        now=now,
    )
    for _, number, low, high in services.advance(event_id=event.pk, now=now):
        services.issue_commands(event_id=event.pk, round_number=number, first_device=low, last_device=high, now=now)
    assert DeviceCommand.objects.filter(event=event, status="pending").count() == 2
    operator, analyst = api_as("operator"), api_as("analyst")
    body = {
        "market": "PJM",
        "pricing_nodes": ["PECO_N001"],
        "start": now.isoformat(),
        "end": (now + timedelta(hours=6)).isoformat(),
        "reason": "Hurricane warning",
    }
    assert analyst.post("/api/v1/storm-watches/", body, format="json").status_code == 403
    bad = operator.post("/api/v1/storm-watches/", {**body, "pricing_nodes": []}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "zone"
    bad = operator.post(
        "/api/v1/storm-watches/", {**body, "end": (now - timedelta(hours=1)).isoformat()}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "end"

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        declared = operator.post("/api/v1/storm-watches/", body, format="json")
    assert declared.status_code == 201, declared.content
    watch = declared.json()
    assert (watch["devices"], watch["events"]) == (3, 1)
    assert not DeviceCommand.objects.filter(event=event, status="pending").exists()
    assert set(DeviceCommand.objects.filter(event=event).values_list("status", flat=True)) == {"opted_out"}
    assert len(queued(callbacks)) == 1  # the event re-balances (nobody is left to take the kW)
    capability = analyst.get(f"/api/v1/virtual-resources/{resource.pk}/capability/").json()
    assert capability["now_kw"] == 0
    by_hour = {datetime.fromisoformat(h["start"]): h["kw"] for h in capability["forecast"]}
    assert all(kw == 0 for at, kw in by_hour.items() if at < now + timedelta(hours=6))
    assert all(kw == 150 for at, kw in by_hour.items() if at >= now + timedelta(hours=6))

    assert operator.post(f"/api/v1/storm-watches/{watch['id']}/cancel/").json()["cancelled_at"] is not None
    assert analyst.get(f"/api/v1/virtual-resources/{resource.pk}/capability/").json()["now_kw"] == 150


def test_a_storm_watch_holds_a_batterys_plan_full_over_its_window(program):
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from dispatch import resilience, schedules
    from dispatch.models import DeviceSchedule
    from enrollment.models import DeviceStatus
    from tests.dispatch.test_schedules import TARIFF, history
    from tests.factories import DeviceFactory, market

    reference_services.save_tariffs([TARIFF])
    battery = DeviceFactory(
        device_type="battery",
        rated_kw=Decimal("5"),
        charge_kw=Decimal("5"),
        energy_kwh=Decimal("13.5"),
        backup_reserve_pct=Decimal("20"),
    )
    site = battery.site
    site.utility, site.retail_tariff, site.time_zone = "PLANCO", "TOU", "America/New_York"
    site.save()
    DeviceStatus.objects.create(
        device=battery, online=True, last_seen_at=datetime.now(UTC), state_of_charge_pct=Decimal("30")
    )
    now = datetime.now(UTC)
    history(site, now)
    new_york = ZoneInfo("America/New_York")
    tomorrow = now.astimezone(new_york).date() + timedelta(days=1)
    storm_from = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 12, tzinfo=new_york)
    resilience.declare(
        market=market("PJM"),
        zone=site.zone,
        start=storm_from,
        end=storm_from + timedelta(hours=6),
        reason="Ice storm",
        by="tester",
        now=now,
    )
    schedules.plan_sites([site.pk], tomorrow, now=now)
    plan = DeviceSchedule.objects.get(device=battery, day=tomorrow)
    held = [
        e
        for n, e in enumerate(plan.energy_kwh)
        if storm_from <= plan.start + timedelta(minutes=15 * n) < storm_from + timedelta(hours=6)
    ]
    assert len(held) == 24 and min(held) >= 13.5 - 1e-3


def test_operators_declare_a_storm_watch_in_the_admin(make_resource, browser):
    from dispatch.models import StormWatch
    from tests.factories import market

    resource = make_resource(generators=2)
    start = datetime.now(UTC) + timedelta(hours=1)
    form = {
        "market": market("PJM").pk,
        "zone": "PECO",
        "pricing_nodes": "",
        "start_0": start.strftime("%Y-%m-%d"),
        "start_1": start.strftime("%H:%M:%S"),
        "reason": "Derecho",
    }
    end = start + timedelta(hours=8)
    refused = browser.post(
        "/admin/dispatch/stormwatch/add/",
        {**form, "end_0": start.strftime("%Y-%m-%d"), "end_1": (start - timedelta(hours=1)).strftime("%H:%M:%S")},
    )
    assert refused.status_code == 200 and not StormWatch.objects.exists()
    added = browser.post(
        "/admin/dispatch/stormwatch/add/",
        {**form, "end_0": end.strftime("%Y-%m-%d"), "end_1": end.strftime("%H:%M:%S")},
        follow=True,
    )
    assert added.status_code == 200
    watch = StormWatch.objects.get()
    assert watch.devices == resource.memberships.count() and watch.opt_outs.count() == watch.devices
    assert watch.created_by_label == "root"
