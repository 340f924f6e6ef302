"""Settling an event from the console: a real worker settles it, the progress bar reaches done, then the statement."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from settlement.models import SettlementRun
from tests.dispatch.conftest import make_resource  # noqa: F401  (the fixture)
from tests.settlement.test_settlement_runs import ended_event, post_site_readings, prices  # noqa: F401


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_operator_settles_an_event_and_the_bar_reaches_done(
    ended_event, device_client, tmp_path, make_operator, celery_worker
):
    event = ended_event
    site_a, site_b = [m.device for m in event.resource.memberships.order_by("device_id")]
    post_site_readings(device_client, site_a, event.start - timedelta(hours=3), [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, event.start - timedelta(hours=3), [6, 6, 6, 6, 2])
    prices(tmp_path, event)
    client = Client()
    client.force_login(make_operator("operator"))
    assert "Settle now" in client.get(reverse("console:event", args=[event.pk])).content.decode()
    response = client.post(reverse("console:settle", args=[event.pk]))
    assert response.status_code == 302
    for _ in range(200):
        bar = client.get(response.url, {"part": "progress"}).content.decode()
        if "data-refresh" not in bar:
            break
        time.sleep(0.1)
    run = SettlementRun.objects.get(event=event)
    assert 'value="100"' in bar and "Done" in bar
    assert reverse("console:statement", args=[run.pk]) in bar and f"settled {run.sites} sites" in bar


def test_an_analyst_cannot_settle(ended_event, make_operator):
    client = Client()
    client.force_login(make_operator("analyst"))
    assert "Settle now" not in client.get(reverse("console:event", args=[ended_event.pk])).content.decode()
    assert client.post(reverse("console:settle", args=[ended_event.pk])).status_code == 403


def test_an_event_cancelled_while_it_ran_can_be_settled_one_cancelled_before_it_started_cannot(
    ended_event, make_operator
):
    from dispatch.models import DispatchEvent, EventTransition

    client = Client()
    client.force_login(make_operator("operator"))
    page = reverse("console:event", args=[ended_event.pk])
    DispatchEvent.objects.filter(pk=ended_event.pk).update(state="cancelled")
    stop = EventTransition.objects.create(
        event=ended_event,
        action="cancel",
        from_state="active",
        to_state="cancelled",
        at=ended_event.start + timedelta(hours=1),
        actor_label="tester",
    )
    assert "Settle now" in client.get(page).content.decode()
    EventTransition.objects.filter(pk=stop.pk).update(from_state="scheduled", at=ended_event.start - timedelta(hours=1))
    assert "Settle now" not in client.get(page).content.decode()


def test_the_statement_chart_carries_its_series_for_hover_and_zoom(ended_event, device_client, tmp_path, make_operator):
    import html
    import json

    from settlement import services

    event = ended_event
    site_a, site_b = [m.device for m in event.resource.memberships.order_by("device_id")]
    post_site_readings(device_client, site_a, event.start - timedelta(hours=3), [10, 10, 10, 4, 5])
    post_site_readings(device_client, site_b, event.start - timedelta(hours=3), [6, 6, 6, 6, 2])
    prices(tmp_path, event)
    run = services.settle_event(event=event, by="analyst")
    client = Client()
    client.force_login(make_operator("analyst"))
    page = client.get(reverse("console:statement", args=[run.pk])).content.decode()
    assert "uPlot.iife.min.js" in page and "<svg" in page  # the SVG stays for readers without scripts
    spec = json.loads(html.unescape(page.split('data-chart="', 1)[1].split('"', 1)[0]))
    series = {s["label"]: s["values"] for s in spec["series"]}
    # A + B: baselines 10 + 6, actuals 4 + 6 then 5 + 2 (meter before, meter after); the target 10 kW under it.
    assert series["Baseline"] == [16.0, 16.0] and series["Actual"] == [10.0, 7.0]
    assert series["Baseline − target"] == [6.0, 6.0] and spec["t"] == [
        int(event.start.timestamp()),
        int(event.start.timestamp()) + 3600,
    ]
