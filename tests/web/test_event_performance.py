"""The event performance report: delivered against allocated per device and site, the worst under-deliverers, the
customers affected, the CSV; and the season summary per program."""

import csv
import io
from zoneinfo import ZoneInfo

from django.test import Client
from django.urls import reverse

from dispatch.models import DeliveryReport
from tests.dispatch.conftest import make_resource  # noqa: F401  (the fixture)
from tests.settlement.test_settlement_runs import ended_event, move_event  # noqa: F401  (the fixture)


def _analyst(make_operator) -> Client:
    client = Client()
    client.force_login(make_operator("analyst"))
    return client


def test_the_report_ranks_the_device_that_delivered_least_and_names_its_customer(ended_event, make_operator):
    event = ended_event  # two generators, 5 kW each over two one-hour intervals: 10 kWh allocated each
    first, second = sorted(m.device_id for m in event.resource.memberships.all())
    starts = list(event.intervals.order_by("start").values_list("start", flat=True))
    for start in starts:
        DeliveryReport.objects.create(event=event, device_id=first, interval_start=start, delivered_kw=5)
    DeliveryReport.objects.create(event=event, device_id=second, interval_start=starts[0], delivered_kw=2)
    client = _analyst(make_operator)

    page = client.get(reverse("console:event-performance", args=[event.pk])).content.decode()
    assert "Allocated <strong>20.0 kWh</strong>, delivered <strong>12.0 kWh</strong> (60 %)" in page
    worst = page[page.index('id="worst"') : page.index('id="customers"')]
    assert f">{second}</a>" in worst and f">{first}</a>" not in worst
    assert "8.0 kWh" in worst  # short by 10 - 2
    customers = page[page.index('id="customers"') : page.index('id="sites"')]
    assert "Customers affected (1)" in customers

    download = client.get(reverse("console:event-performance", args=[event.pk]), {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert [(int(r["device_id"]), float(r["shortfall_kwh"])) for r in rows] == [(second, 8.0), (first, 0.0)]


def test_the_season_sums_each_program_s_events(ended_event, make_operator):
    event = ended_event
    for start in event.intervals.values_list("start", flat=True):
        for membership in event.resource.memberships.all():
            DeliveryReport.objects.create(
                event=event, device_id=membership.device_id, interval_start=start, delivered_kw=5
            )
    # The season is the market's calendar year: the event's year on the New York clock, not in UTC (they differ
    # when the suite runs in the first hours of 3 January, UTC).
    year = event.start.astimezone(ZoneInfo(event.resource.market.time_zone)).year
    page = _analyst(make_operator).get(reverse("console:season"), {"year": year}).content.decode()
    row = page[page.index(f'<th scope="row">{event.resource.program.code}</th>') :].split("</tr>")[0]
    assert "<td>1</td>" in row and "20.0 kWh" in row and "100 %" in row


def test_an_event_without_allocations_says_what_comes_next(make_resource, make_operator):
    from datetime import UTC, datetime, timedelta

    from dispatch import services

    resource = make_resource(generators=1)
    start = (datetime.now(UTC) + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    event = services.create_event(
        resource=resource, source="operator_test", start=start, end=start + timedelta(hours=1), target_kw=5, by="t"
    )
    page = _analyst(make_operator).get(reverse("console:event-performance", args=[event.pk])).content.decode()
    assert 'class="empty"' in page and "fills in once the event is allocated" in page


def test_the_season_is_the_markets_calendar_year_on_its_own_clock(ended_event, make_operator):
    """An event at 20:00 on New Year's Eve in New York starts at 01:00 UTC on 1 January: it is in the PJM program's
    season of the year it ends, not the next (it was counted by the UTC year)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    event = ended_event
    move_event(event, datetime(2026, 12, 31, 20, tzinfo=ZoneInfo("America/New_York")))
    client = _analyst(make_operator)
    code = f'<th scope="row">{event.resource.program.code}</th>'

    def events_in(year: int) -> str:
        page = client.get(reverse("console:season"), {"year": year}).content.decode()
        return page[page.index(code) :].split("</tr>")[0].split("<td>")[1].split("</td>")[0]

    assert (events_in(2026), events_in(2027)) == ("1", "0")
