"""Settlement end to end: meter data through the device API, an event, a run, corrected data, a resettlement.

Hand-computed (meter before / meter after: each site's baseline is its load in the hour
before the event; two event hours; prices $100 and $200/MWh; 10 kW committed):

    site A: before 10 kWh; event 4, 5   -> reductions 6, 5 kWh   energy 0.6 + 1.0 = $1.60
    site B: before  6 kWh; event 6, 2   -> reductions 0, 4 kWh   energy 0.0 + 0.8 = $0.80
    delivered 15 of 20 kWh committed -> factor 0.7500
    capacity 10 kW x $10 x 0.75 = $75.00; penalty 10 kW x $4 x 0.25 = $10.00
    net 2.40 + 75.00 - 10.00 = $67.40
    customers: 50% of 67.40 = 33.70 split 11:4 -> 24.7133 / 8.9866 -> 24.71 / 8.98 + the left cent
               to B's larger remainder -> 24.71 / 8.99; 10% fee 2.47 / 0.90 -> net 22.24 / 8.09

Corrected: B's second event hour was really 6 kWh -> B delivers 0; 11 of 20 kWh -> 0.5500;
    capacity 55.00, penalty 18.00, energy 1.60 -> net 38.60 (-28.80); pool 19.30 all to A,
    fee 1.93 -> 17.37 (-4.87); B 0 (-8.09).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection

from dispatch import services as dispatch
from dispatch.models import DispatchEvent
from settlement import services
from settlement.models import CustomerPayout, SettlementRun, SettlementTerms, SiteSettlement
from tests.dispatch.conftest import make_resource  # noqa: F401  (the fixture)


@pytest.fixture
def ended_event(make_resource, django_capture_on_commit_callbacks):
    """A two-hour event on two generators (two sites, two customers) that ended two days ago."""
    resource = make_resource(generators=2)
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=False):
        event = dispatch.create_event(
            resource=resource,
            source="operator_test",
            start=start,
            end=start + timedelta(hours=2),
            target_kw=10,
            over_commit_pct=0,
            by="tester",
        )
        dispatch.allocate(event=event, reason="test", now=datetime.now(UTC))
    move_event(event, start - timedelta(days=2, hours=1))
    with connection.cursor() as cursor:
        cursor.execute("UPDATE dispatch_dispatchevent SET state = 'completed' WHERE id = %s", [event.pk])
        cursor.execute("UPDATE dispatch_allocation SET kw = ARRAY[5, 5]::float8[] WHERE event_id = %s", [event.pk])
    event.refresh_from_db()
    SettlementTerms.objects.create(
        program=resource.program,
        baseline_method="meter-before-meter-after",
        capacity_rate_per_kw=10,
        penalty_per_kw=4,
        sharing_rule="revenue_share",
        sharing_value=50,
        fee_pct=10,
    )
    return event


def move_event(event, start):
    """Moves an event, its intervals and its notice to begin at `start` (in SQL: the API refuses a past start)."""
    shift = event.start - start
    with connection.cursor() as cursor:
        cursor.execute(
            'UPDATE dispatch_dispatchevent SET start = start - %s, "end" = "end" - %s, notify_at = notify_at - %s '
            "WHERE id = %s",
            [shift, shift, shift, event.pk],
        )
        cursor.execute(
            'UPDATE dispatch_eventinterval SET start = start - %s, "end" = "end" - %s WHERE event_id = %s',
            [shift, shift, event.pk],
        )
    event.refresh_from_db()
    return event


def post_site_readings(device_client, device, start, values):
    client, _ = device_client(device=device)
    batch = [
        {"meter": "site", "start": (start + timedelta(hours=i)).isoformat(), "interval_seconds": 3600, "kwh": v}
        for i, v in enumerate(values)
    ]
    response = client.post("/api/device/v1/readings", {"readings": batch}, format="json")
    assert response.status_code == 200, response.content


def prices(tmp_path, event):
    from django.core.management import call_command

    path = tmp_path / "prices.csv"
    path.write_text(
        "node,start,price_per_mwh,interval_minutes\n"
        f"PECO_N001,{event.start.isoformat()},100,60\nPECO_N001,{(event.start + timedelta(hours=1)).isoformat()},200,60\n"
    )
    call_command("import_prices", "--market", "PJM", "--data", str(path))


def test_an_event_is_settled_then_resettled_with_the_difference_when_data_is_corrected(
    ended_event, device_client, tmp_path, browser
):
    event = ended_event
    site_a, site_b = [m.device for m in event.resource.memberships.order_by("device_id")]
    before = event.start - timedelta(hours=3)
    post_site_readings(device_client, site_a, before, [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, before, [6, 6, 6, 6, 2])
    prices(tmp_path, event)
    assert services.due(now=datetime.now(UTC)) == ([], [])  # the meter data has until 2 days after the end
    assert services.due(now=datetime.now(UTC) + timedelta(hours=2)) == ([event.pk], [])

    first = services.settle_event(event=event, by="analyst")

    assert (first.version, first.kind, first.sites) == (1, "initial", 2)
    assert (first.delivered_kwh, first.committed_kwh, first.performance_factor) == (D(15), D(20), D("0.7500"))
    assert (first.energy, first.capacity, first.penalty, first.net) == (D("2.40"), D("75.00"), D("10.00"), D("67.40"))
    a = SiteSettlement.objects.get(run=first, site=site_a.site)
    assert a.baseline_kw == [10.0, 10.0] and a.actual_kw == [4.0, 5.0] and a.reduction_kwh == [D(6), D(5)]
    assert a.price_per_mwh == [D(100), D(200)] and a.energy == D("1.6")
    paid = {p.customer_id: (p.gross, p.fee, p.net) for p in CustomerPayout.objects.filter(run=first)}
    assert paid == {
        site_a.site.customer_id: (D("24.71"), D("2.47"), D("22.24")),
        site_b.site.customer_id: (D("8.99"), D("0.90"), D("8.09")),
    }
    assert not services.needs_resettlement(first)
    assert services.due(now=datetime.now(UTC)) == ([], [])  # settled, nothing changed

    post_site_readings(device_client, site_b, event.start + timedelta(hours=1), [6])  # the meter's corrected value
    assert services.needs_resettlement(first) and services.due(now=datetime.now(UTC)) == ([], [event.pk])
    second = services.settle_event(event=event, by="settlement job")

    assert (second.version, second.kind, second.performance_factor, second.net) == (
        2,
        "resettlement",
        D("0.5500"),
        D("38.60"),
    )
    assert second.difference == {
        "from_version": 1,
        "lines": {
            "capacity": "-20.00",
            "penalty": "8.00",
            "net": "-28.80",
            "energy": "-0.80",
            "delivered_kwh": "-4.000000",
        },
        "customers": {str(site_a.site.customer_id): "-4.87", str(site_b.site.customer_id): "-8.09"},
    }
    assert SettlementRun.objects.get(pk=first.pk).net == D("67.40")  # the first version is kept as it was

    from django.urls import reverse

    page = browser.get(reverse("admin:settlement_settlementrun_change", args=[second.pk]))
    assert page.status_code == 200 and b"38.60" in page.content and b"17.37" in page.content
    assert browser.get(reverse("admin:settlement_settlementrun_changelist")).status_code == 200
    statement = browser.get(reverse("admin:settlement_settlementrun_statement", args=[second.pk]) + "?format=csv")
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(statement.content.decode())))
    b_rows = [r for r in rows if r["site"] == str(site_b.site_id)]
    assert [(r["baseline_kw"], r["actual_kw"], r["reduction_kwh"], r["price_per_mwh"]) for r in b_rows] == [
        ("6.0", "6.0", "0.000000", "100.0000"),
        ("6.0", "6.0", "0.000000", "200.0000"),
    ]
    assert b_rows[0]["baseline_days_used"] == "" and len(rows) == 4  # meter before/after uses the hour before, no days
    html = browser.get(reverse("admin:settlement_settlementrun_statement", args=[second.pk]))
    assert html.status_code == 200 and b"0.5500" in html.content


def test_an_event_without_terms_or_not_ended_is_refused(make_resource, django_capture_on_commit_callbacks):
    resource = make_resource(generators=1)
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=False):
        event = dispatch.create_event(
            resource=resource,
            source="operator_test",
            start=start,
            end=start + timedelta(hours=1),
            target_kw=10,
            over_commit_pct=0,
            by="tester",
        )
    with pytest.raises(services.SettlementRefused) as refused:
        services.settle_event(event=event, by="analyst")
    assert refused.value.problems[0].code == "not_ended"
    past = start - timedelta(days=2)
    DispatchEvent.objects.filter(pk=event.pk).update(
        state="completed", notify_at=past, start=past, end=past + timedelta(hours=1)
    )
    with pytest.raises(services.SettlementRefused) as refused:
        services.settle_event(event=event, by="analyst")
    assert refused.value.problems[0].code == "no_terms" and not SettlementRun.objects.exists()


def test_a_device_metered_method_settles_each_dispatched_device_at_its_own_meter(ended_event, device_client, tmp_path):
    """Metered output: two generators on one site, each measured at its own meter (negative = output).

        generator 1: before 0; event -5, -5 kWh -> reductions 5, 5   energy 0.5 + 1.0 = $1.50
        generator 2: before 0; event -3, -2 kWh -> reductions 3, 2   energy 0.3 + 0.4 = $0.70
        delivered 15 of 20 kWh -> 0.7500; capacity 75.00, penalty 10.00; net 2.20 + 75 - 10 = $67.20
        one customer: 50% = 33.60, 10% fee 3.36 -> 30.24
    The site's own meter says the site did nothing (10 kWh every hour): it is not what this method reads.
    """
    event = ended_event
    SettlementTerms.objects.filter(program=event.resource.program).update(baseline_method="metered-device-output")
    first, second = [m.device for m in event.resource.memberships.order_by("device_id")]
    second.site = first.site
    second.save(update_fields=["site"])
    before = event.start - timedelta(hours=1)
    for device, values in ((first, [0, -5, -5]), (second, [0, -3, -2])):
        client, _ = device_client(device=device)
        batch = [
            {"meter": "device", "start": (before + timedelta(hours=i)).isoformat(), "interval_seconds": 3600, "kwh": v}
            for i, v in enumerate(values)
        ]
        assert client.post("/api/device/v1/readings", {"readings": batch}, format="json").status_code == 200
    post_site_readings(device_client, first, before, [10, 10, 10])
    prices(tmp_path, event)

    run = services.settle_event(event=event, by="analyst")

    assert (run.sites, run.delivered_kwh, run.performance_factor, run.energy, run.net) == (
        1,
        D(15),
        D("0.7500"),
        D("2.20"),
        D("67.20"),
    )
    rows = {r.device_id: r for r in SiteSettlement.objects.filter(run=run)}
    assert set(rows) == {first.pk, second.pk} and {r.site_id for r in rows.values()} == {first.site_id}
    assert rows[second.pk].actual_kw == [-3.0, -2.0] and rows[second.pk].reduction_kwh == [D(3), D(2)]
    assert [(p.gross, p.fee, p.net) for p in CustomerPayout.objects.filter(run=run)] == [
        (D("33.60"), D("3.36"), D("30.24"))
    ]

    post_site_readings(device_client, first, event.start, [9])  # a site-meter correction: not this run's input
    assert not services.needs_resettlement(run)
    client, _ = device_client(device=second)
    client.post(
        "/api/device/v1/readings",
        {"readings": [{"meter": "device", "start": event.start.isoformat(), "interval_seconds": 3600, "kwh": -4}]},
        format="json",
    )
    assert services.needs_resettlement(run)
    assert services.settle_event(event=event, by="settlement job").delivered_kwh == D(16)


def test_a_site_in_a_grid_outage_is_excused_its_interval_and_its_outage_day_is_no_baseline_day(
    ended_event, device_client, tmp_path
):
    """As the first test, but site B's devices reported a grid outage over the second event hour:
    B's hour counts neither its 4 kWh nor its 5 kWh allocation: 11 of 20 - 5 = 15 kWh -> 0.7333;
    capacity 10 x 10 x 0.7333 = 73.33; penalty 10 x 4 x 0.2667 = 10.67; energy 1.60 -> net 64.26."""
    from enrollment.models import SiteOutage

    event = ended_event
    site_a, site_b = [m.device for m in event.resource.memberships.order_by("device_id")]
    before = event.start - timedelta(hours=3)
    post_site_readings(device_client, site_a, before, [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, before, [6, 6, 6, 6, 2])
    prices(tmp_path, event)
    client, _ = device_client(device=site_b)
    for status, at in (
        ("outage", event.start + timedelta(hours=1)),
        ("grid_connected", event.end + timedelta(minutes=5)),
    ):
        assert (
            client.post(
                "/api/device/v1/status", {"grid_status": status, "at": at.isoformat()}, format="json"
            ).status_code
            == 200
        )
    [outage] = SiteOutage.objects.filter(site=site_b.site)
    assert (outage.start, outage.end) == (event.start + timedelta(hours=1), event.end + timedelta(minutes=5))

    run = services.settle_event(event=event, by="analyst")
    assert (run.delivered_kwh, run.excused_kwh, run.performance_factor) == (D(11), D(5), D("0.7333"))
    assert (run.energy, run.capacity, run.penalty, run.net) == (D("1.60"), D("73.33"), D("10.67"), D("64.26"))
    b = SiteSettlement.objects.get(run=run, site=site_b.site)
    assert b.reduction_kwh == [D(0), D(0)] and "outage_excused" in b.flags
    assert "outage_excused" not in SiteSettlement.objects.get(run=run, site=site_a.site).flags

    # A program that does not excuse outages settles the same data as the first test did.
    SettlementTerms.objects.filter(program=event.resource.program).update(excuse_outage_intervals=False)
    again = services.settle_event(event=event, by="analyst")
    assert (again.delivered_kwh, again.excused_kwh, again.net) == (D(15), D(0), D("67.40"))


def test_an_outage_day_is_left_out_of_the_sites_baseline_days(make_resource, device_client):
    """High 4 of 5 on 12 days of hourly history: the weekday site A spent in an outage is skipped as an outage day."""
    from zoneinfo import ZoneInfo

    from enrollment.models import SiteOutage

    new_york = ZoneInfo("America/New_York")
    resource = make_resource(generators=2)
    site_a, site_b = [m.device for m in resource.memberships.order_by("device_id")]
    start = datetime(2026, 11, 18, 14, tzinfo=new_york)  # a Wednesday
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
    event.intervals.create(start=start, end=start + timedelta(hours=1), target_kw=10)
    from dispatch.models import Allocation

    Allocation.objects.bulk_create(
        [
            Allocation(
                event=event,
                round=1,
                device=d,
                customer_id=d.site.customer_id,
                kw=[5.0],
                available_kw=[50.0],
                reason="allocated",
                rank=n + 1,
            )
            for n, d in enumerate((site_a, site_b))
        ]
    )
    SettlementTerms.objects.create(
        program=resource.program,
        baseline_method="pjm-high-4-of-5",
        capacity_rate_per_kw=0,
        penalty_per_kw=0,
        sharing_rule="revenue_share",
        sharing_value=50,
        fee_pct=0,
    )
    first = datetime(2026, 11, 6, 0, tzinfo=new_york)
    for device in (site_a, site_b):
        post_site_readings(
            device_client, device, first, [5.0] * int((start + timedelta(hours=1) - first).total_seconds() // 3600)
        )
    outage_day = datetime(2026, 11, 17, 9, tzinfo=new_york)  # the Tuesday before
    SiteOutage.objects.create(site=site_a.site, start=outage_day, end=outage_day + timedelta(hours=3))

    run = services.settle_event(event=event, by="analyst", now=start + timedelta(days=3))
    a = SiteSettlement.objects.get(run=run, site=site_a.site)
    b = SiteSettlement.objects.get(run=run, site=site_b.site)
    assert a.days_skipped.get("2026-11-17") == "outage_day" and outage_day.date() not in a.days_used
    assert outage_day.date() in b.days_used
