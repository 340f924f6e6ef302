"""Battery schedules as linear programs: optimal on a case small enough to enumerate, better than idling and than a
fixed charge-at-night / discharge-at-peak rule on a realistic day, and never below the backup reserve."""

import itertools
from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from dispatch.schedules import day_starts
from dispatch.site_plan import Battery, Demand, SiteDay, day_cost, plan_batch


def simulate(battery: Battery, kw, step_hours: float) -> list[float]:
    """The state of energy after each interval when the battery follows `kw` (+ discharge)."""
    eff, energy, out = battery.round_trip**0.5, battery.soc_kwh, []
    for value in kw:
        energy += -value * step_hours / eff if value > 0 else -value * step_hours * eff
        out.append(energy)
    return out


def test_the_plan_matches_the_brute_force_optimum_of_a_tiny_day():
    battery = Battery(power_kw=1, charge_kw=1, energy_kwh=2, reserve_kwh=0.5, soc_kwh=0.5, round_trip=1.0)
    day = SiteDay(
        load_kw=np.array([2.0, 1.0, 3.0, 1.0]),
        import_price=np.array([0.10, 0.10, 0.40, 0.20]),
        export_credit=np.full(4, 0.05),
        step_hours=1.0,
        batteries=[battery],
        demand=[Demand(price_per_kw=0.10, window=np.ones(4, bool))],
    )
    plan = plan_batch([day])[0]
    best = None
    for actions in itertools.product([-1.0, -0.5, 0.0, 0.5, 1.0], repeat=4):
        energies = simulate(battery, actions, 1.0)
        if (
            min(energies) < battery.reserve_kwh - 1e-9
            or max(energies) > battery.energy_kwh + 1e-9
            or energies[-1] < battery.soc_kwh - 1e-9
        ):
            continue
        cost = day_cost(day, np.array(actions))
        best = cost if best is None else min(best, cost)
    assert best == pytest.approx(1.60)  # 2.00 idle: charge 1 kWh at 0.10, serve the 0.40 hour, and cut the peak by 1 kW
    assert plan.cost == pytest.approx(best, abs=1e-9)
    assert day_cost(day, plan.battery_kw[0]) == pytest.approx(plan.cost, abs=1e-9)


def realistic_day() -> tuple[SiteDay, Battery]:
    """15-minute intervals: an evening peak priced 0.42 from 16:00 to 21:00 on a 0.11 day, solar at midday,
    a demand charge of 12/kW on the peak window with the month's peak so far at 3 kW."""
    hours = np.arange(96) / 4
    load = 0.6 + 0.4 * np.sin(np.pi * (hours - 6) / 12) ** 2 + np.where((hours >= 17) & (hours < 21), 2.5, 0.0)
    solar = np.clip(np.sin(np.pi * (hours - 6) / 12), 0, None) * 3.0
    peak = (hours >= 16) & (hours < 21)
    battery = Battery(power_kw=5, charge_kw=5, energy_kwh=13.5, reserve_kwh=2.7, soc_kwh=4.0, round_trip=0.9)
    day = SiteDay(
        load_kw=load - solar,
        import_price=np.where(peak, 0.42, 0.11),
        export_credit=np.full(96, 0.04),
        step_hours=0.25,
        batteries=[battery],
        demand=[Demand(12.0, peak, floor_kw=3.0)],
    )
    return day, battery


def test_the_plan_beats_idling_and_a_fixed_schedule_and_keeps_the_reserve():
    day, battery = realistic_day()
    plan = plan_batch([day])[0]
    kw = plan.battery_kw[0]
    idle = day_cost(day, np.zeros(96))
    # The fixed rule: charge at full rate from 01:00 until full, discharge at full rate from 16:00 down to the reserve.
    fixed, energy = np.zeros(96), battery.soc_kwh
    for t in range(96):
        hour = t / 4
        if 1 <= hour < 6 and energy < battery.energy_kwh:
            fixed[t] = -min(battery.charge_kw, (battery.energy_kwh - energy) / (0.25 * 0.9**0.5))
        elif 16 <= hour < 21 and energy > battery.reserve_kwh:
            fixed[t] = min(battery.power_kw, (energy - battery.reserve_kwh) * 0.9**0.5 / 0.25)
        energy = simulate(Battery(**{**battery.__dict__, "soc_kwh": energy}), [fixed[t]], 0.25)[0]
    assert min(simulate(battery, fixed, 0.25)) >= battery.reserve_kwh - 1e-9  # the fixed rule is a fair rival
    assert day_cost(day, kw) == pytest.approx(plan.cost, abs=1e-6)
    assert plan.cost < day_cost(day, fixed) < idle
    energies = simulate(battery, kw, 0.25)
    assert min(energies) >= battery.reserve_kwh - 1e-6 and max(energies) <= battery.energy_kwh + 1e-6
    assert np.allclose(energies, plan.energy_kwh[0], atol=1e-6)
    assert kw.max() <= battery.power_kw + 1e-9 and kw.min() >= -battery.charge_kw - 1e-9
    assert energies[-1] >= battery.soc_kwh - 1e-6  # tomorrow is not sold


