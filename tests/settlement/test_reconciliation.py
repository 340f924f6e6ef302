"""Reconciliation of the market's statement with our run, on the two-site event of test_settlement_runs.

Our run (meter before / meter after, prices $100 then $200/MWh): site A uses 10 kWh an hour before the event,
then 4 and 5; site B 8, then 6 and 2. Baselines 10 + 8 = 18 kWh each hour; actual 10 then 7; reductions 8
and 11 kWh; energy $0.80 + $2.20 = $3.00. Each statement below injects known differences.
"""

import csv
from datetime import UTC, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from settlement import services
from settlement.models import MarketStatement, SettlementRun
from settlement.reconciliation import reconcile
from tests.dispatch.conftest import make_resource  # noqa: F401  (the fixture)
from tests.settlement.test_settlement_rules import sites
from tests.settlement.test_settlement_runs import ended_event, post_site_readings, prices  # noqa: F401

GENERIC = "event,start,minutes,baseline_kwh,actual_kwh,reduction_kwh,price_per_mwh,amount\n"
PJM = "event,date,hour_ending,cbl_mwh,load_mwh,reduction_mwh,lmp,credit\n"


@pytest.fixture
def settled(ended_event, device_client, tmp_path):
    event = ended_event
    site_a, site_b = sites(event)
    before = event.start - timedelta(hours=3)
    post_site_readings(device_client, site_a, before, [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, before, [8, 8, 8, 6, 2])
    prices(tmp_path, event)
    run = services.settle_event(event=event, by="analyst")
    assert run.energy == D("3.00")
    return event


def imported(tmp_path, event, text, *, form="generic", dispute=None):
    path = tmp_path / "statement.csv"
    path.write_text(text)
    args = ["--resource", str(event.resource_id), "--data", str(path), "--format", form]
    if dispute:
        args += ["--dispute", str(dispute)]
    call_command("import_market_statement", *args)
    return reconcile(MarketStatement.objects.latest("pk"))


def test_a_statement_that_agrees_matches_and_a_different_price_is_named(settled, tmp_path, api_as, make_operator):
    event = settled
    h1, h2 = event.start, event.start + timedelta(hours=1)
    text = (
        GENERIC + f"{event.pk},{h1.isoformat()},60,18,10,8,100,0.80\n{event.pk},{h2.isoformat()},60,18,7,11,210,2.31\n"
    )
    dispute = tmp_path / "dispute.csv"

    result = imported(tmp_path, event, text, dispute=dispute)

    assert [line.causes for line in result.lines] == [(), ("price",)]
    assert result.totals() == {"ours": D("3.00"), "market": D("3.11"), "difference": D("-0.11")}
    rows = list(csv.DictReader(dispute.open()))
    assert len(rows) == 1 and rows[0]["causes"] == "price"
    assert (rows[0]["our_price_per_mwh"], rows[0]["market_price_per_mwh"]) == ("200.00", "210.00")
    assert (rows[0]["our_amount"], rows[0]["market_amount"], rows[0]["difference"]) == ("2.20", "2.31", "-0.11")

    # The run's statement shows both figures, exact.
    run_id = SettlementRun.objects.get(event=event).pk
    body = api_as("analyst").get(f"/api/v1/settlement-runs/{run_id}/statement/").json()
    assert [(m["ours"]["amount"], m["market"]["amount"], m["causes"]) for m in body["market"]] == [
        ("0.80", "0.80", []),
        ("2.20", "2.31", ["price"]),
    ]
    console = Client()
    console.force_login(make_operator("analyst"))
    page = console.get(reverse("console:statement", args=[run_id])).content.decode()
    assert "Reconciliation with the market" in page and "2.31" in page and "price" in page


def test_baseline_meter_data_and_missing_intervals_are_told_apart_in_pjms_layout(settled, tmp_path):
    """PJM's layout: MWh and the hour ending in market time. Hour 1: the market's CBL is 20 kWh (ours 18):
    baseline. Hour 2: its load is 8 kWh (ours 7): meter data. The hour after: only the market has it."""
    event = settled
    zone = ZoneInfo(event.resource.market.time_zone)

    def day_and_hour_ending(hour: int) -> str:
        """The market's date and hour ending of the event's hour `hour`: the third can fall on the next day."""
        local = (event.start + timedelta(hours=hour)).astimezone(zone)
        midnight = local.replace(hour=0).astimezone(UTC)
        he = int((local - midnight).total_seconds() // 3600) + 1
        return f"{local.date().isoformat()},{he}"

    text = (
        PJM
        + f"{event.pk},{day_and_hour_ending(0)},0.020,0.010,0.010,100,1.00\n"
        + f"{event.pk},{day_and_hour_ending(1)},0.018,0.008,0.010,200,2.00\n"
        + f"{event.pk},{day_and_hour_ending(2)},0.018,0.018,0,300,0\n"
    )
    result = imported(tmp_path, event, text, form="pjm")
    assert [line.causes for line in result.lines] == [("baseline",), ("meter_data",), ("missing_ours",)]
    assert result.lines[0].market.baseline_kwh == D(20) and result.lines[0].ours.baseline_kwh == D(18)


def test_a_five_minute_statement_is_summed_onto_our_hourly_intervals(settled, tmp_path):
    """Twelve 5-minute rows in the first hour (11 x 0.65 + 0.85 = 8 kWh, $0.80, no baseline or load
    reported): they match our hour. The second hour is not in the statement: missing_market."""
    event = settled
    lines = [
        f"{event.pk},{(event.start + timedelta(minutes=5 * i)).isoformat()},5,,,"
        f"{'0.85' if i == 11 else '0.65'},100,{'0.085' if i == 11 else '0.065'}\n"
        for i in range(12)
    ]
    result = imported(tmp_path, event, GENERIC + "".join(lines))
    assert [line.causes for line in result.lines] == [(), ("missing_market",)]
    assert result.lines[0].market.reduction_kwh == D(8) and result.lines[0].minutes == 60


def test_a_bad_statement_is_refused_whole_by_line_and_column(settled, tmp_path, capsys):
    event = settled
    text = (
        GENERIC
        + f"{event.pk},{event.start.isoformat()},60,18,10,8,100,0.80\n"
        + f"999999,{event.start.isoformat()},60,18,10,8,100,0.80\n"  # not an event of the resource
        + f"{event.pk},2026-07-01T14:00:00,60,18,10,8,100,0.80\n"  # no UTC offset
        + f"{event.pk},{event.start.isoformat()},7,18,10,8,100,0.80\n"  # not an interval length
        + f"{event.pk},{event.start.isoformat()},60,18,10,,100,0.80\n"  # no reduction
        + f"{event.pk},{event.start.isoformat()},60,18,10,8,100,0.80\n"  # the first line again
    )
    with pytest.raises(CommandError, match="5 problem"):
        imported(tmp_path, event, text)
    err = capsys.readouterr().err
    for expected in ("line 3, event", "line 4, start", "line 5, minutes", "line 6, reduction_kwh", "line 7, start"):
        assert expected in err
    assert not MarketStatement.objects.exists()
