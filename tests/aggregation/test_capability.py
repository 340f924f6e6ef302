"""The capability model over plain arrays: no database."""

import itertools
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from aggregator.aggregation import capability

NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 7, 15, 18, 0, tzinfo=UTC)  # 14:00 in New York, a July afternoon


def device(
    device_type="battery",
    *,
    rated_kw=5.0,
    energy_kwh=13.5,
    reserve=20.0,
    rte=None,
    max_event_hours=None,
    bidirectional=False,
    tz="America/New_York",
    online=None,
    last_seen=None,
    soc=None,
    plugged=None,
    ratio=None,
):
    return (
        1,
        device_type,
        rated_kw,
        energy_kwh,
        reserve,
        rte,
        max_event_hours,
        bidirectional,
        tz,
        online,
        last_seen,
        soc,
        plugged,
        ratio,
    )


def fleet(*rows):
    columns = list(zip(*rows))
    return capability.Fleet(
        device_id=np.arange(len(rows)),
        type_code=np.array([capability.TYPE_CODE[t] for t in columns[1]]),
        rated_kw=np.array(columns[2], dtype=float),
        energy_kwh=np.array(columns[3], dtype=float),
        backup_reserve_pct=np.array(columns[4], dtype=float),
        round_trip_efficiency_pct=np.array(columns[5], dtype=float),
        max_event_hours=np.array(columns[6], dtype=float),
        bidirectional=np.array(columns[7], dtype=bool),
        time_zone=np.array(columns[8], dtype=object),
        online=np.array(columns[9], dtype=float),
        last_seen_epoch=np.array([np.nan if v is None else v.timestamp() for v in columns[10]], dtype=float),
        state_of_charge_pct=np.array(columns[11], dtype=float),
        ev_plugged_in=np.array(columns[12], dtype=float),
        delivered_ratio=np.array(columns[13], dtype=float),
    )


def now_kw(*rows, event_hours=4.0, now=NOW):
    return capability.available_kw(fleet(*rows), now=now, instants=[now], event_hours=event_hours)[:, 0]


def test_battery_gives_its_energy_above_backup_reserve_over_the_event():
    kw = now_kw(device(soc=60, reserve=20, online=1, last_seen=NOW))
    assert kw[0] == pytest.approx(13.5 * 0.40 * 0.95 / 4)


def test_battery_capability_follows_state_of_charge():
    low, high = now_kw(device(soc=30), device(soc=80))
    assert low < high
    assert now_kw(device(soc=20, reserve=20))[0] == 0.0


def test_battery_is_capped_at_its_discharge_power_for_short_events():
    assert now_kw(device(soc=100), event_hours=0.5)[0] == 5.0


def test_battery_that_never_reported_is_planned_at_half_charge():
    assert now_kw(device(soc=None))[0] == pytest.approx(13.5 * (capability.PLANNING_SOC_PCT - 20) / 100 * 0.95 / 4)


def test_round_trip_efficiency_sets_the_discharge_loss():
    assert now_kw(device(soc=100, rte=81.0), event_hours=10)[0] == pytest.approx(13.5 * 0.8 * 0.9 / 10)


def test_thermostat_sheds_more_on_a_july_afternoon_than_a_january_night():
    january_night = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)  # 03:00 in New York
    thermostat = device("thermostat", rated_kw=3.0, energy_kwh=None, reserve=None, max_event_hours=4)
    july = now_kw(thermostat)[0]
    january = now_kw(thermostat, now=january_night)[0]
    assert july == pytest.approx(3.0 * 0.85 * 1.0)
    assert january == pytest.approx(3.0 * 0.35 * 0.4)


def test_thermostat_shed_shrinks_when_the_event_outlasts_its_limit():
    thermostat = device("thermostat", rated_kw=3.0, energy_kwh=None, reserve=None, max_event_hours=2)
    assert now_kw(thermostat, event_hours=4)[0] == pytest.approx(now_kw(thermostat, event_hours=2)[0] / 2)


def test_local_hour_comes_from_the_sites_time_zone():
    # 18:00 UTC is 14:00 in New York (peak factor 1.0) and 11:00 in Los Angeles (0.65).
    kw = now_kw(
        device("thermostat", rated_kw=3.0, energy_kwh=None, reserve=None, max_event_hours=4),
        device("thermostat", rated_kw=3.0, energy_kwh=None, reserve=None, max_event_hours=4, tz="America/Los_Angeles"),
    )
    assert kw[0] / kw[1] == pytest.approx(1.0 / 0.65)


def test_ev_charger_uses_the_reported_plug_state_now_and_the_profile_later():
    ev = {"rated_kw": 7.2, "energy_kwh": None, "reserve": None}
    instants = capability.hour_starts(NOW, 3)
    kw = capability.available_kw(
        fleet(device("ev_charger", plugged=0, **ev), device("ev_charger", plugged=1, bidirectional=True, **ev)),
        now=NOW,
        instants=instants,
        event_hours=2,
    )
    assert kw[0, 0] == 0.0 and kw[1, 0] == 7.2
    assert kw[0, 1] == pytest.approx(7.2 * capability.EV_CHARGING_HOUR[15])
    assert kw[1, 1] == pytest.approx(7.2 * capability.EV_PLUGGED_HOUR[15])


