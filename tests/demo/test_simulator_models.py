"""The simulated devices' behaviour: what the demo's story relies on (pure; no database)."""

import itertools
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from aggregator.demo.simulator import behaviour

NEW_YORK = ZoneInfo("America/New_York")


def device(kind: str, seed: int = 7, **kw) -> behaviour.DeviceModel:
    defaults = {"rated_kw": 5.0, "energy_kwh": 13.5, "backup_reserve_pct": 20.0}
    return behaviour.DeviceModel(
        device_id=seed, device_type=kind, time_zone="America/New_York", latitude=40.0, seed=seed, **{**defaults, **kw}
    )


def test_the_same_seed_tells_the_same_story_in_another_process():
    here = behaviour.site_load_kw(site_seed=11, commercial=False, local=datetime(2026, 7, 15, 19, tzinfo=NEW_YORK))
    code = (
        "from datetime import datetime; from zoneinfo import ZoneInfo; from aggregator.demo.simulator import behaviour; "
        "print(repr(behaviour.site_load_kw(site_seed=11, commercial=False, "
        "local=datetime(2026, 7, 15, 19, tzinfo=ZoneInfo('America/New_York')))))"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert repr(here) == there  # the seed and the simulator agree though str hashing differs per process
    other = behaviour.site_load_kw(site_seed=12, commercial=False, local=datetime(2026, 7, 15, 19, tzinfo=NEW_YORK))
    assert other != here


def test_weather_and_load_shapes():
    july_afternoon = behaviour.outdoor_temp_c(40, datetime(2026, 7, 15, 15, tzinfo=NEW_YORK))
    january_night = behaviour.outdoor_temp_c(40, datetime(2026, 1, 15, 5, tzinfo=NEW_YORK))
    assert july_afternoon > 28 and january_night < 2
    home = [
        behaviour.site_load_kw(site_seed=3, commercial=False, local=datetime(2026, 4, 15, h, tzinfo=NEW_YORK))
        for h in (3, 19)
    ]
    assert home[1] > 2 * home[0]
    office_weekday = behaviour.site_load_kw(
        site_seed=3, commercial=True, local=datetime(2026, 4, 15, 12, tzinfo=NEW_YORK)
    )
    office_sunday = behaviour.site_load_kw(
        site_seed=3, commercial=True, local=datetime(2026, 4, 19, 12, tzinfo=NEW_YORK)
    )
    assert office_weekday > 3 * office_sunday


def test_a_battery_drains_to_its_reserve_and_no_further():
    battery = device("battery")
    battery.online = lambda now: True
    now = datetime(2026, 7, 15, 14, tzinfo=UTC)
    delivered = []
    for minute in range(0, 6 * 60, 5):
        delivered.append(battery.step(now + timedelta(minutes=minute), 300, 5.0))
    assert 20.0 <= battery.soc_pct < 20.6 and delivered[0] > 4 and delivered[-1] < 0.1
    assert all(d <= 5.0 for d in delivered)
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(delivered))  # no recharging mid-event


def test_a_thermostat_sheds_more_on_a_hot_afternoon_and_nothing_on_a_mild_one():
    thermostat = device("thermostat", rated_kw=3.5)
    thermostat.online = lambda now: True
    hot = thermostat.capability_kw(datetime(2026, 7, 15, 15, tzinfo=NEW_YORK))
    warm = thermostat.capability_kw(datetime(2026, 6, 1, 11, tzinfo=NEW_YORK))
    mild = thermostat.capability_kw(datetime(2026, 4, 20, 10, tzinfo=NEW_YORK))
    assert hot > warm >= 0 and mild == 0


def test_an_ev_charger_is_plugged_in_at_night_and_can_only_shed_its_charging():
    charger = device("ev_charger", rated_kw=7.2)
    charger.online = lambda now: True
    night = datetime(2026, 7, 15, 22, tzinfo=NEW_YORK)
    assert charger.plugged_in(night) is True
    unplugged = datetime(2026, 7, 18, 12, tzinfo=NEW_YORK)  # a Saturday noon
    assert charger.plugged_in(unplugged) is False and charger.capability_kw(unplugged) == 0


def test_shares_offline_and_opting_out_and_delivery_bounds():
    fleet = [device("generator", seed=s, rated_kw=50) for s in range(2000)]
    now = datetime(2026, 7, 15, 18, tzinfo=UTC)
    offline = sum(not d.online(now) for d in fleet) / len(fleet)
    opting = sum(d.opts_out("event-1") for d in fleet) / len(fleet)
    assert 0.02 < offline < 0.09 and 0.02 < opting < 0.09
    for d in fleet[:200]:
        got = d.step(now, 60, 30.0)
        assert (got == 0) if not d.online(now) else (0 < got <= 30.0)


@pytest.mark.parametrize("day, readings", [((2026, 3, 8), 23), ((2026, 11, 1), 25), ((2026, 7, 15), 24)])
def test_meter_history_covers_each_local_day_including_the_dst_days(day, readings):
    start = datetime(*day, tzinfo=NEW_YORK)
    end = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), NEW_YORK)
    history = behaviour.history_kwh(
        site_seed=5,
        commercial=False,
        devices=[device("thermostat")],
        time_zone="America/New_York",
        start=start,
        end=end,
    )
    assert len(history) == readings and all(kwh > 0 for _, kwh in history)
    assert [at for at, _ in history] == sorted(at for at, _ in history)
    with pytest.raises(ValueError):
        behaviour.history_kwh(
            site_seed=5,
            commercial=False,
            devices=[],
            time_zone="America/New_York",
            start=start + timedelta(minutes=30),
            end=end,
        )
