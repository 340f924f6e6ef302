"""Settlement for operators: runs on the API, a run queued to a real worker, statements per period, the event chart.

The figures are those of test_settlement_runs (hand-computed there): two sites, meter
before / meter after, version 1 net $67.40, then B's corrected hour makes version 2 net $38.60.
"""

import csv
import io
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.urls import reverse

from settlement import services
from settlement.models import SettlementRun
from tests.dispatch.conftest import make_resource  # noqa: F401  (the fixture)
from tests.dispatch.test_events_api import broker_down  # noqa: F401  (the fixture)
from tests.settlement.test_settlement_runs import ended_event, post_site_readings, prices  # noqa: F401

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def settled_twice(ended_event, device_client, tmp_path):
    event = ended_event
    site_a, site_b = [m.device for m in event.resource.memberships.order_by("device_id")]
    before = event.start - timedelta(hours=3)
    post_site_readings(device_client, site_a, before, [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, before, [6, 6, 6, 6, 2])
    prices(tmp_path, event)
    first = services.settle_event(event=event, by="analyst")
    post_site_readings(device_client, site_b, event.start + timedelta(hours=1), [6])
    second = services.settle_event(event=event, by="settlement job")
    return event, first, second, site_a.site, site_b.site


def local_day(event) -> str:
    return event.start.astimezone(NEW_YORK).date().isoformat()


def test_runs_their_payouts_and_evidence_on_the_api(settled_twice, api_as):
    event, first, second, a, b = settled_twice
    analyst = api_as("analyst")

    listed = analyst.get("/api/v1/settlement-runs/", {"event": event.pk})
    assert listed.status_code == 200
    assert [(r["version"], r["kind"], r["net"]) for r in listed.json()["results"]] == [
        (2, "resettlement", "38.60"),
        (1, "initial", "67.40"),
    ]

    detail = analyst.get(f"/api/v1/settlement-runs/{second.pk}/").json()
    assert detail["resource"] == event.resource_id and detail["difference"]["lines"]["net"] == "-28.80"
    assert {p["customer"]: p["net"] for p in detail["payouts"]} == {a.customer_id: "17.37", b.customer_id: "0.00"}

    # The chart's data: both sites summed per interval (A 10/10 + B 6/6 baseline; A 4/5 + B 6/6 actual), target 10 kW.
    intervals = analyst.get(f"/api/v1/settlement-runs/{second.pk}/intervals/").json()["intervals"]
    assert [
        (i["baseline_kw"], i["actual_kw"], i["target_kw"], i["meters"], i["reduction_kwh"], i["performance_factor"])
        for i in intervals
    ] == [(16.0, 10.0, 10.0, 2, "6.000000", 0.6), (16.0, 11.0, 10.0, 2, "5.000000", 0.5)]
    assert [datetime.fromisoformat(i["start"]) for i in intervals] == [event.start, event.start + timedelta(hours=1)]

    statement = analyst.get(f"/api/v1/settlement-runs/{first.pk}/statement/", {"format": "csv"})
    assert statement.status_code == 200 and statement["Content-Type"].startswith("text/csv")
    assert f"settlement-event{event.pk}-v1.csv" in statement["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(statement.content.decode())))
    assert [(r["site"], r["reduction_kwh"]) for r in rows] == [
        (str(a.pk), "6.000000"),
        (str(a.pk), "5.000000"),
        (str(b.pk), "0.000000"),
        (str(b.pk), "4.000000"),
    ]

    assert api_as("analyst").post("/api/v1/settlement-runs/", {"event": event.pk}, format="json").status_code == 403
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/settlement-runs/").status_code == 401


def test_statements_for_a_period_per_resource_and_per_customer(settled_twice, api_as):
    event, _first, _second, a, b = settled_twice
    day = local_day(event)
    analyst = api_as("analyst")

    resource = analyst.get(
        "/api/v1/settlement-statements/", {"resource": event.resource_id, "from": day, "to": day}
    ).json()
    assert resource["totals"] == {
        "events": 1,
        "committed_kwh": "20.000000",
        "delivered_kwh": "11.000000",
        "energy_usd": "1.60",
        "capacity_usd": "55.00",
        "penalty_usd": "18.00",
        "net_usd": "38.60",
        "paid_to_customers_usd": "17.37",
    }
    (line,) = resource["lines"]
    assert (
        line["event"],
        line["version"],
        line["kind"],
        line["net_usd"],
        line["initial_net_usd"],
        line["event_date"],
    ) == (event.pk, 2, "resettlement", "38.60", "67.40", day)

    customer_b = analyst.get(
        "/api/v1/settlement-statements/", {"customer": b.customer_id, "from": day, "to": day}
    ).json()
    assert [(x["event"], x["version"], x["net_usd"], x["initial_net_usd"]) for x in customer_b["lines"]] == [
        (event.pk, 2, "0.00", "8.09")
    ]
    assert customer_b["totals"]["net_usd"] == "0.00"
    customer_a = analyst.get(
        "/api/v1/settlement-statements/", {"customer": a.customer_id, "from": day, "to": day, "format": "csv"}
    )
    (row,) = list(csv.DictReader(io.StringIO(customer_a.content.decode())))
    assert (row["delivered_kwh"], row["gross_usd"], row["fee_usd"], row["net_usd"]) == (
        "11.000000",
        "19.30",
        "1.93",
        "17.37",
    )

    evidence = analyst.get(
        "/api/v1/settlement-statements/",
        {"customer": b.customer_id, "from": day, "to": day, "detail": "intervals", "format": "csv"},
    )
    rows = list(csv.DictReader(io.StringIO(evidence.content.decode())))
    assert [(r["version"], r["site"], r["baseline_kw"], r["actual_kw"], r["reduction_kwh"]) for r in rows] == [
        ("2", str(b.pk), "6.0", "6.0", "0.000000"),
        ("2", str(b.pk), "6.0", "6.0", "0.000000"),
    ]

    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    empty = analyst.get(
        "/api/v1/settlement-statements/", {"resource": event.resource_id, "from": next_day, "to": next_day}
    )
    assert empty.json()["lines"] == [] and empty.json()["totals"]["net_usd"] == "0"


@pytest.mark.parametrize(
    "query, field",
    [
        ({"resource": "R", "to": "2026-07-31"}, "from"),
        ({"resource": "R", "from": "2026-07-01", "to": "July"}, "to"),
        ({"resource": "R", "from": "2026-07-31", "to": "2026-07-01"}, "to"),
        ({"resource": "R", "from": "2025-01-01", "to": "2026-07-01"}, "to"),
        ({"from": "2026-07-01", "to": "2026-07-31"}, "resource"),
        ({"resource": "R", "customer": "C", "from": "2026-07-01", "to": "2026-07-31"}, "resource"),
        ({"resource": "999999", "from": "2026-07-01", "to": "2026-07-31"}, "resource"),
        ({"resource": "R", "from": "2026-07-01", "to": "2026-07-31", "detail": "intervals"}, "detail"),
    ],
)
def test_a_bad_statement_request_names_its_field(settled_twice, api_as, query, field):
    event, _, _, a, _ = settled_twice
    params = {k: {"R": str(event.resource_id), "C": str(a.customer_id)}.get(v, v) for k, v in query.items()}
    response = api_as("analyst").get("/api/v1/settlement-statements/", params)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_a_period_is_counted_in_market_time_across_the_dst_change(settled_twice, api_as):
    """An event at 22:30 New York time on Saturday 7 March 2026 is that day's, though it is 8 March in UTC (DST begins 8 March)."""
    event, *_ = settled_twice
    start = datetime(2026, 3, 7, 22, 30, tzinfo=NEW_YORK)
    assert start.astimezone(UTC).date() == date(2026, 3, 8)
    with connection.cursor() as cursor:
        cursor.execute(
            'UPDATE dispatch_dispatchevent SET notify_at = %s, start = %s, "end" = %s WHERE id = %s',
            [start - timedelta(hours=1), start, start + timedelta(hours=2), event.pk],
        )
    analyst = api_as("analyst")

    def events_on(first, last):
        return [
            x["event"]
            for x in analyst.get(
                "/api/v1/settlement-statements/", {"resource": event.resource_id, "from": first, "to": last}
            ).json()["lines"]
        ]

    assert events_on("2026-03-07", "2026-03-07") == [event.pk]
    assert events_on("2026-03-08", "2026-03-31") == []
    assert events_on("2026-03-01", "2026-03-31") == [event.pk]


def test_a_period_statement_without_events_is_a_csv_of_its_header(settled_twice, api_as):
    event, *_ = settled_twice
    next_day = (event.start.astimezone(NEW_YORK).date() + timedelta(days=1)).isoformat()

    response = api_as("analyst").get(
        "/api/v1/settlement-statements/",
        {"resource": event.resource_id, "from": next_day, "to": next_day, "format": "csv"},
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    (header,) = list(csv.reader(io.StringIO(response.content.decode())))
    assert header[:3] == ["event", "external_ref", "event_date"]


def test_statement_csvs_write_a_formula_like_market_reference_as_text(settled_twice, api_as, browser):
    event, *_ = settled_twice
    event.external_ref = '=HYPERLINK("http://x.example")'  # the market's own id for the event
    event.save(update_fields=["external_ref"])
    day = local_day(event)

    from_api = api_as("analyst").get(
        "/api/v1/settlement-statements/", {"resource": event.resource_id, "from": day, "to": day, "format": "csv"}
    )
    from_pages = browser.get(
        reverse("admin:settlement_settlementrun_period"),
        {"resource": event.resource_id, "date_from": day, "date_to": day, "format": "csv"},
    )

    for response in (from_api, from_pages):
        (row,) = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert row["external_ref"] == '\'=HYPERLINK("http://x.example")'
        assert (row["net_usd"], row["penalty_usd"]) == ("38.60", "18.00")


def test_the_operator_pages_show_the_chart_the_versions_and_period_statements(settled_twice, browser):
    event, first, second, a, _b = settled_twice
    page = browser.get(reverse("admin:settlement_settlementrun_statement", args=[second.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "<svg" in html and 'class="series-baseline_kw"' in html
    assert 'class="series-actual_kw"' in html and "38.60" in html
    assert reverse("admin:settlement_settlementrun_statement", args=[first.pk]) in html  # the other version

    event_page = browser.get(reverse("admin:dispatch_dispatchevent_change", args=[event.pk])).content.decode()
    assert "<svg" in event_page and "version 2 (resettlement, net $38.60)" in event_page

    changelist = browser.get(reverse("admin:settlement_settlementrun_changelist")).content.decode()
    assert reverse("admin:settlement_settlementrun_period") in changelist
    day = local_day(event)
    period = browser.get(
        reverse("admin:settlement_settlementrun_period"),
        {"resource": event.resource_id, "date_from": day, "date_to": day},
    )
    assert period.status_code == 200 and "38.60" in period.content.decode() and "67.40" in period.content.decode()
    download = browser.get(
        reverse("admin:settlement_settlementrun_period"),
        {"customer": a.customer_id, "date_from": day, "date_to": day, "detail": "intervals", "format": "csv"},
    )
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert [r["reduction_kwh"] for r in rows] == ["6.000000", "5.000000"]
    refused = browser.get(
        reverse("admin:settlement_settlementrun_period"),
        {"resource": event.resource_id, "customer": a.customer_id, "date_from": day, "date_to": day},
    )
    assert refused.status_code == 200 and "Give either a resource or a customer." in refused.content.decode()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_operator_queues_a_settlement_that_a_worker_runs(
    ended_event, device_client, tmp_path, api_as, celery_worker
):
    event = ended_event
    site_a, site_b = [m.device for m in event.resource.memberships.order_by("device_id")]
    post_site_readings(device_client, site_a, event.start - timedelta(hours=3), [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, event.start - timedelta(hours=3), [6, 6, 6, 6, 2])
    prices(tmp_path, event)
    operator = api_as("operator")

    assert operator.post("/api/v1/settlement-runs/", {}, format="json").json()["errors"][0]["field"] == "event"
    missing = operator.post("/api/v1/settlement-runs/", {"event": 999999}, format="json")
    assert missing.status_code == 400 and missing.json()["errors"][0]["code"] == "does_not_exist"

    queued = operator.post("/api/v1/settlement-runs/", {"event": event.pk}, format="json")
    assert queued.status_code == 202 and queued.json()["queued"] is True
    deadline = time.monotonic() + 30
    while not SettlementRun.objects.filter(event=event).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    run = SettlementRun.objects.get(event=event)
    assert (run.version, run.net, run.created_by) == (1, D("67.40"), "settlement job")

    from dispatch.models import DispatchEvent

    DispatchEvent.objects.filter(pk=event.pk).update(end=datetime.now(UTC) + timedelta(hours=1))
    refused = operator.post("/api/v1/settlement-runs/", {"event": event.pk}, format="json")
    assert refused.status_code == 409
    assert (refused.json()["errors"][0]["field"], refused.json()["errors"][0]["code"]) == ("event", "not_ended")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_queueing_a_settlement_while_the_broker_is_down_is_503_to_send_again(ended_event, api_as, broker_down):
    """The run is a job for a worker: with the broker away nothing can take it, so the operator is told to try
    again (503 with Retry-After in the one error shape), not a 500, and no run appears."""
    operator = api_as("operator")
    operator.raise_request_exception = False

    response = operator.post("/api/v1/settlement-runs/", {"event": ended_event.pk}, format="json")

    assert response.status_code == 503, response.content
    assert response.json()["type"] == "service_unavailable" and int(response["Retry-After"]) > 0
    assert not SettlementRun.objects.filter(event=ended_event).exists()
