"""Dispatchable resources for the dispatch tests: active devices, current members, a registered resource."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from aggregator.aggregation import services as aggregation
from aggregator.aggregation.models import ResourceMembership, VirtualResource
from enrollment.models import DeviceStatus
from tests.factories import GENERATOR, active_device


@pytest.fixture
def make_resource(program):
    """make_resource(devices=[...] | generators=n, state="registered") -> VirtualResource with those members."""

    def make(*, devices=None, generators: int = 0, state: str = "registered", name: str | None = None, **device_kwargs):
        devices = list(devices or []) + [
            active_device(program, **{**GENERATOR, **device_kwargs}) for _ in range(generators)
        ]
        resource = aggregation.create_resource(
            market=program.market,
            program=program,
            name=name or f"vr-{len(devices)}-{id(devices)}",
            scope_kind="pricing_node",
            scope="PECO_N001",
            by="test",
        )
        ResourceMembership.objects.bulk_create(ResourceMembership(resource=resource, device=d) for d in devices)
        VirtualResource.objects.filter(pk=resource.pk).update(state=state, market_resource_id=f"PJM-{resource.pk}")
        resource.refresh_from_db()
        return resource

    return make


def online(*devices, soc=None, at=None):
    """Heartbeat statuses: the devices are online now."""
    for device in devices:
        DeviceStatus.objects.update_or_create(
            device=device,
            defaults={"online": True, "last_seen_at": at or datetime.now(UTC), "state_of_charge_pct": soc},
        )


def commands_of(event):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT device_id, count(*) FROM dispatch_devicecommand WHERE event_id = %s GROUP BY device_id", [event.pk]
        )
        return dict(cursor.fetchall())


def queued(callbacks) -> list:
    """The on-commit callbacks that queue work (tasks, messages), leaving out the poll cache's marks."""
    return [c for c in callbacks if c.__module__ != "dispatch.poll_cache"]


def task_of(callback) -> str | None:
    """The Celery task an on-commit callback queues (dispatch.jobs.Job names it), else None."""
    return getattr(callback, "task", None)


def next_dst_day(zone: ZoneInfo, *, spring: bool) -> date:
    """The next day after today (in `zone`) on which the clocks go forward (spring) or back: an event at its
    midnight is still to come whenever the suite runs (fixed DST dates are in the past a few months later)."""
    day = datetime.now(zone).date() + timedelta(days=1)
    for _ in range(400):
        before = datetime.combine(day, time(0), zone).utcoffset()
        after = datetime.combine(day + timedelta(days=1), time(0), zone).utcoffset()
        if before != after and (after > before) == spring:
            return day
        day += timedelta(days=1)
    raise AssertionError(f"{zone} changes no clocks in the coming year")
