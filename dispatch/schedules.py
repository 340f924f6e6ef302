"""Standing next-day schedules for every battery and flexible EV charger: forecast, tariff, LP, stored per device.

For a set of sites and their local "tomorrow", in 15-minute intervals (STEP):

- Forecast: the site's load net of solar and without its batteries, per interval of the
  day, is the average over the last HISTORY_DAYS days of the same day type (weekday, or
  weekend and holiday) of the site meter's kW minus its batteries' metered kW (falling
  back to all days when a type has fewer than MIN_DAYS). Coarser history (hourly) fills
  each of its quarter hours. One set-based query per meter kind does the averaging.
- Tariff (aggregator.reference.tariffs): the version in effect on the first of tomorrow's month
  prices each interval (import price, export credit) and gives the demand windows;
  each window's floor is the site's peak in it so far this month.
- Batteries (their power, charge rate, energy, backup reserve and round-trip efficiency;
  the reported state of charge as the starting energy, the reserve if none) and EV chargers
  with a nightly charging need (plugged from an evening hour, kWh by a morning hour; what
  last night's plan charged counts toward this morning): planned by dispatch.site_plan,
  BATCH sites per LP. An EV charger's plan is its charging kW (negative), cheapest first.
- A storm watch over the day holds its batteries full for its window (dispatch.resilience).
- Stored as DeviceSchedule rows (kW per interval, + discharge), one per battery and
  day, replacing a plan made earlier for the same day. Devices read them on the device
  API (`GET /api/device/v1/schedule`); a dispatch command overrides a schedule inside
  the command's window.

A site without history or without a tariff is skipped and counted (with its reason); so is a site whose day has
no plan (site_plan.plan_each isolates it from its batch), named in `failed` with the solver's reason.
"""

import logging
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
from django.db import connection
from django.db.models import Q

from aggregator.reference.holidays import holidays_between
from aggregator.reference.models import MeterKind
from aggregator.reference.selectors import tariff_in_effect
from aggregator.reference.tariffs import day_info
from dispatch import resilience, site_plan
from dispatch.models import DeviceSchedule
from enrollment.models import Device, DeviceStatus, Site

logger = logging.getLogger(__name__)

STEP = 900
HISTORY_DAYS = 14
MIN_DAYS = 3
BATCH = 20
CHUNK_SITES = 500

# Called with the ids of the EV chargers whose plans were just stored (an OCPP charger's default profile).
_PLANNED: list = []


def on_planned(listener) -> None:
    """Register a callable told the EV chargers' device ids once their new plans are stored."""
    _PLANNED.append(listener)


# One pass over a site meter's readings since the earlier of the history window and the month's start: per
# site, day type and slot of the day, the history's average kW and how many days it saw (a slot's count), and
# the month-to-date peak import kW, the month starting at the site's own local midnight (`month` is only the
# earliest of them, bounding the scan).
_SITE_SLOTS = """
SELECT r.meter_id, (extract(isodow FROM l) >= 6 OR l::date = ANY(%(holidays)s)) AS weekend,
       ((extract(hour FROM l) * 3600 + extract(minute FROM l) * 60)::int / %(step)s) AS slot,
       avg(kw) FILTER (WHERE r.start >= %(since)s), count(*) FILTER (WHERE r.start >= %(since)s),
       max(kw) FILTER (WHERE r.start >= %(month_first)s::timestamp AT TIME ZONE s.time_zone AND kw > 0)
FROM settlement_reading r JOIN enrollment_site s ON s.id = r.meter_id
CROSS JOIN LATERAL (SELECT r.start AT TIME ZONE s.time_zone AS l, r.kwh * 3600 / r.interval_seconds AS kw) t
WHERE r.meter_kind = %(kind)s AND r.meter_id = ANY(%(meters)s) AND r.start >= least(%(since)s, %(month)s)
  AND r.start < %(until)s AND r.kwh IS NOT NULL
GROUP BY 1, 2, 3
"""
# Each battery's average by slot, then summed per site (a site may have several).
_BATTERY_SLOTS = """
SELECT site, weekend, slot, sum(kw), min(days) FROM (
    SELECT d.site_id AS site, r.meter_id,
           (extract(isodow FROM l) >= 6 OR l::date = ANY(%(holidays)s)) AS weekend,
           ((extract(hour FROM l) * 3600 + extract(minute FROM l) * 60)::int / %(step)s) AS slot,
           avg(r.kwh * 3600 / r.interval_seconds) AS kw, count(*) AS days
    FROM settlement_reading r JOIN enrollment_device d ON d.id = r.meter_id JOIN enrollment_site s ON s.id = d.site_id
    CROSS JOIN LATERAL (SELECT r.start AT TIME ZONE s.time_zone AS l) t
    WHERE r.meter_kind = %(kind)s AND r.meter_id = ANY(%(meters)s) AND r.start >= %(since)s AND r.start < %(until)s
      AND r.kwh IS NOT NULL
    GROUP BY 1, 2, 3, 4
) b
GROUP BY 1, 2, 3
"""


