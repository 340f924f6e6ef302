"""The console's Market page: a market's day from hand-made rows (forecast, offers, an award and its event,
telemetry, settled events and a market statement), its figures, the offer actions by role, empty states, and a
25-hour tomorrow."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from aggregator.market import awards
from aggregator.market.models import Forecast, TelemetrySample
from dispatch import services as dispatch
from settlement.models import MarketStatement, MarketStatementInterval, SettlementRun
from tests.market.conftest import (  # noqa: F401  (the fixtures)
    award_body,
    energy_program,
    make_offer,
    make_resource,
)

NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
# 09:00 EDT on 15 July 2026: PJM's day-ahead market takes offers for the 16th until 10:30 EDT.
NOW = datetime(2026, 7, 15, 9, tzinfo=NEW_YORK)
TODAY = datetime(2026, 7, 15, tzinfo=NEW_YORK)
TOMORROW = datetime(2026, 7, 16, tzinfo=NEW_YORK)


@pytest.fixture
def as_role(make_operator):
    def login(role):
        client = Client()
        client.force_login(make_operator(role))
        return client

    return login


def page(client, **query) -> str:
    response = client.get(reverse("console:market"), query)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def cells(html: str) -> list[list[str]]:
    """Each table row's cells as text, tags stripped."""
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S):
        rows.append([re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)])
    return rows


def section(html: str, heading_id: str) -> str:
    start = html.index(f'aria-labelledby="{heading_id}"')
    return html[start : html.index("</section>", start)]


def forecast_row(resource, *, issued_at, start, scale: float = 1.0) -> Forecast:
    """48 hourly steps from `start`: step i has P10 i, P50 2i, P90 3i and expected 2.5i kW (times `scale`)."""
    return Forecast.objects.create(
        resource=resource,
        kind="hourly",
        model="learned",
        issued_at=issued_at,
        start=start,
        interval_minutes=60,
        p10_kw=[scale * i for i in range(48)],
        p50_kw=[scale * 2 * i for i in range(48)],
        p90_kw=[scale * 3 * i for i in range(48)],
        expected_kw=[scale * 2.5 * i for i in range(48)],
    )


def awarded_event(offer, intervals, *, award_id: str, now: datetime):
    """The offer's award, received through the awards service the day before its window (its event with it)."""
    award, _ = awards.receive_award(
        market=offer.resource.market,
        award=award_body(offer, intervals, award_id=award_id),
        source="api",
        by="test market",
        now=now,
    )
    return award


def settled(event, *, version: int, energy: str, net: str) -> SettlementRun:
    return SettlementRun.objects.create(
        event=event,
        version=version,
        kind="initial" if version == 1 else "resettlement",
        created_at=event.end + timedelta(days=1),
        created_by="test",
        method="metered-device-output",
        fingerprint=f"v{version}",
        sites=4,
        delivered_kwh=D(100),
        committed_kwh=D(100),
        performance_factor=D(1),
        energy=D(energy),
        capacity=D(0),
        penalty=D(0),
        net=D(net),
    )


