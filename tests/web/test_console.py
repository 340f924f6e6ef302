"""The operator console: every page behind a login and a role, an event created and cancelled from it, live figures."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from dispatch import services as dispatch
from dispatch.models import DispatchEvent
from tests.dispatch.conftest import make_resource, online  # noqa: F401  (the fixture)

PAGES = [
    "console:fleet",
    "console:resources",
    "console:events",
    "console:settlement",
    "console:market",
    "console:storm-watches",
    "console:health",
]


@pytest.fixture
def as_role(make_operator):
    def login(role):
        client = Client()
        client.force_login(make_operator(role))
        return client

    return login


@pytest.mark.parametrize("page", PAGES)
def test_each_page_needs_a_login_and_an_operator_role(page, as_role, django_user_model):
    assert Client().get(reverse(page)).status_code == 302  # to the login page
    nobody = Client()
    nobody.force_login(django_user_model.objects.create_user(username="no-role", password="x-not-used-x"))
    assert nobody.get(reverse(page)).status_code == 403
    response = as_role("analyst").get(reverse(page))
    assert response.status_code == 200 and b'<main id="main">' in response.content


def test_the_fleet_and_resource_pages_show_the_fleet(make_resource, as_role):
    resource = make_resource(generators=2)
    online(*[m.device for m in resource.memberships.all()])
    client = as_role("analyst")
    fleet = client.get(reverse("console:fleet")).content.decode()
    assert '<th scope="row">generator</th><td>2</td><td>0</td><td>2</td>' in fleet
    listed = client.get(reverse("console:resources")).content.decode()
    assert reverse("console:resource", args=[resource.pk]) in listed
    page = client.get(reverse("console:resource", args=[resource.pk])).content.decode()
    assert "<svg" in page and 'class="series-kw"' in page and page.count("<tr><td>") >= 2 + 48


def test_the_fleet_page_shows_the_latest_count_and_counts_again_on_request(make_resource, as_role, settings):
    """The page shows beat's latest count with its time (a million devices take seconds to count), so a device that
    came online since is not in it; "Count now" counts again; a count older than FLEET_COUNT_MAX_AGE_SECONDS (beat
    stopped) is counted again by the page itself."""
    from enrollment import services as enrollment
    from enrollment.models import DeviceStatus, FleetCount, Site, SiteState

    assert settings.CELERY_BEAT_SCHEDULE["count-fleet"]["task"] == "enrollment.tasks.count_fleet"
    resource = make_resource(generators=2)
    first, second = [m.device for m in resource.memberships.order_by("device_id")]
    online(first)
    counted = enrollment.count_fleet()
    online(second)
    client = as_role("analyst")
    page = client.get(reverse("console:fleet")).content.decode()
    assert '<th scope="row">generator</th><td>1</td><td>1</td><td>2</td>' in page
    assert f"Counted {counted.counted_at.astimezone(UTC):%a %-d %b %Y, %H:%M} UTC" in page

    assert client.post(reverse("console:fleet")).status_code == 302
    FleetCount.objects.update(counted_at=datetime.now(UTC) - timedelta(seconds=30))
    assert client.post(reverse("console:fleet")).status_code == 302
    page = client.get(reverse("console:fleet")).content.decode()
    assert '<th scope="row">generator</th><td>2</td><td>0</td><td>2</td>' in page
    assert FleetCount.objects.count() == 1  # the counts before the latest are gone

    DeviceStatus.objects.filter(device=first).update(online=False)
    Site.objects.filter(pk=first.site_id).update(latitude=40, longitude=-75)
    FleetCount.objects.update(
        counted_at=datetime.now(UTC) - timedelta(seconds=settings.FLEET_COUNT_MAX_AGE_SECONDS + 1)
    )
    page = client.get(reverse("console:fleet")).content.decode()
    assert '<th scope="row">generator</th><td>1</td><td>1</td><td>2</td>' in page
    # The map's site states were refreshed with that count, so the map's "as counted" time is true of them.
    assert list(SiteState.objects.values_list("site_id", "state")) == [(first.site_id, "offline")]


def test_an_operator_creates_an_event_bad_input_is_named_and_an_analyst_cannot(
    make_resource, as_role, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=2)
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    operator = as_role("operator")
    bad = operator.post(
        reverse("console:events"),
        {"resource": resource.pk, "start": "tomorrow", "end": start.isoformat(), "target_kw": "ten"},
    )
    assert (
        bad.status_code == 400
        and b"<strong>start</strong>" in bad.content
        and b"<strong>target_kw</strong>" in bad.content
    )
    refused = operator.post(
        reverse("console:events"),
        {
            "resource": resource.pk,
            "start": start.isoformat(),
            "end": (start - timedelta(hours=1)).isoformat(),
            "target_kw": "5",
        },
    )
    assert refused.status_code == 400 and not DispatchEvent.objects.exists()
    assert as_role("analyst").post(reverse("console:events"), {"resource": resource.pk}).status_code == 403

    with django_capture_on_commit_callbacks(execute=False):
        made = operator.post(
            reverse("console:events"),
            {
                "resource": resource.pk,
                "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(),
                "target_kw": "8",
            },
        )
    event = DispatchEvent.objects.get()
    assert made.status_code == 302 and made["Location"] == reverse("console:event", args=[event.pk])
    assert (event.start, event.source, str(event.intervals.get().target_kw)) == (start, "operator_test", "8.000")


def test_a_start_without_an_offset_is_read_in_the_resource_market_time(
    make_resource, as_role, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=1)  # PJM: America/New_York
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    with django_capture_on_commit_callbacks(execute=False):
        as_role("operator").post(
            reverse("console:events"),
            {"resource": resource.pk, "start": f"{day}T17:00", "end": f"{day}T18:00", "target_kw": "5"},
        )
    event = DispatchEvent.objects.get()
    from zoneinfo import ZoneInfo

    assert event.start == datetime(day.year, day.month, day.day, 17, tzinfo=ZoneInfo("America/New_York"))


def test_the_control_room_shows_target_allocated_and_delivered_live_and_cancels(
    make_resource, as_role, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=2)
    devices = [m.device for m in resource.memberships.order_by("device_id")]
    online(*devices)
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=False):
        event = dispatch.create_event(
            resource=resource,
            source="operator_test",
            start=now,
            end=start + timedelta(hours=2),
            target_kw=80,
            over_commit_pct=0,
            by="tester",
        )  # more than one 50 kW generator
        for chunk in dispatch.advance(event_id=event.pk, now=now):
            dispatch.issue_commands(
                event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3], now=now
            )
    first, second = list(event.commands.order_by("device_id"))
    interval = event.intervals.order_by("start").first().start
    dispatch.report_delivery(command=first, reports=[(interval, 4.5)])
    dispatch.opt_out(device_id=second.device_id, start=now, end=event.end, reason="Too hot today", event=event, now=now)

    operator = as_role("operator")
    live = operator.get(reverse("console:event", args=[event.pk]), {"part": "live"}).content.decode()
    assert live.startswith('<div id="live" data-refresh="?part=live"')
    assert "<td>4.5</td><td>1</td>" in live  # delivered kW and the devices reporting, in the first interval
    assert "Too hot today" in live and "opted_out" in live
    page = operator.get(reverse("console:event", args=[event.pk])).content.decode()
    assert 'class="series-target_kw"' in page and "Cancel the event" in page

    assert as_role("analyst").post(reverse("console:event", args=[event.pk]), {"action": "cancel"}).status_code == 403
    with django_capture_on_commit_callbacks(execute=False):
        done = operator.post(reverse("console:event", args=[event.pk]), {"action": "cancel", "reason": "Grid is fine"})
    assert done.status_code == 302
    event.refresh_from_db()
    assert event.state == "cancelled" and event.transitions.filter(reason="Grid is fine").exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_health_page_lists_the_workers_by_their_heartbeat_and_drops_a_stopped_one(as_role):
    """A real worker's heartbeats put it on the page; once it stops it is gone, and the page never waits on a ping."""
    import time

    from celery.contrib.testing.worker import start_worker

    from aggregator.celery import app
    from tests.rabbitmq import wake_often

    client = as_role("analyst")
    with start_worker(
        app,
        pool="threads",
        concurrency=1,
        perform_ping_check=False,
        shutdown_timeout=10,
        without_heartbeat=False,
        hostname="health-test@console",
    ) as worker:
        wake_often(worker)
        deadline = time.monotonic() + 10
        while b"health-test@console" not in (page := client.get(reverse("console:health")).content):
            assert time.monotonic() < deadline, "the worker's heartbeat never reached the health page"
            time.sleep(0.2)
        assert b"alive:" in page
    started = time.perf_counter()
    page = client.get(reverse("console:health")).content
    assert time.perf_counter() - started < 0.5
    assert b"health-test@console" not in page


def test_an_operator_declares_and_cancels_a_storm_watch_from_the_console(make_resource, as_role):
    from dispatch.models import StormWatch

    resource = make_resource(generators=2)
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)
    form = {
        "market": "PJM",
        "zone": "",
        "pricing_nodes": "PECO_N001",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=10)).isoformat(),
        "reason": "Hurricane",
    }
    operator = as_role("operator")
    assert as_role("analyst").post(reverse("console:storm-watches"), form).status_code == 403
    bad = operator.post(reverse("console:storm-watches"), {**form, "pricing_nodes": "", "end": "soon"})
    assert bad.status_code == 400 and b"<strong>end</strong>" in bad.content and not StormWatch.objects.exists()
    assert operator.post(reverse("console:storm-watches"), form).status_code == 302
    watch = StormWatch.objects.get()
    assert watch.devices == resource.memberships.count() and watch.pricing_nodes == ["PECO_N001"]
    page = operator.get(reverse("console:storm-watches")).content.decode()
    assert "Hurricane" in page and "in force" in page
    assert operator.post(reverse("console:storm-watches"), {"cancel": watch.pk}).status_code == 302
    watch.refresh_from_db()
    assert watch.cancelled_at is not None
