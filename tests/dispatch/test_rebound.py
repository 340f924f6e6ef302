"""Rebound after an event: the payback shape, restores staggered to keep a resource's peak within its program's
limit, carried to the devices' commands, and shown on the event page."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
import time_machine

from dispatch import rebound, services
from dispatch.models import Allocation, AllocationRound, DeviceCommand
from tests.dispatch.conftest import online
from tests.factories import active_device


def test_the_payback_shape_returns_the_share_of_the_shed_energy():
    shape = rebound.triangle(60)
    assert shape.sum() / 60 == pytest.approx(1.0)  # one kWh back per kWh of payback
    assert shape[0] == pytest.approx(60 / 30.5) and shape[-1] == pytest.approx(60 / 30.5 / 60)
    result = rebound.expected(np.full(10, 1.0), share=0.8, minutes=60)
    assert result.kw.sum() / 60 == pytest.approx(8.0)  # 80% of 10 kWh
    assert result.peak_kw == pytest.approx(8 * 60 / 30.5) and (result.offset_minutes == 0).all()


def test_restores_are_staggered_as_little_as_keeps_the_peak_within_the_limit():
    shed = np.full(12, 1.0)  # unstaggered: 12 x 1.967 = 23.6 kW at once
    result = rebound.expected(shed, share=1.0, minutes=60, limit_kw=16.0)
    assert result.unstaggered_peak_kw == pytest.approx(12 * 60 / 30.5)
    assert result.within_limit and result.peak_kw <= 16.0 + 1e-9
    assert result.kw.sum() / 60 == pytest.approx(12.0)  # staggering moves the energy, never loses it
    groups = sorted(set(result.offset_minutes.tolist()))
    assert groups == [5 * g for g in range(len(groups))] and len(groups) > 1
    # One group fewer would break the limit: the stagger is the least that works.
    fewer = rebound._profile(rebound._per_group(shed, len(groups) - 1), rebound.triangle(60), 120)
    assert fewer.max() > 16.0
    # A limit no stagger can meet: the widest is used and it says so.
    assert not rebound.expected(shed, share=1.0, minutes=60, limit_kw=0.5).within_limit


def test_the_most_shed_energy_a_limit_allows_is_the_widest_staggers_even_split():
    """13 groups 5 minutes apart, each 1/13 of the payback on a 60-minute triangle (60/30.5 kW per kWh at first):
    the peak, 55 minutes in, is (1 + 55/60 + ... + 5/60) x 60/30.5 / 13 = 6.5 x 1.967 / 13 = 0.9836 kW per kWh."""
    assert rebound.max_shed_kwh(limit_kw=12, share=1.0, minutes=60) == pytest.approx(12 / (6.5 * 60 / 30.5 / 13))
    assert rebound.max_shed_kwh(limit_kw=12, share=0.5, minutes=60) == pytest.approx(24.4)
    # At exactly that much, 13 equal devices staggered peak at the limit.
    shed = np.full(13, rebound.max_shed_kwh(limit_kw=12, share=1.0, minutes=60) / 13)
    assert rebound.expected(shed, share=1.0, minutes=60, limit_kw=12).peak_kw == pytest.approx(12)


THERMOSTAT = {
    "device_type": "thermostat",
    "rated_kw": Decimal("4"),
    "max_setpoint_offset_f": Decimal("4"),
    "max_event_hours": Decimal("4"),
    "charge_kw": None,
    "energy_kwh": None,
    "backup_reserve_pct": None,
}


def _afternoon() -> datetime:
    """The coming 17:00 UTC (midday on the resources' clocks): thermostats and water heaters offer kW by the hour
    of their day, so these tests fix the hour instead of taking whatever hour the suite runs at."""
    now = datetime.now(UTC)
    at = now.replace(hour=17, minute=0, second=0, microsecond=0)
    return at if at > now else at + timedelta(days=1)


@time_machine.travel(_afternoon(), tick=True)
def test_a_programs_rebound_limit_staggers_the_devices_restores(program, make_resource, client, make_operator):
    program.rebound_pct, program.rebound_minutes, program.rebound_limit_kw = Decimal("100"), 60, Decimal("12")
    program.save()
    devices = [active_device(program, **THERMOSTAT) for _ in range(8)]
    online(*devices)
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=5)
    event = services.create_event(
        resource=make_resource(devices=devices),
        source="operator_test",
        start=start,
        end=start + timedelta(hours=1),
        target_kw=8,
        over_commit_pct=0,
        by="tester",
    )
    for chunk in services.advance(event_id=event.pk):
        services.issue_commands(event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3])
    round_ = AllocationRound.objects.get(event=event)
    assert round_.rebound_within_limit and max(round_.rebound_kw) <= 12 + 1e-6  # 15.7 kW unstaggered
    offsets = dict(Allocation.objects.filter(event=event).values_list("device_id", "restore_offset_seconds"))
    assert len(set(offsets.values())) > 1 and min(offsets.values()) == 0
    for command in DeviceCommand.objects.filter(event=event):
        held = timedelta(seconds=offsets[command.device_id])
        assert command.expires_at == event.end + held
        assert datetime.fromisoformat(command.schedule[-1]["end"]) == event.end + held
    client.force_login(make_operator("analyst"))
    page = client.get(f"/console/events/{event.pk}/").content.decode()
    assert "Expected rebound" in page and "staggered" in page and "Within" in page


@time_machine.travel(_afternoon(), tick=True)
def test_a_limit_no_stagger_can_meet_holds_thermostats_back_and_the_need_passes_to_devices_that_do_not_rebound(
    program, make_resource
):
    """A 4 kW rebound limit at 100% payback over 60 minutes lets the thermostats shed at most 4 / 0.9836 = 4.07 kWh
    in all (spread evenly over the widest stagger); unlimited they would shed the whole 8 kWh (a 7.9 kW peak even
    at the widest stagger). Thermostats give whole kW (1.19 each), so only a few shed and they cannot spread over
    13 groups: allocation holds back until the real stagger's peak is within 4 kW. The rest of the target goes to
    controllable loads (1 kW each, ranked after the thermostats), which do not rebound; the thermostats held back
    say why."""
    program.rebound_pct, program.rebound_minutes, program.rebound_limit_kw = Decimal("100"), 60, Decimal("4")
    program.save()
    thermostats = [active_device(program, **THERMOSTAT) for _ in range(8)]
    loads = [
        active_device(
            program,
            device_type="controllable_load",
            rated_kw=Decimal("1"),
            max_event_hours=Decimal("4"),
            charge_kw=None,
            energy_kwh=None,
            backup_reserve_pct=None,
        )
        for _ in range(6)
    ]
    online(*thermostats, *loads)
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=5)
    event = services.create_event(
        resource=make_resource(devices=[*thermostats, *loads]),
        source="operator_test",
        start=start,
        end=start + timedelta(hours=1),
        target_kw=8,
        over_commit_pct=0,
        by="tester",
    )
    services.advance(event_id=event.pk)
    allocations = {a.device_id: a for a in Allocation.objects.filter(event=event)}
    shed = sum(sum(allocations[d.pk].kw) for d in thermostats)  # one one-hour interval: kW = kWh
    assert 1.0 < shed <= rebound.max_shed_kwh(limit_kw=4, share=1.0, minutes=60) + 1e-6
    assert sum(sum(allocations[d.pk].kw) for d in loads) == pytest.approx(8 - shed, abs=0.02)
    round_ = AllocationRound.objects.get(event=event)
    assert sum(round_.allocated_kw) == pytest.approx(8, abs=0.02)
    # Within the limit, and close to it: the thermostats are held back no more than the limit needs.
    assert round_.rebound_within_limit and 3.6 < max(round_.rebound_kw) <= 4 + 1e-6
    held = [allocations[d.pk] for d in thermostats if not allocations[d.pk].kw or max(allocations[d.pk].kw) == 0]
    assert held and {a.reason for a in held} == {"rebound_limit"}