def test_a_battery_found_below_its_reserve_only_climbs_back():
    day, battery = realistic_day()
    battery.soc_kwh = 1.0  # below the 2.7 kWh reserve (an outage drained it)
    energies = plan_batch([day])[0].energy_kwh[0]
    assert all(
        later >= earlier - 1e-6 for earlier, later in itertools.pairwise(energies) if earlier < battery.reserve_kwh
    )
    assert energies.min() >= 1.0 - 1e-6 and energies[-1] >= battery.reserve_kwh - 1e-6


def test_several_sites_in_one_program_are_each_planned_as_if_alone():
    day, _ = realistic_day()
    other = SiteDay(
        load_kw=day.load_kw * 1.5,
        import_price=day.import_price,
        export_credit=day.export_credit,
        step_hours=0.25,
        batteries=[Battery(10, 5, 20, 4, 10, 0.88), Battery(5, 5, 13.5, 2.7, 5, 0.9)],
        demand=[],
    )
    together = plan_batch([day, other])
    alone = [plan_batch([day])[0], plan_batch([other])[0]]
    assert [p.cost for p in together] == pytest.approx([p.cost for p in alone], abs=1e-6)


@pytest.mark.parametrize(("day", "count"), [(date(2026, 3, 8), 92), (date(2026, 11, 1), 100), (date(2026, 7, 15), 96)])
def test_a_local_day_has_its_true_number_of_quarter_hours(day, count):
    starts = day_starts(day, ZoneInfo("America/Los_Angeles"))
    assert len(starts) == count
    assert all((b - a).total_seconds() == 900 for a, b in itertools.pairwise(starts))


def test_an_ev_charges_what_it_owes_in_its_windows_at_the_cheapest_hours():
    from dispatch.schedules import _unmanaged
    from dispatch.site_plan import Ev

    hours = np.arange(96) / 4
    price = np.where((hours >= 16) & (hours < 21), 0.40, np.where(hours < 6, 0.08, 0.15))
    ev = Ev(
        power_kw=7.2, morning=hours < 7, evening=hours >= 18, morning_kwh=20.0, evening_kwh=4.0, evening_max_kwh=30.0
    )
    day = SiteDay(
        load_kw=np.full(96, 1.0),
        import_price=price,
        export_credit=np.zeros(96),
        step_hours=0.25,
        batteries=[],
        evs=[ev],
        demand=[],
    )
    plan = plan_batch([day])[0]
    kw = plan.ev_kw[0]
    assert kw.min() >= -1e-9 and kw.max() <= 7.2 + 1e-9
    assert np.all(kw[~(ev.morning | ev.evening)] < 1e-9)  # never while unplugged
    assert (kw[ev.morning] * 0.25).sum() == pytest.approx(20.0, abs=1e-6)  # this morning's debt, all of it
    assert (kw[ev.evening] * 0.25).sum() == pytest.approx(4.0, abs=1e-6)  # tonight only what tomorrow cannot fit
    assert np.all(kw[(hours >= 6) & (hours < 7)] < 1e-9)  # 20 kWh fit in the 0.08 hours before 06:00
    unmanaged = _unmanaged(ev, 0.25)
    assert plan.cost < day_cost(day, np.zeros(96), unmanaged)
    assert day_cost(day, np.zeros(96), kw) == pytest.approx(plan.cost, abs=1e-6)


