"""Standing next-day battery plans from the site's own history and tariff, delivered on the device API,
with the dispatch commands that override them."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from aggregator.reference import readings as meter
from aggregator.reference import services as reference_services
from dispatch import schedules, services
from dispatch.models import DeviceSchedule
from enrollment.models import DeviceStatus, EvChargingNeed
from tests.dispatch.conftest import online
from tests.factories import DeviceFactory, SiteFactory, active_device

NY = ZoneInfo("America/New_York")
TARIFF = {
    "utility": "PLANCO",
    "code": "TOU",
    "name": "Evening peak",
    "effective_from": "2020-01-01",
    "energy": [
        {"name": "peak", "days": "weekdays", "hours": [[16, 21]], "price_per_kwh": "0.40"},
        {"name": "weekend peak", "days": "weekends", "hours": [[16, 21]], "price_per_kwh": "0.30"},
        {"name": "off-peak", "price_per_kwh": "0.10"},
    ],
    "demand": [{"name": "peak demand", "hours": [[16, 21]], "price_per_kw": "8.00"}],
    "export": {"credit_per_kwh": "0.03"},
}


def history(site, now: datetime, days: int = 14):
    """Hourly site readings for the last `days` days: 1 kW, 4 kW from 17:00 to 20:00 local."""
    first = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    rows, at = [], first
    while at + timedelta(hours=1) <= now:
        local = at.astimezone(NY)
        rows.append(
            {
                "site": site.pk,
                "start": at.isoformat(),
                "interval_seconds": 3600,
                "kwh": 4.0 if 17 <= local.hour < 20 else 1.0,
            }
        )
        at += timedelta(hours=1)
    lines, _ = meter.parse(rows, meters=meter.Meters(devices={}, default_device=None), sites=frozenset({site.pk}))
    meter.store(lines=lines, starts=lambda: enumerate(r["start"] for r in rows))


@pytest.fixture
def battery(program):
    reference_services.save_tariffs([TARIFF])
    device = active_device(
        program,
        device_type="battery",
        rated_kw=Decimal("5"),
        charge_kw=Decimal("5"),
        energy_kwh=Decimal("13.5"),
        backup_reserve_pct=Decimal("20"),
    )
    site = device.site
    site.utility, site.retail_tariff, site.time_zone = "PLANCO", "TOU", "America/New_York"
    site.save()
    DeviceStatus.objects.create(
        device=device, online=True, last_seen_at=datetime.now(UTC), state_of_charge_pct=Decimal("50")
    )
    return device


def test_tomorrows_plan_cuts_the_forecast_bill_keeps_the_reserve_and_reaches_only_its_device(battery, device_client):
    now = datetime.now(UTC)
    history(battery.site, now)
    tomorrow = now.astimezone(NY).date() + timedelta(days=1)
    figures = schedules.plan_sites([battery.site_id], tomorrow, now=now)
    assert (figures["sites"], figures["batteries"], figures["skipped"]) == (1, 1, {})
    plan = DeviceSchedule.objects.get(device=battery, day=tomorrow)
    assert (
        len(plan.kw) == len(schedules.day_starts(tomorrow, NY)) and plan.start == schedules.day_starts(tomorrow, NY)[0]
    )
    assert plan.site_cost < plan.site_cost_without
    assert plan.reserve_kwh == pytest.approx(2.7) and min(plan.energy_kwh) >= 2.7 - 1e-3
    # Stored energy is worth most before the evening peak it will serve (the plan's dual prices).
    assert len(plan.value_per_kwh) == len(plan.kw) and min(plan.value_per_kwh) >= 0
    assert max(plan.value_per_kwh) >= 0.10
    evening = [
        kw for n, kw in enumerate(plan.kw) if 17 <= (plan.start + timedelta(minutes=15 * n)).astimezone(NY).hour < 20
    ]
    assert sum(evening) > 0  # it discharges into the forecast evening peak

    # Planning again replaces the day's plan; a site without a tariff is skipped and says why.
    schedules.plan_sites([battery.site_id], tomorrow, now=now)
    assert DeviceSchedule.objects.filter(device=battery).count() == 1
    stranger = DeviceFactory()
    assert schedules.plan_sites([stranger.site_id], tomorrow, now=now)["skipped"] == {"no tariff": 1}
    stranger.site.utility, stranger.site.retail_tariff = "PLANCO", "TOU"
    stranger.site.save()
    assert schedules.plan_sites([stranger.site_id], tomorrow, now=now)["skipped"] == {"no history": 1}
    assert not DeviceSchedule.objects.filter(device=stranger).exists()

    mine, _ = device_client(device=battery)
    answer = mine.get("/api/device/v1/schedule").json()["schedules"]
    assert [(s["device"], s["day"], len(s["kw"])) for s in answer] == [(battery.pk, tomorrow.isoformat(), len(plan.kw))]
    theirs, _ = device_client(device=stranger)
    assert theirs.get("/api/device/v1/schedule").json()["schedules"] == []


def test_a_dispatch_command_overrides_the_plan_in_its_window(battery, make_resource, device_client):
    now = datetime.now(UTC)
    history(battery.site, now)
    tomorrow = now.astimezone(NY).date() + timedelta(days=1)
    schedules.plan_sites([battery.site_id], tomorrow, now=now)
    resource = make_resource(devices=[battery])
    online(battery, soc=Decimal("60"))
    start = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 18, tzinfo=NY)
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=start,
        end=start + timedelta(hours=1),
        notify_at=now,
        target_kw=3,
        by="tester",
        over_commit_pct=0,
        now=now,
    )
    for _, number, low, high in services.advance(event_id=event.pk, now=now):
        services.issue_commands(event_id=event.pk, round_number=number, first_device=low, last_device=high, now=now)
    client, _ = device_client(device=battery)
    [plan] = client.get("/api/device/v1/schedule").json()["schedules"]
    [window] = plan["overridden_by"]
    assert datetime.fromisoformat(window["start"]) == start and datetime.fromisoformat(
        window["end"]
    ) == start + timedelta(hours=1)


def test_sites_are_due_in_their_local_evening_until_planned(battery):
    evening = datetime(2026, 7, 14, 19, tzinfo=NY)
    morning = datetime(2026, 7, 14, 9, tzinfo=NY)
    assert battery.site_id not in schedules.due_sites(morning).get(evening.date() + timedelta(days=1), [])
    DeviceFactory(
        site=SiteFactory(time_zone="America/New_York"), device_type="battery"
    )  # another site in the same zone
    due = schedules.due_sites(evening)
    assert (
        list(due) == [evening.date() + timedelta(days=1)]
        and due[evening.date() + timedelta(days=1)].count(battery.site_id) == 1
    )
    assert len(due[evening.date() + timedelta(days=1)]) == 2
    DeviceSchedule.objects.create(
        device=battery,
        day=evening.date() + timedelta(days=1),
        start=evening,
        step_seconds=900,
        kw=[0.0],
        energy_kwh=[0.0],
        reserve_kwh=0,
        site_cost=0,
        site_cost_without=0,
    )
    assert battery.site_id not in schedules.due_sites(evening).get(evening.date() + timedelta(days=1), [])


def test_allocation_prefers_the_battery_whose_customer_loses_least_and_says_what_it_costs(program, make_resource):
    """Two batteries with the same season: the one whose plan values its stored energy less over the event goes first."""
    now = datetime.now(UTC)
    dear, cheap = (
        active_device(
            program,
            device_type="battery",
            rated_kw=Decimal("5"),
            charge_kw=Decimal("5"),
            energy_kwh=Decimal("13.5"),
            backup_reserve_pct=Decimal("10"),
        )
        for _ in range(2)
    )
    resource = make_resource(devices=[dear, cheap])
    online(dear, cheap, soc=Decimal("90"))
    start = (now + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    for device, value in ((dear, 0.30), (cheap, 0.05)):
        DeviceSchedule.objects.create(
            device=device,
            day=start.date(),
            start=start - timedelta(hours=4),
            step_seconds=900,
            kw=[0.0] * 48,
            energy_kwh=[10.0] * 48,
            reserve_kwh=1.35,
            value_per_kwh=[0.5] * 16 + [value] * 32,
            site_cost=0,
            site_cost_without=0,
        )
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=start,
        end=start + timedelta(hours=1),
        notify_at=now,
        target_kw=3,
        by="tester",
        over_commit_pct=0,
        now=now,
    )
    services.advance(event_id=event.pk, now=now)
    allocations = {a.device_id: a for a in event.allocations.select_related("device")}
    assert (allocations[cheap.pk].rank, allocations[cheap.pk].reason, allocations[dear.pk].reason) == (
        1,
        "allocated",
        "not_needed",
    )
    assert allocations[cheap.pk].customer_cost_per_kwh == pytest.approx(0.05)
    assert "$0.050/kWh" in allocations[cheap.pk].explanation and "$0.300/kWh" in allocations[dear.pk].explanation


def test_capability_leaves_a_battery_the_energy_its_own_plan_needs(program, make_resource):
    """At 14:00 a 2-hour event may take only what the plan does not discharge for the site from 16:00 on."""
    from aggregator.aggregation.selectors import capability_of

    now = datetime(2026, 7, 15, 11, 0, tzinfo=UTC)
    battery = active_device(
        program,
        device_type="battery",
        rated_kw=Decimal("5"),
        charge_kw=Decimal("5"),
        energy_kwh=Decimal("13.5"),
        backup_reserve_pct=Decimal("10"),
        round_trip_efficiency_pct=Decimal("90"),
    )
    resource = make_resource(devices=[battery])
    online(battery, soc=Decimal("90"), at=now)
    eff = 0.9**0.5
    kw = [0.0] * 20 + [2.0] * 16 + [0.0] * 12  # 12:00-24:00 in quarter hours: 2 kW from 17:00 to 21:00
    energy = [12.0] * 20 + [12.0 - 0.5 / eff * (n + 1) for n in range(16)] + [12.0 - 8.0 / eff] * 12
    DeviceSchedule.objects.create(
        device=battery,
        day=now.date(),
        start=datetime(2026, 7, 15, 12, tzinfo=UTC),
        step_seconds=900,
        kw=kw,
        energy_kwh=energy,
        reserve_kwh=1.35,
        site_cost=0,
        site_cost_without=0,
    )
    forecast = {
        h["start"]: h["kw"]
        for h in capability_of(resource_ids=[resource.pk], now=now, hours=24, event_hours=2)[resource.pk]["forecast"]
    }
    left = (12.0 - 1.35 - 8.0 / eff) * eff / 2  # kWh above the reserve the plan does not need, over 2 hours
    assert forecast[datetime(2026, 7, 15, 11, tzinfo=UTC)] == 5.0  # before the plan: the state of charge decides
    assert forecast[datetime(2026, 7, 15, 14, tzinfo=UTC)] == pytest.approx(left, abs=1e-3)
    assert forecast[datetime(2026, 7, 15, 22, tzinfo=UTC)] == pytest.approx(left, abs=1e-3)  # after it: what is left


def test_an_ev_chargers_plan_charges_overnight_what_last_nights_plan_left(program):
    from aggregator.web.portal.services import set_charging_need

    reference_services.save_tariffs([TARIFF])
    charger = DeviceFactory(
        device_type="ev_charger", rated_kw=Decimal("7.2"), charge_kw=None, energy_kwh=None, backup_reserve_pct=None
    )
    site = charger.site
    site.utility, site.retail_tariff, site.time_zone = "PLANCO", "TOU", "America/New_York"
    site.save()
    set_charging_need(device=charger, plug_in_hour=19, ready_by_hour=6, energy_kwh="30")
    now = datetime.now(UTC)
    history(site, now)
    tomorrow = now.astimezone(NY).date() + timedelta(days=1)
    starts = schedules.day_starts(tomorrow, NY)
    # Last night's plan (the day before) charged 10 kWh after plug-in: 20 kWh are owed by 06:00.
    evening = [
        (-5.0 if (starts[0] - timedelta(days=1) + timedelta(minutes=15 * n)).astimezone(NY).hour >= 22 else 0.0)
        for n in range(96)
    ]
    DeviceSchedule.objects.create(
        device=charger,
        day=tomorrow - timedelta(days=1),
        start=starts[0] - timedelta(days=1),
        step_seconds=900,
        kw=evening,
        energy_kwh=[0.0] * 96,
        reserve_kwh=0,
        site_cost=0,
        site_cost_without=0,
    )
    figures = schedules.plan_sites([site.pk], tomorrow, now=now)
    assert (figures["sites"], figures["ev_chargers"], figures["batteries"]) == (1, 1, 0)
    plan = DeviceSchedule.objects.get(device=charger, day=tomorrow)
    hours = [at.astimezone(NY).hour for at in starts]
    charged = [(-kw * 0.25, hour) for kw, hour in zip(plan.kw, hours)]
    assert all(kw <= 1e-9 for kw in plan.kw)  # it only charges
    assert all(kwh < 1e-6 for kwh, hour in charged if 6 <= hour < 19)  # never while away
    assert sum(kwh for kwh, hour in charged if hour < 6) == pytest.approx(20.0, abs=1e-3)
    assert plan.site_cost < plan.site_cost_without  # cheaper than charging at full power from plug-in
    assert schedules.due_sites(datetime(2026, 7, 14, 19, tzinfo=NY))[date(2026, 7, 15)] == [site.pk]


CHICAGO = ZoneInfo("America/Chicago")
FLAT_DEMAND = {
    "utility": "PLANCO",
    "code": "DEMAND",
    "name": "Flat energy, monthly demand",
    "effective_from": "2020-01-01",
    "energy": [{"name": "all hours", "price_per_kwh": "0.10"}],
    "demand": [{"name": "monthly demand", "price_per_kw": "8.00"}],
}


def hourly(site, first: datetime, last: datetime, kw) -> None:
    """Hourly site readings from `first` to `last` (UTC instants), kW by instant."""
    rows, at = [], first
    while at < last:
        rows.append({"site": site.pk, "start": at.isoformat(), "interval_seconds": 3600, "kwh": kw(at)})
        at += timedelta(hours=1)
    lines, _ = meter.parse(rows, meters=meter.Meters(devices={}, default_device=None), sites=frozenset({site.pk}))
    meter.store(lines=lines, starts=lambda: enumerate(r["start"] for r in rows))


def battery_at(program, zone: str, tariff: str = "DEMAND"):
    device = active_device(
        program,
        device_type="battery",
        rated_kw=Decimal("5"),
        charge_kw=Decimal("5"),
        energy_kwh=Decimal("13.5"),
        backup_reserve_pct=Decimal("20"),
    )
    site = device.site
    site.utility, site.retail_tariff, site.time_zone = "PLANCO", tariff, zone
    site.save()
    return device


def test_each_sites_month_starts_at_its_own_local_midnight(program):
    """A 9 kW spike in Chicago's last June evening hour (04:00-05:00 UTC on 1 July, already July in New York) is
    June's peak, not July's: a Chicago site planned for 2 July beside a New York site costs what it costs alone."""
    reference_services.save_tariffs([FLAT_DEMAND])
    chicago, new_york = battery_at(program, "America/Chicago"), battery_at(program, "America/New_York")
    now = datetime(2026, 7, 1, 23, 30, tzinfo=UTC)
    spike = datetime(2026, 6, 30, 23, tzinfo=CHICAGO).astimezone(UTC)
    for device in (chicago, new_york):
        hourly(device.site, datetime(2026, 6, 17, tzinfo=UTC), now, lambda at: 9.0 if at == spike else 1.0)
    day = date(2026, 7, 2)
    schedules.plan_sites([chicago.site_id], day, now=now)
    alone = DeviceSchedule.objects.get(device=chicago, day=day).site_cost
    figures = schedules.plan_sites([chicago.site_id, new_york.site_id], day, now=now)
    assert figures["sites"] == 2
    assert DeviceSchedule.objects.get(device=chicago, day=day).site_cost == alone
    # The July floor is the 1 kW of 1 July so far: the day's demand costs nothing above it.
    assert alone < 9 * 8


def test_a_site_that_cannot_be_planned_is_reported_and_its_batch_planned(program):
    """One of 20 sites has a car owed 50 kWh in two one-hour windows of a 7 kW charger (its charger was replaced by
    a smaller one after the need was set): no plan exists for it. The other 19 are planned; the figures name it
    and why."""
    reference_services.save_tariffs([TARIFF])
    now = datetime(2026, 7, 14, 23, tzinfo=UTC)
    batteries = [battery_at(program, "America/New_York", tariff="TOU") for _ in range(19)]
    charger = DeviceFactory(
        device_type="ev_charger", rated_kw=Decimal("7"), charge_kw=None, energy_kwh=None, backup_reserve_pct=None
    )
    site = charger.site
    site.utility, site.retail_tariff, site.time_zone = "PLANCO", "TOU", "America/New_York"
    site.save()
    EvChargingNeed.objects.create(device=charger, plug_in_hour=23, ready_by_hour=1, energy_kwh=Decimal("50"))
    for s in [b.site for b in batteries[:3]] + [site] + [b.site for b in batteries[3:]]:
        history(s, now)
    day = date(2026, 7, 15)
    figures = schedules.plan_sites([b.site_id for b in batteries] + [site.pk], day, now=now)
    assert (figures["sites"], figures["batteries"], figures["ev_chargers"]) == (19, 19, 0)
    assert figures["skipped"] == {"plan failed": 1}
    assert [f["site"] for f in figures["failed"]] == [site.pk] and "infeasible" in figures["failed"][0]["reason"]
    assert DeviceSchedule.objects.filter(day=day).count() == 19
    assert not DeviceSchedule.objects.filter(device=charger).exists()


@pytest.fixture
def disagreeing_battery(program, make_resource):
    """A battery whose plan values its stored energy at $0.30/kWh over the hour two hours from now."""
    now = datetime.now(UTC)
    battery = active_device(
        program,
        device_type="battery",
        rated_kw=Decimal("5"),
        charge_kw=Decimal("5"),
        energy_kwh=Decimal("13.5"),
        backup_reserve_pct=Decimal("10"),
    )
    resource = make_resource(devices=[battery])
    online(battery, soc=Decimal("90"))
    start = (now + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    DeviceSchedule.objects.create(
        device=battery,
        day=start.date(),
        start=start - timedelta(hours=4),
        step_seconds=900,
        kw=[0.0] * 48,
        energy_kwh=[10.0] * 48,
        reserve_kwh=1.35,
        value_per_kwh=[0.30] * 48,
        site_cost=0,
        site_cost_without=0,
    )
    return resource, battery, start


def test_a_preview_shows_what_a_dispatch_costs_customers_whose_plans_disagree_and_creates_nothing(
    disagreeing_battery, api_as
):
    """Taking 4 kWh of the battery's planned energy costs its customer $1.20, shown before the event exists; the
    preview leaves no event, allocation or command behind."""
    from dispatch.models import Allocation, DispatchEvent

    resource, battery, start = disagreeing_battery
    body = {
        "resource": resource.pk,
        "source": "operator_test",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "target_kw": "4",
        "over_commit_pct": "0",
    }
    answer = api_as("operator").post("/api/v1/dispatch-events/preview/", body, format="json")
    assert answer.status_code == 200, answer.content
    preview = answer.json()
    assert preview["allocated_kw"] == [4.0] and preview["devices"] == 1
    assert preview["customer_costs"] == [
        {"site": battery.site_id, "device": battery.pk, "kwh": 4.0, "cost_per_kwh": 0.3, "cost": 1.2}
    ]
    assert preview["customer_cost_total"] == 1.2
    assert not DispatchEvent.objects.exists() and not Allocation.objects.exists()
    # A bad request names its field, as creating would.
    bad = api_as("operator").post("/api/v1/dispatch-events/preview/", {**body, "resource": 999999}, format="json")
    assert bad.status_code == 400 and "resource" in str(bad.json())


def test_the_console_previews_the_customers_cost_before_the_operator_creates_the_event(
    disagreeing_battery, client, make_operator
):
    from dispatch.models import Allocation, DispatchEvent

    resource, _, start = disagreeing_battery
    client.force_login(make_operator("operator"))
    form = {
        "resource": resource.pk,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "target_kw": "4",
        "preview": "1",
    }
    page = client.post("/console/events/", form)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Preview: nothing has been created" in html and "1 device would be allocated" in html
    # The console allocates with the program's 10% over-commit: 4.4 kW for the hour, 4.4 kWh at $0.30 = $1.32.
    assert "up to 4.4 kW" in html and "the event's 4 kW" in html
    assert "<strong>$1.32</strong>" in html and "4.400 kWh" in html and "$0.3000/kWh" in html
    assert not DispatchEvent.objects.exists() and not Allocation.objects.exists()
    # The form keeps what was typed, so Create makes the event just previewed.
    assert f'value="{form["target_kw"]}"' in html
    bad = client.post("/console/events/", {**form, "target_kw": "ten"})
    assert bad.status_code == 400 and b"<strong>target_kw</strong>" in bad.content and b"Preview:" not in bad.content
