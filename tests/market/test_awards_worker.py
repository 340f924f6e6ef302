"""An award to device commands with a real Celery worker on the real Redis broker (a queue of the test's own)."""

import pytest

from aggregator.market.models import Award
from dispatch.models import DeviceCommand
from tests.dispatch.test_dispatch_worker import celery_worker, dispatch_queue, wait_for  # noqa: F401 (fixtures)
from tests.market.conftest import HOUR, award_body, market_client, tomorrow_at


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_award_posted_by_the_market_reaches_the_devices_as_commands(make_resource, make_offer, celery_worker):
    offer = make_offer(make_resource(generators=4), tomorrow_at(0), hours=24)
    start = offer.window_start + 17 * HOUR
    body = award_body(offer, [(start, 120, 95), (start + HOUR, 60, 95)], award_id="DA-E2E")

    response = market_client().post("/api/inbound/v1/awards", body, format="json")

    assert response.status_code == 201, response.content
    event = Award.objects.get().event
    # Notified at once (the day before): the worker allocates and issues each device its schedule.
    commands = wait_for(
        lambda: list(DeviceCommand.objects.filter(event=event, kind="dispatch")),
        timeout=20,
        what="the award's event to reach devices as commands",
    )
    event.refresh_from_db()
    assert event.state == "notified" and event.external_ref == "DA-E2E"
    assert {c.not_before for c in commands} == {start}
    # Over-commit aside, the schedules add up to the award per hour: 120 kW, then 60 kW.
    per_hour = [sum(float(c.schedule[n]["kw"]) for c in commands) for n in (0, 1)]
    over = 1 + float(event.over_commit_pct) / 100
    assert per_hour[0] == pytest.approx(120 * over, abs=0.5) and per_hour[1] == pytest.approx(60 * over, abs=0.5)
