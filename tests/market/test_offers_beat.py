"""Beat's offer cycle at real instants around PJM's deadline for Monday 9 March 2026 (10:30 EDT on Sunday
8 March, 14:30Z, the day the clocks went forward): build 6 hours before, submit approved and auto-submit offers in
the last 30 minutes, expire the rest at the deadline."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings

from aggregator.market.models import MarketConnection, Offer
from aggregator.market.offers import services
from aggregator.market.tasks import offer_cycle
from tests.factories import market
from tests.market.offer_setup import forecast, program_with_terms, resource_with

pytestmark = pytest.mark.django_db

WINDOW_START = datetime(2026, 3, 9, 4, tzinfo=UTC)
DEADLINE = datetime(2026, 3, 8, 14, 30, tzinfo=UTC)
JOINED = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def resources(tmp_path):
    MarketConnection.objects.create(
        market=market("PJM"), adapter="file", directory=str(tmp_path), layout="spp-offer-curve-csv"
    )
    reviewed = resource_with(program_with_terms(), [{"rated_kw": Decimal("5")}], joined_at=JOINED)
    automatic = resource_with(
        program_with_terms(auto_submit_offers=True), [{"rated_kw": Decimal("5")}], joined_at=JOINED
    )
    for resource in (reviewed, automatic):
        forecast(resource, start=WINDOW_START, issued_at=DEADLINE - timedelta(hours=7), p10=4)
    return reviewed, automatic


def day_ahead(resource):
    return Offer.objects.filter(resource=resource, market_kind="day_ahead", window_start=WINDOW_START)


def test_the_cycle_builds_submits_and_expires_around_the_deadline(resources, tmp_path):
    reviewed, automatic = resources
    services.run_offer_cycle(now=DEADLINE - timedelta(hours=6, minutes=1))
    assert not Offer.objects.exists()  # outside the build lead

    summary = services.run_offer_cycle(now=DEADLINE - timedelta(hours=5))
    assert summary["built"] == 2
    assert [o.state for o in Offer.objects.order_by("resource_id")] == ["draft", "draft"]
    services.run_offer_cycle(now=DEADLINE - timedelta(hours=4))
    assert Offer.objects.count() == 2  # built once

    services.run_offer_cycle(now=DEADLINE - timedelta(minutes=31))
    assert day_ahead(automatic).get().state == "draft"  # not yet in the submission lead

    summary = services.run_offer_cycle(now=DEADLINE - timedelta(minutes=20))
    submitted = day_ahead(automatic).get()
    assert (summary["submitted"], submitted.state, submitted.approved_at) == (
        1,
        "submitted",
        DEADLINE - timedelta(minutes=20),
    )
    assert (tmp_path / submitted.submission_ref).is_file()
    assert day_ahead(reviewed).get().state == "draft"  # waits for an operator

    summary = services.run_offer_cycle(now=DEADLINE)
    assert summary["expired"] == 1
    assert day_ahead(reviewed).get().state == "expired"
    assert day_ahead(automatic).get().state == "submitted"


def test_an_operators_approval_is_submitted_by_the_cycle(resources):
    reviewed, _ = resources
    services.run_offer_cycle(now=DEADLINE - timedelta(hours=5))
    services.approve_offer(offer=day_ahead(reviewed).get(), by="op", now=DEADLINE - timedelta(hours=1))
    services.run_offer_cycle(now=DEADLINE - timedelta(minutes=29))
    assert day_ahead(reviewed).get().state == "submitted"


def test_beat_runs_the_cycle_every_minute_through_the_task(resources):
    assert settings.CELERY_BEAT_SCHEDULE["market-offer-cycle"] == {
        "task": "aggregator.market.tasks.offer_cycle",
        "schedule": 60,
    }
    with time_machine.travel(DEADLINE - timedelta(hours=5), tick=False):
        offer_cycle.apply().get()
    assert Offer.objects.count() == 2