@pytest.fixture
def market_day(make_resource, make_offer):
    """PJM on 15 July 2026 at 09:00 EDT: a resource with tomorrow's forecasts and draft offer, today's accepted
    offer (awarded 08:00 120 kW at $95, 09:00 100 kW at $45, 17:00 150 kW at $120) and its telemetry from 08:00,
    and a settled award from the 13th (two runs, a market statement) beside a settled operator test elsewhere."""
    resource = make_resource()
    other = make_resource()
    # Tomorrow's: an earlier forecast (make_offer's, issued at today's midnight), the latest one by now, and one
    # issued after now that the page must not show yet.
    draft = make_offer(
        resource, TOMORROW, hours=24, state="draft", deadline=datetime(2026, 7, 15, 10, 30, tzinfo=NEW_YORK)
    )
    latest = forecast_row(resource, issued_at=NOW - HOUR, start=NOW)
    forecast_row(resource, issued_at=NOW + HOUR, start=NOW + HOUR, scale=10)

    today = make_offer(resource, TODAY, hours=24, deadline=datetime(2026, 7, 14, 10, 30, tzinfo=NEW_YORK))
    award = awarded_event(
        today,
        [
            (TODAY.replace(hour=8), 120, 95),
            (TODAY.replace(hour=9), 100, 45),
            (TODAY.replace(hour=17), 150, 120),
        ],
        award_id="DA-2026-07-15-0001",
        now=datetime(2026, 7, 14, 13, tzinfo=NEW_YORK),
    )
    # Telemetry from 08:00: 200 kW (4 of 4 reporting), 180 kW (3 of 4), 150 kW (1 of 4, poor).
    eight = TODAY.replace(hour=8).astimezone(UTC)
    TelemetrySample.objects.bulk_create(
        TelemetrySample(
            resource=resource,
            at=eight + timedelta(minutes=m),
            kw=kw,
            devices_reporting=n,
            devices_expected=4,
            quality=q,
        )
        for m, kw, n, q in [(0, 200, 4, "good"), (5, 180, 3, "good"), (6, 150, 1, "poor")]
    )

    # The 13th: an award settled twice (the latest run counts) and a market statement imported twice (the later
    # one counts), and another resource's operator test, settled, that is no award's.
    thirteenth = datetime(2026, 7, 13, tzinfo=NEW_YORK)
    past = make_offer(resource, thirteenth, hours=24, deadline=datetime(2026, 7, 12, 10, 30, tzinfo=NEW_YORK))
    past_award = awarded_event(
        past,
        [(thirteenth.replace(hour=18), 150, 110)],
        award_id="DA-2026-07-13-0001",
        now=datetime(2026, 7, 12, 13, tzinfo=NEW_YORK),
    )
    settled(past_award.event, version=1, energy="12.34", net="10.00")
    settled(past_award.event, version=2, energy="15.00", net="12.00")
    for n, amounts in enumerate([("1.00", "1.00"), ("7.50", "8.25")]):
        statement = MarketStatement.objects.create(
            resource=resource,
            file_name=f"s{n}.csv",
            file_format="pjm",
            imported_at=datetime(2026, 7, 14 + n, 6, tzinfo=UTC),
            imported_by="test",
        )
        MarketStatementInterval.objects.bulk_create(
            MarketStatementInterval(
                statement=statement,
                event=past_award.event,
                start=past_award.event.start + k * timedelta(minutes=30),
                minutes=30,
                reduction_kwh=D(75),
                price_per_mwh=D(110),
                amount=D(amount),
            )
            for k, amount in enumerate(amounts)
        )
    test_event = dispatch.create_event(
        resource=other,
        source="operator_test",
        start=thirteenth.replace(hour=12),
        end=thirteenth.replace(hour=13),
        target_kw=D(50),
        by="test",
        now=datetime(2026, 7, 12, 13, tzinfo=NEW_YORK),
    )
    settled(test_event, version=1, energy="99.00", net="99.00")
    return {
        "resource": resource,
        "draft": draft,
        "today": today,
        "award": award,
        "past": past_award,
        "forecast": latest,
    }


