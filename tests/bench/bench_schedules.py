"""Next-day schedules for 10,000 batteries in 15-minute intervals under 60 seconds.

Setup (not timed): BATTERIES sites in PJM (New York time), one home battery each (5 kW,
13.5 kWh, 20 % reserve, a reported state of charge), on a time-of-use tariff with an
evening peak, a demand charge and an export credit; HISTORY_DAYS days of 15-minute site
meter readings and hourly battery meter readings (about 14 million rows in all).

Timed: the whole job as production runs it: `plan_due_schedules` (the beat task) finds
the due sites and queues chunk tasks of 500 sites, which WORKERS Celery worker processes
(the real worker, on Redis) run: per chunk the forecast queries, the tariff, the LPs
(HiGHS, 20 sites per LP) and the bulk upsert of the plans. The clock stops when every
battery has its plan. The per-chunk split (forecast / solve / store) comes from the
tasks' own figures.
"""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aggregator.reference import services as reference_services

TARGET_SECONDS = 60.0
BATTERIES = int(os.environ.get("BENCH_SCHEDULE_BATTERIES", "10000"))
HISTORY_DAYS = 14
WORKERS = int(os.environ.get("BENCH_SCHEDULE_WORKERS", "2"))
NY = ZoneInfo("America/New_York")
TARGET_FAILED = False
TARIFF = {
    "utility": "SCHEDCO",
    "code": "TOU-EV",
    "name": "Evening peak with demand",
    "effective_from": "2020-01-01",
    "energy": [
        {"name": "peak", "days": "weekdays", "hours": [[16, 21]], "price_per_kwh": "0.38"},
        {"name": "shoulder", "hours": [[7, 16]], "price_per_kwh": "0.16"},
        {"name": "off-peak", "price_per_kwh": "0.09"},
    ],
    "demand": [{"name": "peak demand", "days": "weekdays", "hours": [[16, 21]], "price_per_kw": "9.00"}],
    "fixed": [{"name": "customer charge", "per_month": "10.00"}],
    "export": {"credit_per_kwh": "0.035"},
}