def test_offline_device_gives_nothing_now_but_counts_again_in_the_forecast():
    kw = capability.available_kw(
        fleet(
            device(
                "generator",
                rated_kw=100,
                energy_kwh=None,
                reserve=None,
                online=0,
                last_seen=NOW - timedelta(minutes=20),
            )
        ),
        now=NOW,
        instants=capability.hour_starts(NOW, 3),
        event_hours=4,
    )
    assert list(kw[0]) == [0.0, 100.0, 100.0]


def test_device_silent_for_a_day_gives_nothing_at_all():
    kw = capability.available_kw(
        fleet(
            device(
                "generator", rated_kw=100, energy_kwh=None, reserve=None, online=1, last_seen=NOW - timedelta(hours=25)
            )
        ),
        now=NOW,
        instants=capability.hour_starts(NOW, 3),
        event_hours=4,
    )
    assert not kw.any()


def test_observed_delivery_derates_and_is_never_an_uplift():
    kw = now_kw(
        device("generator", rated_kw=100, energy_kwh=None, reserve=None, ratio=0.8),
        device("generator", rated_kw=100, energy_kwh=None, reserve=None, ratio=1.3),
    )
    assert list(kw) == [80.0, 100.0]


def test_solar_is_not_counted_for_reduction():
    assert now_kw(device("solar_pv", rated_kw=8, energy_kwh=None, reserve=None))[0] == 0.0


def test_forecast_is_hourly_in_utc_through_the_fall_back_night():
    # 2026-11-01 in New York: 01:00 happens twice. The forecast steps by real hours.
    start = datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK)
    instants = capability.hour_starts(start, 48)
    assert len(instants) == 48 and all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(instants))
    local_hours = [t.astimezone(NEW_YORK).hour for t in instants[:4]]
    assert local_hours == [0, 1, 1, 2]
    thermostat = device("thermostat", rated_kw=3.0, energy_kwh=None, reserve=None, max_event_hours=4)
    kw = capability.available_kw(fleet(thermostat), now=start, instants=instants, event_hours=1)[0]
    assert kw[1] == kw[2] == pytest.approx(3.0 * capability.HVAC_MONTH[10] * capability.HVAC_HOUR[1])


def test_explanation_names_the_figures_behind_a_battery():
    f = fleet(device(soc=60, ratio=0.9))
    kw = capability.available_kw(f, now=NOW, instants=[NOW], event_hours=4)[:, 0]
    text = capability.explain(f, kw, 0)
    assert "state of charge 60%" in text and "20% reserve" in text and "90%" in text
    assert text.endswith(f"{kw[0]:.2f} kW")
    assert math.isclose(kw[0], 13.5 * 0.4 * 0.95 / 4 * 0.9)


def v2g_car(need_kwh: float, *, plugged=None):
    """A 7 kW bidirectional charger whose car is plugged from 18:00 and needs `need_kwh` by 07:00 (New York)."""
    f = fleet(device("ev_charger", rated_kw=7.0, energy_kwh=None, reserve=None, bidirectional=True, plugged=plugged))
    f.ev_plug_in_hour, f.ev_ready_by_hour, f.ev_need_kwh = np.array([18.0]), np.array([7.0]), np.array([need_kwh])
    return f


EVENING = datetime(2026, 7, 15, 20, 0, tzinfo=NEW_YORK)  # one hour's event, ten hours left to 07:00 after it


@pytest.mark.parametrize(
    ("need_kwh", "kw"),
    [
        (20.0, 7.0),  # 10 h x 7 kW = 70 kWh after the event: 50 to spare, rated 7 kW at most
        (66.5, 3.5),  # 3.5 kWh to spare over a one-hour event
        (70.0, 0.0),  # a car that must leave full: every hour left is needed for it
    ],
)
def test_a_v2g_car_gives_only_what_still_lets_it_leave_with_its_need(need_kwh, kw):
    later = capability.available_kw(v2g_car(need_kwh), now=NOW, instants=[EVENING], event_hours=1.0)
    assert later[0, 0] == pytest.approx(kw)
    # Now, plugged in, the same rule holds (not the plug state's rated kW).
    now = capability.available_kw(v2g_car(need_kwh, plugged=1.0), now=EVENING, instants=[EVENING], event_hours=1.0)
    assert now[0, 0] == pytest.approx(kw)


def test_a_v2g_car_away_from_its_session_gives_nothing():
    noon = datetime(2026, 7, 15, 12, 0, tzinfo=NEW_YORK)
    assert capability.available_kw(v2g_car(10.0), now=NOW, instants=[noon], event_hours=1.0)[0, 0] == 0.0