@time_machine.travel(NOW, tick=False)
def test_the_page_shows_tomorrows_forecast_the_offers_and_their_countdown(market_day, as_role):
    html = page(as_role("operator"))
    resource, draft = market_day["resource"], market_day["draft"]

    assert 'aria-current="page">Market</a>' in html
    # Tomorrow starts 15 hours into the latest forecast (09:00 EDT): P10 15, P50 30, P90 45, expected 37.5.
    forecast = cells(section(html, "forecast-heading"))
    assert forecast[1] == ["00:00 EDT", "15.0", "30.0", "45.0", "37.5"]
    assert forecast[-1] == ["23:00 EDT", "38.0", "76.0", "114.0", "95.0"]
    assert len(forecast) == 1 + 24
    assert 'class="band-p10-p90"' in html and 'class="series-p50"' in html and 'class="series-expected"' in html

    rows = cells(section(html, "offers-heading"))[1:]
    assert {r[0] for r in rows} == {resource.name}
    assert [(r[2], r[4], r[5], r[6]) for r in rows] == [
        (
            "2026-07-15 00:00–2026-07-16 00:00 EDT",
            "accepted",
            "2026-07-14 10:30 EDT · closed",
            f"DA-2026-07-15-0001 · event {market_day['award'].event_id}",
        ),
        ("2026-07-16 00:00–2026-07-17 00:00 EDT", "draft", "2026-07-15 10:30 EDT · closes in 1 h 30 min", "-"),
    ]
    assert f'data-seconds-left="{90 * 60}"' in html
    assert html.count(">Approve</button>") == 1 and ">Submit now</button>" not in html

    # The chosen offer is tomorrow's: its curve for the first interval and its 24 intervals.
    offer = section(html, "offer-heading")
    assert f"offer {draft.pk} version 1" in offer and "closes in 1 h 30 min" in offer
    assert "Offer curve, 2026-07-16 00:00 EDT" in offer and "2 segments, 150.000 kW in all" in offer
    intervals = cells(offer)[1:]
    assert len(intervals) == 24
    assert intervals[0][:4] == ["00:00 EDT", "0.000", "150.000", "100.000 @ 40.00; 50.000 @ 90.00"]
    assert "No award yet" in section(html, "awards-heading")
    assert resource.name in html


@time_machine.travel(NOW, tick=False)
def test_awards_beside_the_offer_todays_telemetry_against_them_and_revenue_by_day(market_day, as_role):
    today, award = market_day["today"], market_day["award"]
    html = page(as_role("analyst"), offer=today.pk)

    awarded = section(html, "awards-heading")
    rows = {r[0]: r for r in cells(awarded)[1:]}
    assert rows["08:00 EDT"] == ["08:00 EDT", "0.000–150.000", "120.000", "95.00", "DA-2026-07-15-0001"]
    assert rows["09:00 EDT"][2:4] == ["100.000", "45.00"]
    assert rows["17:00 EDT"][2:4] == ["150.000", "120.00"]
    assert rows["12:00 EDT"][2:] == ["-", "-", "-"]
    assert f'href="{reverse("console:event", args=[award.event_id])}"' in awarded
    # The curve is drawn for the first awarded interval, with the award marked on it.
    offer = section(html, "offer-heading")
    assert "Offer curve, 2026-07-15 08:00 EDT" in offer and "awarded 120.000 kW at $95.00/MWh" in offer
    assert 'class="series-awarded"' in offer

    telemetry = {r[0]: r for r in cells(section(html, "telemetry-heading"))[1:]}
    assert len(telemetry) == 24
    # 08:00: (200 + 180 + 150) / 3 = 176.7 kW; 1 to 4 of 4 members reporting; the worst sample was poor.
    assert telemetry["08:00 EDT"] == ["08:00 EDT", "120.000", "176.7", "3", "1–4 of 4", "poor (2 / 1 / 0)"]
    assert telemetry["09:00 EDT"] == ["09:00 EDT", "100.000", "-", "0", "-", "-"]
    assert telemetry["17:00 EDT"][1] == "150.000" and telemetry["12:00 EDT"][1] == "-"
    assert 'class="mark-poor"' in html and 'class="series-telemetry"' in html
    # The same series for the interactive chart (hover values, zoom): 5-minute bins, the award on the same grid.
    import html as markup
    import json

    spec = json.loads(markup.unescape(section(html, "telemetry-heading").split('data-chart="', 1)[1].split('"', 1)[0]))
    series = {s["label"]: s["values"] for s in spec["series"]}
    eight = spec["t"].index(int(datetime(2026, 7, 15, 8, tzinfo=NEW_YORK).timestamp()))
    assert len(spec["t"]) == 288 and series["Awarded kW"][eight] == 120.0 and series["Telemetry kW"][eight] is not None

    # The 13th: the latest run (15.00, net 12.00) and the later statement (7.50 + 8.25); today's award, unsettled;
    # the operator test's 99.00 is no award's.
    revenue = cells(section(html, "revenue-heading"))
    assert revenue[1:] == [
        ["2026-07-15", "1", "0", "0", "0", "-"],
        ["2026-07-13", "1", "1", "15.00", "12.00", "15.75"],
        ["Total", "", "", "15.00", "12.00", ""],
    ]
    # Analysts read: no actions.
    assert ">Approve</button>" not in html and '<th scope="col">Action</th>' not in html


