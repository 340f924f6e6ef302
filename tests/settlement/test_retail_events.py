"""Retail demand-response events: loaded from a utility's list, and their days are never baseline days."""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D

import pytest
from django.core.management import CommandError, call_command

from settlement import services
from settlement.models import RetailEvent, SettlementTerms, SiteSettlement
from tests.dispatch.conftest import make_resource  # noqa: F401  (the fixture)
from tests.factories import SiteFactory
from tests.settlement.test_settlement_rules import ANY_DAY, NEW_YORK, at_local_noon, sites
from tests.settlement.test_settlement_runs import ended_event, post_site_readings  # noqa: F401

HEADER = "utility,meter_id,program,start,end\n"


def load(tmp_path, text):
    path = tmp_path / "retail.csv"
    path.write_text(HEADER + text)
    call_command("import_retail_events", "--data", str(path))


def test_a_retail_event_day_is_not_a_baseline_day(ended_event, device_client, tmp_path):
    """PJM High 4 of 5 without adjustment, 10 kWh an hour for three weeks, except the most recent baseline day D
    at 20 kWh an hour. The utility's list says site A had a peak-time rebate event on D: A leaves D out
    (baseline 10 kW: reductions 6, 5), B, not in the list, keeps it ((20 + 3 x 10) / 4 = 12.5 kW)."""
    event = at_local_noon(ended_event)
    site_a, site_b = sites(event)
    SettlementTerms.objects.filter(program=event.resource.program).update(
        baseline_method="pjm-high-4-of-5", baseline_params={"adjustment": "none"} | ANY_DAY
    )
    history = (event.start.astimezone(NEW_YORK).replace(hour=0) - timedelta(days=21)).astimezone(UTC)
    hours = int((event.start - history).total_seconds() // 3600)
    post_site_readings(device_client, site_a, history, [10.0] * hours + [4, 5])
    post_site_readings(device_client, site_b, history, [10.0] * hours + [6, 2])
    day = max(SiteSettlement.objects.get(run=services.settle_event(event=event, by="a"), site=site_a.site).days_used)
    d_start = datetime.combine(day, time(0), NEW_YORK).astimezone(UTC)
    for site in (site_a, site_b):
        post_site_readings(device_client, site, d_start, [20.0] * 24)
    a = site_a.site
    a.utility, a.meter_id = "PECO", "M-1001"
    a.save(update_fields=["utility", "meter_id"])
    event_start = datetime.combine(day, time(17), NEW_YORK)
    load(
        tmp_path,
        f"PECO,M-1001,Peak Time Rebate,{event_start.isoformat()},{(event_start + timedelta(hours=3)).isoformat()}\n",
    )

    run = services.settle_event(event=event, by="analyst")

    a_row = SiteSettlement.objects.get(run=run, site=site_a.site)
    b_row = SiteSettlement.objects.get(run=run, site=site_b.site)
    assert day not in a_row.days_used and a_row.days_skipped[day.isoformat()] == "retail_event_day"
    assert a_row.baseline_kw == [10.0, 10.0] and a_row.reduction_kwh == [D(6), D(5)]
    assert day in b_row.days_used and b_row.baseline_kw == [12.5, 12.5]


@pytest.mark.django_db
def test_the_list_is_checked_whole_names_each_problem_and_imports_once(tmp_path, capsys):
    site = SiteFactory(utility="PECO", meter_id="M-7")
    good = "PECO,M-7,CPP,2026-07-14T14:00:00-04:00,2026-07-14T18:00:00-04:00\n"
    bad = (
        good
        + "PECO,M-8,CPP,2026-07-15T14:00:00-04:00,2026-07-15T18:00:00-04:00\n"  # no such meter
        + "PECO,M-7,CPP,2026-07-16T14:00:00,2026-07-16T18:00:00-04:00\n"  # no UTC offset
        + "PECO,M-7,CPP,2026-07-17T18:00:00-04:00,2026-07-17T14:00:00-04:00\n"  # ends before it starts
        + "PECO,M-7,,2026-07-18T14:00:00-04:00,2026-07-18T18:00:00-04:00\n"  # no program
        + good  # the same event twice
    )
    with pytest.raises(CommandError, match="5 problem"):
        load(tmp_path, bad)
    assert not RetailEvent.objects.exists()
    err = capsys.readouterr().err
    for expected in ("line 3, meter_id", "line 4, start", "line 5, end", "line 6, program", "line 7, start"):
        assert expected in err

    load(tmp_path, good)
    load(tmp_path, good)  # a utility's list sent again changes nothing
    stored = RetailEvent.objects.get()
    assert (stored.site, stored.program) == (site, "CPP")
    assert stored.end - stored.start == timedelta(hours=4)


def test_a_retail_event_imported_after_a_run_makes_it_due_for_resettlement(ended_event, device_client, tmp_path):
    """The utility's list often comes after the first settlement: importing it must make the run due again, as
    late meter data does (before, only readings were in the run's fingerprint)."""
    from settlement.services import needs_resettlement

    event = ended_event
    site_a, _ = sites(event)
    post_site_readings(device_client, site_a, event.start - timedelta(hours=3), [10, 10, 10, 4, 5])
    run = services.settle_event(event=event, by="analyst")
    assert not needs_resettlement(run)
    site = site_a.site
    site.utility, site.meter_id = "PECO", "M-4242"
    site.save(update_fields=["utility", "meter_id"])
    day_before = event.start - timedelta(days=1)
    load(tmp_path, f"PECO,M-4242,CPP,{day_before.isoformat()},{(day_before + timedelta(hours=2)).isoformat()}\n")
    assert needs_resettlement(run)
    again = services.settle_event(event=event, by="analyst")
    assert not needs_resettlement(again)