def _seed(now: datetime) -> None:
    from django.db import connection

    from aggregator.reference import partitions
    from tests.factories import market

    reference_services.save_tariffs([TARIFF])
    pjm = market("PJM")
    first = (now - timedelta(days=HISTORY_DAYS + 1)).replace(minute=0, second=0, microsecond=0)
    partitions.ensure(first=first, last=now + timedelta(days=2))
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO enrollment_customer (external_ref, name, kind, contact_name, email, phone, created_at, updated_at)
                          SELECT 'SCH-' || n, 'Schedule customer ' || n, 'residential', '', '', '', now(), now()
                          FROM generate_series(1, %s) n""",
            [BATTERIES],
        )
        cursor.execute(
            """INSERT INTO enrollment_site (customer_id, name, utility, meter_id, load_serving_entity, retail_tariff,
                              market_id, pricing_node, zone, time_zone, address, city, region, postal_code, country, created_at, updated_at)
                          SELECT c.id, '', 'SCHEDCO', 'SCHM' || c.id, '', 'TOU-EV', %s, 'PECO_N001', 'PECO', 'America/New_York',
                                 '', '', '', '', 'US', now(), now()
                          FROM enrollment_customer c WHERE c.external_ref LIKE 'SCH-%%'""",
            [pjm.pk],
        )
        cursor.execute("""INSERT INTO enrollment_device (site_id, device_type, manufacturer, model, serial, rated_kw, charge_kw, energy_kwh,
                              backup_reserve_pct, round_trip_efficiency_pct, bidirectional, telemetry_interval_seconds,
                              communication_path, created_at, updated_at)
                          SELECT s.id, 'battery', 'Bench', 'Home 13.5', 'SCHB' || s.id, 5, 5, 13.5, 20, 90, true, 300,
                                 'native_api', now(), now()
                          FROM enrollment_site s WHERE s.meter_id LIKE 'SCHM%'""")
        cursor.execute("""INSERT INTO enrollment_devicestatus (device_id, online, last_seen_at, state_of_charge_pct, mode, firmware,
                              updated_at)
                          SELECT d.id, true, now(), 30 + d.id % 50, '', '', now() FROM enrollment_device d WHERE d.serial LIKE 'SCHB%'""")
        # Site meter: a daily shape (morning and evening), different per site; the battery's own meter hourly.
        cursor.execute(
            """INSERT INTO settlement_reading (meter_kind, meter_id, start, interval_seconds, kwh, quality, received_at, revision)
               SELECT 1, s.id, t, 900,
                      round((0.15 + (s.id %% 9) * 0.02 + 0.1 * sin(extract(hour FROM t AT TIME ZONE 'America/New_York') / 24 * 2 * pi())
                             + CASE WHEN extract(hour FROM t AT TIME ZONE 'America/New_York') BETWEEN 17 AND 20 THEN 0.6 ELSE 0 END
                            )::numeric, 6), 1, now(), 1
               FROM enrollment_site s, generate_series(%(first)s, %(last)s, interval '15 minutes') t
               WHERE s.meter_id LIKE 'SCHM%%'""",
            {"first": first, "last": now - timedelta(minutes=15)},
        )
        cursor.execute(
            """INSERT INTO settlement_reading (meter_kind, meter_id, start, interval_seconds, kwh, quality, received_at, revision)
               SELECT 2, d.id, t, 3600,
                      CASE WHEN extract(hour FROM t AT TIME ZONE 'America/New_York') BETWEEN 17 AND 19 THEN -1.5
                           WHEN extract(hour FROM t AT TIME ZONE 'America/New_York') BETWEEN 1 AND 3 THEN 1.6 ELSE 0 END,
                      1, now(), 1
               FROM enrollment_device d, generate_series(%(first)s, %(last)s, interval '1 hour') t
               WHERE d.serial LIKE 'SCHB%%'""",
            {"first": first, "last": now - timedelta(hours=1)},
        )
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM settlement_reading")
        return cursor.fetchone()[0]


def run() -> list[str]:
    global TARGET_FAILED
    from django.conf import settings
    from django.db import connection

    from aggregator.celery import app
    from dispatch import tasks
    from dispatch.models import DeviceSchedule

    now = datetime.now(UTC)
    evening = now.astimezone(NY).replace(hour=19, minute=0, second=0, microsecond=0)
    if evening > now:  # plan as if at 19:00 today, New York time, with the readings up to now
        evening -= timedelta(days=1)
    tomorrow = evening.date() + timedelta(days=1)
    t0 = time.perf_counter()
    rows = _seed(now)
    lines = [
        (
            f"setup: {BATTERIES:,} sites with a battery, {rows:,} readings ({HISTORY_DAYS} days: site meters every 15 minutes, "
            f"battery meters hourly) in {time.perf_counter() - t0:.1f} s (not timed)"
        )
    ]
    app.control.purge()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "aggregator",
            "worker",
            f"--concurrency={WORKERS}",
            "--without-mingle",
            "--without-gossip",
            "-Q",
            "celery",
            "--loglevel=WARNING",
        ],
        cwd=settings.BASE_DIR,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 150
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                raise SystemExit("the bench worker did not start")
        started = time.perf_counter()
        queued = tasks.plan_due_schedules(evening.isoformat())
        while True:
            done = DeviceSchedule.objects.filter(day=tomorrow).count()
            if done >= BATTERIES:
                break
            if time.perf_counter() - started > 600:
                raise SystemExit(f"only {done} of {BATTERIES} plans after 600 s")
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    from dispatch import schedules

    sample = list(
        DeviceSchedule.objects.filter(day=tomorrow)
        .order_by("device__site_id")
        .values_list("device__site_id", flat=True)[: schedules.CHUNK_SITES]
    )
    split = schedules.plan_sites(sample, tomorrow)["seconds"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT avg(site_cost_without - site_cost), avg(site_cost_without), "
            "min((SELECT min(e) FROM unnest(energy_kwh) e) - reserve_kwh) FROM dispatch_deviceschedule WHERE day = %s",
            [tomorrow],
        )
        saving, cost, margin = cursor.fetchone()
    lines.append(
        f"  {BATTERIES:,} plans for {tomorrow} ({queued} chunk tasks, {WORKERS} worker processes): {elapsed:.1f} s "
        f"({elapsed / BATTERIES * 1000:.2f} ms per battery)"
    )
    lines.append(
        f"  one chunk of {len(sample)} sites again, in process: forecast queries {split['forecast']:.2f} s, "
        f"LPs {split['solve']:.2f} s, storing {split['store']:.2f} s, {split['total']:.2f} s in all"
    )
    lines.append(
        f"  forecast day cost {float(cost):.2f} $ idle, {float(saving):.2f} $ less with the plan on average; "
        f"lowest planned energy above the reserve: {margin:.3f} kWh"
    )
    ok = elapsed < TARGET_SECONDS
    TARGET_FAILED = not ok
    lines.append(
        f"  target: 10,000 next-day schedules under {TARGET_SECONDS:.0f} s ({elapsed:.1f} s) -> {'MET' if ok else 'MISSED'}"
    )
    return lines