@time_machine.travel(NOW, tick=False)
def test_an_operator_approves_and_submits_an_analyst_cannot_and_refusals_are_shown(market_day, as_role, make_operator):
    draft = market_day["draft"]
    url = reverse("console:market")

    assert as_role("analyst").post(url, {"offer": draft.pk, "action": "approve"}).status_code == 403
    assert Client().post(url, {"offer": draft.pk, "action": "approve"}).status_code == 302  # to the login page
    no_token = Client(enforce_csrf_checks=True)
    no_token.force_login(make_operator("operator"))
    assert no_token.post(url, {"offer": draft.pk, "action": "approve"}).status_code == 403
    draft.refresh_from_db()
    assert draft.state == "draft"

    operator = as_role("operator")
    done = operator.post(url, {"offer": draft.pk, "action": "approve"}, follow=True)
    draft.refresh_from_db()
    assert draft.state == "approved" and draft.approved_by is not None
    assert f"Offer {draft.pk} v1 of {draft.resource.name} approved" in done.content.decode()
    assert ">Submit now</button>" in done.content.decode() and ">Approve</button>" not in done.content.decode()

    again = operator.post(url, {"offer": draft.pk, "action": "approve"})
    assert again.status_code == 409 and b'role="alert"' in again.content

    # PJM has no market connection here: the offer stays approved and the page says why.
    unsent = operator.post(url, {"offer": draft.pk, "action": "submit"})
    draft.refresh_from_db()
    assert unsent.status_code == 409 and draft.state == "approved"
    assert "was not submitted: PJM has no enabled market connection" in unsent.content.decode()

    assert operator.post(url, {"offer": "nope", "action": "approve"}).status_code == 400


@time_machine.travel(NOW, tick=False)
def test_after_the_deadline_an_offer_cannot_be_approved_and_the_page_says_closed(market_day, as_role):
    draft = market_day["draft"]
    with time_machine.travel(datetime(2026, 7, 15, 10, 31, tzinfo=NEW_YORK), tick=False):
        operator = as_role("operator")
        html = page(operator)
        rows = cells(section(html, "offers-heading"))[1:]
        assert rows[-1][4:6] == ["draft", "2026-07-15 10:30 EDT · closed"] and ">Approve</button>" not in html
        refused = operator.post(reverse("console:market"), {"offer": draft.pk, "action": "approve"})
    draft.refresh_from_db()
    assert refused.status_code == 409 and draft.state == "draft"
    assert "deadline" in refused.content.decode().lower()


@time_machine.travel(NOW, tick=False)
def test_empty_states_say_what_to_do(make_resource, as_role):
    resource = make_resource()
    html = page(as_role("analyst"))
    assert f'<option value="{resource.pk}" selected>' in html  # PJM: the first market with a registered resource
    assert "No forecast yet: beat makes one hourly" in html
    assert "No offers for today or later yet: beat builds" in html
    assert "No offer of " in html and "No offer, so no award." in html
    assert "No telemetry today" in html and "Nothing awarded for today." in html
    assert "No revenue yet" in html

    elsewhere = page(as_role("analyst"), market="ERCOT")
    assert "No registered resource in ERCOT" in elsewhere and "No revenue yet" in elsewhere