def test_an_export_credit_above_the_import_price_is_bounded_and_never_imports_and_exports_at_once():
    """Where exporting pays more than importing costs, an LP with import and export as free variables imports and
    exports without limit at once (unbounded). The meter sees one net flow: the plan either imports or exports in
    each interval. Hand-checked: 1 kW load both hours, a 2 kW / 2 kWh battery starting full that must end full, a
    0.5 kWh reserve, export credit 0.30 > import price 0.10 in hour 1. Discharging d kWh in hour 1 and putting it
    back in hour 2 costs 0.20 for d <= 1 and 0.40 - 0.20 d beyond (the excess exported at 0.30): best at the
    reserve, d = 1.5, for 0.10 (-0.15 credit for 0.5 kW exported, 0.25 for 2.5 kW imported)."""
    battery = Battery(power_kw=2, charge_kw=2, energy_kwh=2, reserve_kwh=0.5, soc_kwh=2.0, round_trip=1.0)
    day = SiteDay(
        load_kw=np.array([1.0, 1.0]),
        import_price=np.array([0.10, 0.10]),
        export_credit=np.array([0.30, 0.05]),
        step_hours=1.0,
        batteries=[battery],
    )
    plan = plan_batch([day])[0]
    assert plan.cost == pytest.approx(0.10, abs=1e-9)
    assert np.all(np.minimum(plan.import_kw, plan.export_kw) <= 1e-9)
    assert plan.cost == pytest.approx(day_cost(day, plan.battery_kw[0]), abs=1e-9)
    # Brute force over the battery's output: the plan is the best net-metered day.
    best = None
    for actions in itertools.product(np.linspace(-2, 2, 41), repeat=2):
        energies = simulate(battery, actions, 1.0)
        if min(energies) < 0.5 - 1e-9 or max(energies) > 2 + 1e-9 or energies[-1] < 2.0 - 1e-9:
            continue
        cost = day_cost(day, np.array(actions))
        best = cost if best is None else min(best, cost)
    assert plan.cost == pytest.approx(best, abs=1e-6)


def test_a_day_that_cannot_be_planned_fails_alone_not_its_batch():
    """An EV owed more than its charger can give in its window has no plan; the sites solved beside it keep theirs."""
    from dispatch.site_plan import Ev, PlanFailed, plan_each

    good = realistic_day()[0]
    hours = np.arange(96) / 4
    impossible = SiteDay(
        load_kw=np.ones(96),
        import_price=np.full(96, 0.1),
        export_credit=np.zeros(96),
        step_hours=0.25,
        batteries=[],
        evs=[Ev(7.0, hours < 1, hours >= 23, morning_kwh=0.0, evening_kwh=43.0, evening_max_kwh=50.0)],
    )
    with pytest.raises(PlanFailed):
        plan_batch([good, impossible])
    plans = plan_each([good] * 3 + [impossible] + [good] * 16)
    assert len(plans) == 20 and isinstance(plans[3], PlanFailed) and "infeasible" in str(plans[3]).lower()
    assert all(p.cost == pytest.approx(plan_batch([good])[0].cost) for i, p in enumerate(plans) if i != 3)


def test_a_tariff_that_lets_no_stored_energy_be_exported_keeps_the_battery_behind_the_meter():
    """The same day as the export-credit case above, under a storage integrity rule: discharging only offsets the
    site's own 1 kW, so nothing is gained by cycling (0.20 either way) and nothing is exported."""
    battery = Battery(power_kw=2, charge_kw=2, energy_kwh=2, reserve_kwh=0.5, soc_kwh=2.0, round_trip=1.0)
    day = SiteDay(
        load_kw=np.array([1.0, 1.0]),
        import_price=np.array([0.10, 0.10]),
        export_credit=np.array([0.30, 0.05]),
        step_hours=1.0,
        batteries=[battery],
        storage_may_export=False,
    )
    plan = plan_batch([day])[0]
    assert plan.cost == pytest.approx(0.20, abs=1e-9) and np.all(plan.export_kw <= 1e-9)


def test_a_battery_that_charges_from_solar_only_takes_no_grid_energy():
    """2 kW of solar surplus in hour 1 (import 0.10, export 0.05), 3 kW of load at 0.40 in hour 2. From solar only,
    the battery stores the 2 kWh (forgoing 0.10 of credit) and the site imports 1 kW in hour 2: 0.40. Allowed the
    grid, it would also import the 1 kWh more at 0.10 in hour 1 and cover hour 2 entirely: 0.10."""

    def day(solar_only: bool) -> SiteDay:
        battery = Battery(
            power_kw=5, charge_kw=5, energy_kwh=10, reserve_kwh=0, soc_kwh=0, round_trip=1.0, solar_only=solar_only
        )
        return SiteDay(
            load_kw=np.array([-2.0, 3.0]),
            import_price=np.array([0.10, 0.40]),
            export_credit=np.array([0.05, 0.05]),
            step_hours=1.0,
            batteries=[battery],
        )

    solar, grid = plan_batch([day(True)])[0], plan_batch([day(False)])[0]
    assert solar.cost == pytest.approx(0.40, abs=1e-9) and -solar.battery_kw[0][0] <= 2.0 + 1e-9
    assert solar.import_kw[0] == pytest.approx(0.0, abs=1e-9)
    assert grid.cost == pytest.approx(0.10, abs=1e-9)