def day_starts(day: date, zone: ZoneInfo, step: int = STEP) -> list[datetime]:
    """The UTC starts of a local day's intervals: 92, 96 or 100 quarter hours on DST days."""
    first = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone).astimezone(UTC)
    return [first + timedelta(seconds=step * n) for n in range(int((end - first).total_seconds()) // step)]


def _slot_table(rows, slots: int) -> dict[int, dict[bool, tuple[np.ndarray, int]]]:
    """site -> weekend? -> (kW per slot, forward-filled where history is coarser, days seen)."""
    raw: dict = defaultdict(lambda: defaultdict(dict))
    days: dict = defaultdict(dict)
    for site, weekend, slot, kw, seen in rows:
        raw[site][weekend][slot] = float(kw)
        days[site][weekend] = max(days[site].get(weekend, 0), seen)
    out = {}
    for site, by_type in raw.items():
        out[site] = {}
        for weekend, values in by_type.items():
            series, last = np.full(slots, np.nan), None
            for slot in range(slots):
                last = values.get(slot, last)
                if last is not None:
                    series[slot] = last
            first_known = next(iter(sorted(values)))
            series[np.isnan(series)] = values[first_known]  # slots before the first reading of the day
            out[site][weekend] = (series, days[site][weekend])
    return out


def _pick(table: dict, site: int, weekend: bool) -> np.ndarray | None:
    by_type = table.get(site)
    if not by_type:
        return None
    own = by_type.get(weekend)
    if own is not None and own[1] >= MIN_DAYS:
        return own[0]
    known = [v for v in by_type.values() if v is not None]
    return np.mean([v[0] for v in known], axis=0) if known else None


class _TariffDay:
    """One tariff version on one local day: prices per interval and demand windows."""

    def __init__(self, spec, starts: list[datetime], zone: ZoneInfo, holidays: set[date]):
        if spec.holidays is not None:  # the tariff's own holiday list, not the market's
            holidays = set(spec.holidays)
        info = [day_info(at.astimezone(zone), holidays) for at in starts]
        prices = [float(spec.energy[spec.energy_index(*i)].price) for i in info]
        self.import_price = np.array(prices)
        if spec.net_metering:
            self.export_credit = self.import_price.copy()
        elif spec.export_periods:
            self.export_credit = np.array(
                [float(next(c.price for c in spec.export_periods if c.window.matches(*i))) for i in info]
            )
        else:
            self.export_credit = np.full(len(starts), float(spec.export_credit or 0))
        self.demand = [(float(c.price), np.array([c.window.matches(*i) for i in info]), c.window) for c in spec.demand]
        self.storage_may_export = spec.storage_may_export


def plan_sites(site_ids: list[int], day: date, *, now: datetime | None = None) -> dict:
    """Plan `day` (each site's local date) for the batteries of these sites; store and return figures."""

    now = now or datetime.now(UTC)
    t0 = time.perf_counter()
    sites = {s.pk: s for s in Site.objects.filter(pk__in=site_ids).select_related("market")}
    batteries, evs = defaultdict(list), defaultdict(list)
    for device in Device.objects.filter(site_id__in=sites, device_type="battery").order_by("pk"):
        batteries[device.site_id].append(device)
    for device in (
        Device.objects.filter(site_id__in=sites, device_type="ev_charger", charging_need__isnull=False)
        .select_related("charging_need")
        .order_by("pk")
    ):
        evs[device.site_id].append(device)
    last_night = {
        p.device_id: p
        for p in DeviceSchedule.objects.filter(
            device_id__in=[d.pk for ds in evs.values() for d in ds], day=day - timedelta(days=1)
        )
    }
    soc = dict(
        DeviceStatus.objects.filter(
            device_id__in=[d.pk for ds in batteries.values() for d in ds], state_of_charge_pct__isnull=False
        ).values_list("device_id", "state_of_charge_pct")
    )
    skipped: dict[str, int] = defaultdict(int)
    days: list[tuple[int, site_plan.SiteDay, list, list[datetime]]] = []
    by_market: dict = defaultdict(list)
    for site_id in sorted(set(batteries) | set(evs)):
        by_market[sites[site_id].market.code].append(site_id)
    tariff_days = _tariff_versions(sites.values(), day)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)  # every zone's local day lies within 14 h of it
    storm = resilience.covered(
        [d.pk for ds in batteries.values() for d in ds], midnight - timedelta(hours=14), midnight + timedelta(hours=38)
    )
    timings = {"forecast": 0.0}
    for market, members in by_market.items():
        t1 = time.perf_counter()
        since = datetime.combine(day - timedelta(days=HISTORY_DAYS + 1), datetime.min.time(), UTC)
        holidays = set(
            holidays_between(market=market, first=since.date() - timedelta(days=31), last=day + timedelta(days=1))
        )
        params = {"holidays": sorted(holidays), "step": STEP, "since": since, "until": now}
        slots = 86400 // STEP
        month_start = min(datetime(day.year, day.month, 1, tzinfo=ZoneInfo(sites[m].time_zone)) for m in members)
        with connection.cursor() as cursor:
            cursor.execute(
                _SITE_SLOTS,
                {
                    **params,
                    "kind": MeterKind.SITE,
                    "meters": members,
                    "month": month_start,
                    "month_first": day.replace(day=1),
                },
            )
            rows = cursor.fetchall()
            site_table = _slot_table([r[:5] for r in rows if r[3] is not None], slots)
            peaks = defaultdict(dict)
            for site_id, weekend, slot, _, _, peak in rows:
                if peak is not None:
                    key = (weekend, slot * STEP // 3600)
                    peaks[site_id][key] = max(peaks[site_id].get(key, 0.0), float(peak))
            cursor.execute(
                _BATTERY_SLOTS,
                {**params, "kind": MeterKind.DEVICE, "meters": [d.pk for m in members for d in batteries[m] + evs[m]]},
            )
            battery_table = _slot_table(cursor.fetchall(), slots)
        timings["forecast"] += time.perf_counter() - t1
        for site_id in members:
            site = sites[site_id]
            zone = ZoneInfo(site.time_zone)
            starts = day_starts(day, zone)
            weekend = day_info(starts[0].astimezone(zone), holidays)[1]
            tariff_day = tariff_days.get((site.utility, site.retail_tariff, site.time_zone))
            if tariff_day is None:
                skipped["no tariff"] += 1
                continue
            measured = _pick(site_table, site_id, weekend)
            if measured is None:
                skipped["no history"] += 1
                continue
            own = _pick(battery_table, site_id, weekend)
            load = measured - (own if own is not None else 0.0)
            local_slots = [
                ((at.astimezone(zone).hour * 3600 + at.astimezone(zone).minute * 60) // STEP) for at in starts
            ]
            load_kw = load[local_slots]
            month_peaks = peaks.get(site_id, {}) if day.month == now.astimezone(zone).month else {}
            demand = [
                site_plan.Demand(
                    price,
                    mask,
                    max(
                        [kw for (we, hour), kw in month_peaks.items() if window.matches(day.month, we, hour)],
                        default=0.0,
                    ),
                )
                for price, mask, window in tariff_day[0].demand
            ]
            units = []
            for device in batteries[site_id]:
                energy = float(device.energy_kwh or 0)
                reserve = energy * float(device.backup_reserve_pct or 0) / 100
                start_pct = soc.get(device.pk)
                units.append(
                    site_plan.Battery(
                        power_kw=float(device.rated_kw),
                        charge_kw=float(device.charge_kw or device.rated_kw),
                        energy_kwh=energy,
                        reserve_kwh=reserve,
                        soc_kwh=energy * float(start_pct) / 100 if start_pct is not None else reserve,
                        round_trip=float(device.round_trip_efficiency_pct or 90) / 100,
                        solar_only=device.charge_from_solar_only,
                        hold_full=np.array([any(a <= at < b for a, b in storm.get(device.pk, ())) for at in starts]),
                    )
                )
            local_hours = np.array([at.astimezone(zone).hour for at in starts])
            sessions = [_ev_session(device, local_hours, last_night.get(device.pk), zone) for device in evs[site_id]]
            site_day = site_plan.SiteDay(
                load_kw=load_kw,
                import_price=tariff_day[0].import_price,
                export_credit=tariff_day[0].export_credit,
                step_hours=STEP / 3600,
                batteries=units,
                demand=demand,
                evs=sessions,
                storage_may_export=tariff_day[0].storage_may_export,
            )
            days.append((site_id, site_day, (batteries[site_id], evs[site_id]), starts))
    t2 = time.perf_counter()
    rows = []
    failed = []
    for first in range(0, len(days), BATCH):
        batch = days[first : first + BATCH]
        plans = site_plan.plan_each([d for _, d, _, _ in batch])
        for (site_id, site_day, (devices, chargers), starts), plan in zip(batch, plans):
            if isinstance(plan, site_plan.PlanFailed):
                logger.warning("No plan for site %s on %s: %s", site_id, day, plan)
                failed.append({"site": site_id, "reason": str(plan)})
                skipped["plan failed"] += 1
                continue
            # Without the platform: the batteries idle, each car charges at full power from the hour it may.
            idle = site_plan.day_cost(
                site_day,
                np.zeros(len(starts)),
                sum((_unmanaged(ev, site_day.step_hours) for ev in site_day.evs), np.zeros(len(starts))),
            )
            for device, _ev, kw in zip(chargers, site_day.evs, plan.ev_kw):
                rows.append(
                    DeviceSchedule(
                        device=device,
                        day=day,
                        start=starts[0],
                        step_seconds=STEP,
                        kw=np.round(-kw, 3).tolist(),
                        energy_kwh=np.round(np.cumsum(kw) * site_day.step_hours, 3).tolist(),
                        reserve_kwh=0.0,
                        value_per_kwh=[],
                        site_cost=Decimal(f"{plan.cost:.4f}"),
                        site_cost_without=Decimal(f"{idle:.4f}"),
                        created_at=now,
                    )
                )
            for device, unit, kw, energy, value in zip(
                devices, site_day.batteries, plan.battery_kw, plan.energy_kwh, plan.value_per_kwh
            ):
                rows.append(
                    DeviceSchedule(
                        device=device,
                        day=day,
                        start=starts[0],
                        step_seconds=STEP,
                        kw=np.round(kw, 3).tolist(),
                        energy_kwh=np.round(energy, 3).tolist(),
                        reserve_kwh=round(unit.reserve_kwh, 3),
                        value_per_kwh=np.round(value, 4).tolist(),
                        site_cost=Decimal(f"{plan.cost:.4f}"),
                        site_cost_without=Decimal(f"{idle:.4f}"),
                        created_at=now,
                    )
                )
    t3 = time.perf_counter()
    DeviceSchedule.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["device", "day"],
        update_fields=[
            "start",
            "step_seconds",
            "kw",
            "energy_kwh",
            "reserve_kwh",
            "value_per_kwh",
            "site_cost",
            "site_cost_without",
            "created_at",
        ],
    )
    planned = [d for d in days if d[0] not in {f["site"] for f in failed}]
    chargers = sum(len(c) for _, _, (_, c), _ in planned)
    charger_ids = [device.pk for _, _, (_, c), _ in planned for device in c]
    for listener in _PLANNED if charger_ids else ():
        listener(charger_ids)
    return {
        "sites": len(planned),
        "batteries": len(rows) - chargers,
        "ev_chargers": chargers,
        "skipped": dict(skipped),
        "failed": failed,
        "seconds": {
            "forecast": round(timings["forecast"], 3),
            "solve": round(t3 - t2, 3),
            "store": round(time.perf_counter() - t3, 3),
            "total": round(time.perf_counter() - t0, 3),
        },
    }


def _ev_session(device, local_hours: np.ndarray, yesterday, zone: ZoneInfo) -> site_plan.Ev:
    """A charger's part of two nightly sessions in the day: this morning's end (what last night's plan left owed)
    and tonight's start (at least what tomorrow morning alone could not fit)."""
    need = device.charging_need
    energy, power = float(need.energy_kwh), float(device.rated_kw)
    morning, evening = local_hours < need.ready_by_hour, local_hours >= need.plug_in_hour
    morning_room = power * STEP / 3600 * int(morning.sum())
    charged = 0.0
    if yesterday is not None:  # what last night's plan charged from plug-in on (its kW are negative: charging)
        step = yesterday.step_seconds
        charged = sum(
            -kw * step / 3600
            for n, kw in enumerate(yesterday.kw)
            if (yesterday.start + timedelta(seconds=step * n)).astimezone(zone).hour >= need.plug_in_hour
        )
    return site_plan.Ev(
        power_kw=power,
        morning=morning,
        evening=evening,
        morning_kwh=min(max(energy - charged, 0.0), morning_room * 0.999),
        evening_kwh=max(0.0, energy - morning_room),
        evening_max_kwh=energy,
    )


def _unmanaged(ev: site_plan.Ev, step_hours: float) -> np.ndarray:
    """A car charging as it would alone: at full power from the start of each window until its kWh are in."""
    out = np.zeros(len(ev.morning))
    for mask, kwh in ((ev.morning, ev.morning_kwh), (ev.evening, ev.evening_max_kwh)):
        left = kwh
        for n in np.flatnonzero(mask):
            if left <= 0:
                break
            out[n] = min(ev.power_kw, left / step_hours)
            left -= out[n] * step_hours
    return out


def _tariff_versions(sites, day: date) -> dict:
    """(utility, tariff, time zone) -> (_TariffDay,) for the version in effect on the first of the day's month."""
    wanted = {(s.utility, s.retail_tariff, s.time_zone, s.market.code) for s in sites if s.retail_tariff}
    out = {}
    for utility, code, zone_name, market in wanted:
        spec = tariff_in_effect(utility=utility, code=code, day=day)
        if spec is None:
            continue
        zone = ZoneInfo(zone_name)
        holidays = set(holidays_between(market=market, first=day, last=day))
        out[(utility, code, zone_name)] = (_TariffDay(spec, day_starts(day, zone), zone, holidays),)
    return out


def due_sites(now: datetime) -> dict[date, list[int]]:
    """Sites with batteries whose local evening has come (18:00 or later) and whose batteries have no plan for
    their local tomorrow yet: tomorrow -> site ids."""

    due: dict[date, list[int]] = defaultdict(list)
    planned = Q(devices__device_type="battery") | Q(devices__charging_need__isnull=False)
    zones = Site.objects.filter(planned).order_by().values_list("time_zone", flat=True).distinct()
    for zone_name in zones:
        local = now.astimezone(ZoneInfo(zone_name))
        if local.hour < 18:
            continue
        tomorrow = local.date() + timedelta(days=1)
        site_ids = (
            Site.objects.filter(planned, time_zone=zone_name)
            .exclude(devices__in=DeviceSchedule.objects.filter(day=tomorrow).values("device_id"))
            .values_list("pk", flat=True)
            .distinct()
            .order_by("pk")
        )
        due[tomorrow] += list(site_ids)
    return due