# 31 October 2026, 09:00 EDT: tomorrow is 1 November, the autumn change (01:00 twice, 25 hours).
DST_NOW = datetime(2026, 10, 31, 9, tzinfo=NEW_YORK)


@time_machine.travel(DST_NOW, tick=False)
def test_a_25_hour_tomorrow_has_25_forecast_hours_and_25_offer_intervals(make_resource, make_offer, as_role):
    resource = make_resource()
    day, next_day = datetime(2026, 11, 1, tzinfo=NEW_YORK), datetime(2026, 11, 2, tzinfo=NEW_YORK)
    make_offer(resource, day, end=next_day, state="draft", deadline=datetime(2026, 10, 31, 10, 30, tzinfo=NEW_YORK))
    forecast_row(resource, issued_at=DST_NOW - HOUR, start=DST_NOW)

    html = page(as_role("analyst"))

    forecast = cells(section(html, "forecast-heading"))[1:]
    # 04:00Z (midnight EDT) is step 15 of the forecast from 13:00Z; 01:00 EDT step 16, 01:00 EST step 17.
    assert len(forecast) == 25
    assert forecast[:3] == [
        ["00:00 EDT", "15.0", "30.0", "45.0", "37.5"],
        ["01:00 EDT", "16.0", "32.0", "48.0", "40.0"],
        ["01:00 EST", "17.0", "34.0", "51.0", "42.5"],
    ]
    assert forecast[-1][0] == "23:00 EST" and forecast[-1][1] == "39.0"
    assert "2026-11-01 00:00 EDT to 2026-11-02 00:00 EST" in html
    intervals = cells(section(html, "offer-heading"))[1:]
    assert [r[0] for r in intervals[:3]] == ["00:00 EDT", "01:00 EDT", "01:00 EST"] and len(intervals) == 25
    assert "2026-11-01 00:00–2026-11-02 00:00 EST" in html


@time_machine.travel(NOW, tick=False)
def test_the_page_costs_the_same_queries_for_one_resource_or_many(make_resource, make_offer, as_role):
    def market_of(n: int) -> None:
        for _ in range(n):
            resource = make_resource(generators=1)
            make_offer(
                resource, TOMORROW, hours=24, state="draft", deadline=datetime(2026, 7, 15, 10, 30, tzinfo=NEW_YORK)
            )
            forecast_row(resource, issued_at=NOW - HOUR, start=NOW)

    client = as_role("operator")
    market_of(1)
    page(client)  # the session and the content types are loaded once
    with CaptureQueriesContext(connection) as one:
        page(client)
    market_of(6)
    with CaptureQueriesContext(connection) as seven:
        html = page(client)
    assert len(cells(section(html, "offers-heading"))) == 1 + 7
    assert len(seven) == len(one), [q["sql"][:120] for q in seven.captured_queries]


@time_machine.travel(NOW, tick=False)
def test_only_the_latest_version_of_each_window_is_listed(make_resource, make_offer, as_role):
    resource = make_resource()
    deadline = datetime(2026, 7, 15, 10, 30, tzinfo=NEW_YORK)
    make_offer(resource, TOMORROW, hours=24, state="superseded", deadline=deadline)
    latest = make_offer(resource, TOMORROW, hours=24, state="draft", version=2, deadline=deadline)
    make_offer(
        resource, TOMORROW - timedelta(days=2), hours=24, state="accepted", deadline=deadline - timedelta(days=2)
    )

    html = page(as_role("operator"))

    rows = cells(section(html, "offers-heading"))[1:]
    assert [(r[3], r[4]) for r in rows] == [("2", "draft")]  # the 14th's window ended before today began
    assert f"offer {latest.pk} version 2" in section(html, "offer-heading")
