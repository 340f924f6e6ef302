"""Day-ahead offers for 1,000 resources x 24 hours built in under 10 seconds, on the whole path.

Setup (not timed): RESOURCES active PJM resources in four programs (revenue share, per kWh, per event, and a
demand-response one with a net-benefits price), DEVICES_PER_RESOURCE member devices each (20,000 in all), half of
them batteries with a next-day plan of 96 fifteen-minute steps (the others controllable loads with notice), a fifth of them with a history of two allocated
events one of which they opted out of, and one hourly forecast per resource.

Timed: `build_offers` as beat runs it for PJM's operating day: the window and deadline, the latest forecast of
every resource (one DISTINCT ON query), the cost inputs of all resources (members, plan values averaged per hour
in SQL, opt-out counts, payout terms), 24 curves per resource, and the two bulk inserts of offers and intervals
(24,000 interval rows, through the immutability trigger). The per-stage split comes from the service's own
figures. The machine is shared with other work (two cores): figures vary with the contention.
"""

import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

TARGET_SECONDS = 10.0
RESOURCES = int(os.environ.get("BENCH_OFFER_RESOURCES", "1000"))
DEVICES_PER_RESOURCE = int(os.environ.get("BENCH_OFFER_DEVICES", "20"))
TARGET_FAILED = False


def _seed(*, window_start: datetime, issued_at: datetime) -> None:
    from django.db import connection

    from aggregator.aggregation.models import VirtualResource
    from aggregator.reference.models import NetBenefitsPrice
    from settlement.models import SettlementTerms
    from tests.factories import ProgramFactory, market

    pjm = market("PJM")
    programs = []
    for i, (rule, value, service) in enumerate(
        [
            ("revenue_share", "50", "energy"),
            ("per_kwh", "0.15", "energy"),
            ("per_event", "5", "energy"),
            ("revenue_share", "60", "demand_response"),
        ]
    ):
        program = ProgramFactory(market=pjm, code=f"bench-offers-{i}", service=service)
        SettlementTerms.objects.create(
            program=program,
            baseline_method="metered-device-output",
            sharing_rule=rule,
            sharing_value=Decimal(value),
            fee_pct=Decimal("10"),
        )
        programs.append(program)
    NetBenefitsPrice.objects.create(
        market=pjm, month=window_start.date().replace(day=1), price_per_mwh=Decimal("32.5"), imported_at=issued_at
    )
    VirtualResource.objects.bulk_create(
        [
            VirtualResource(
                name=f"Bench offers {n:04d}",
                market=pjm,
                program=programs[n % len(programs)],
                participation_model=programs[n % len(programs)].service,
                scope="PECO_N001",
                state="active",
                market_resource_id=f"BENCH-{n:04d}",
            )
            for n in range(RESOURCES)
        ]
    )
    devices = RESOURCES * DEVICES_PER_RESOURCE
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO enrollment_customer (external_ref, name, kind, contact_name, email, phone, created_at,
                                                updated_at)
               SELECT 'OFB-' || n, 'Offer bench ' || n, 'residential', '', '', '', now(), now()
               FROM generate_series(1, %s) n""",
            [devices],
        )
        cursor.execute(
            """INSERT INTO enrollment_site (customer_id, name, utility, meter_id, load_serving_entity, retail_tariff,
                   market_id, pricing_node, zone, time_zone, address, city, region, postal_code, country, created_at,
                   updated_at)
               SELECT c.id, '', 'PECO', 'OFBM' || c.id, '', '', %s, 'PECO_N001', 'PECO', 'America/New_York',
                      '', '', '', '', 'US', now(), now()
               FROM enrollment_customer c WHERE c.external_ref LIKE 'OFB-%%'""",
            [pjm.pk],
        )
        # Even sites: a 5 kW battery (90 % round trip); odd: a 3 kW controllable load, 30 minutes' notice, 4 h.
        cursor.execute(
            """INSERT INTO enrollment_device (site_id, device_type, manufacturer, model, serial, rated_kw, charge_kw,
                   energy_kwh, backup_reserve_pct, round_trip_efficiency_pct, max_event_hours, notice_minutes,
                   bidirectional, telemetry_interval_seconds, communication_path, created_at, updated_at)
               SELECT s.id, b.device_type, 'Bench', 'Offer', 'OFBD' || s.id, b.rated_kw, b.charge_kw, b.energy_kwh,
                      b.reserve, b.efficiency, b.hours, b.notice, false, 300, 'native_api', now(), now()
               FROM enrollment_site s
               CROSS JOIN LATERAL (
                   SELECT 'battery' AS device_type, 5 AS rated_kw, 5 AS charge_kw, 13.5 AS energy_kwh, 20 AS reserve,
                          90 AS efficiency, NULL::numeric AS hours, NULL::int AS notice
                   WHERE s.id % 2 = 0
                   UNION ALL
                   SELECT 'controllable_load', 3, NULL, NULL, NULL, NULL, 4, 30 WHERE s.id % 2 = 1
               ) b
               WHERE s.meter_id LIKE 'OFBM%'"""
        )
        cursor.execute(
            """INSERT INTO aggregator_resourcemembership (resource_id, device_id, joined_at)
               SELECT r.id, d.id, %s
               FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM aggregator_virtualresource
                     WHERE name LIKE 'Bench offers %%') r
               JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM enrollment_device
                     WHERE serial LIKE 'OFBD%%') d ON d.k / %s = r.k""",
            [window_start - timedelta(days=60), DEVICES_PER_RESOURCE],
        )
        # Plans: each 15-minute step's stored kWh is worth 0.04 to 0.30 $ (an evening peak), varying per device.
        cursor.execute(
            """INSERT INTO dispatch_deviceschedule (device_id, day, start, step_seconds, kw, energy_kwh, reserve_kwh,
                   value_per_kwh, site_cost, site_cost_without, created_at)
               SELECT d.id, %(day)s, %(start)s, 900, array_fill(0.0::float8, ARRAY[96]),
                      array_fill(8.0::float8, ARRAY[96]), 2.7,
                      ARRAY(SELECT 0.04 + (d.id %% 7) * 0.01
                                   + CASE WHEN i BETWEEN 68 AND 84 THEN 0.2 ELSE 0 END
                            FROM generate_series(0, 95) i),
                      1, 2, now()
               FROM enrollment_device d WHERE d.serial LIKE 'OFBD%%' AND d.device_type = 'battery'""",
            {"day": window_start.date(), "start": window_start},
        )
        # History: a fifth of the devices were allocated in two events and opted out of one.
        cursor.execute(
            """INSERT INTO dispatch_dispatchevent (resource_id, source, external_ref, target_kind, notify_at, start,
                   "end", ramp_seconds, over_commit_pct, state, warnings, allocation_round, commands_issued_round,
                   created_at, created_by_label, updated_at)
               SELECT r.id, 'operator_test', '', 'reduction', t, t, t + interval '2 hours', 0, 0, 'completed', '[]',
                      1, 1, now(), 'bench', now()
               FROM aggregator_virtualresource r,
                    unnest(ARRAY[%(first)s, %(second)s]::timestamptz[]) t
               WHERE r.name LIKE 'Bench offers %%'""",
            {"first": issued_at - timedelta(days=20), "second": issued_at - timedelta(days=10)},
        )
        cursor.execute(
            """INSERT INTO dispatch_allocation (event_id, round, device_id, customer_id, kw, available_kw, reason,
                   customer_events, customer_hours, needs_command)
               SELECT e.id, 1, m.device_id, 0, ARRAY[2.0], ARRAY[3.0],
                      CASE WHEN e.start < %(cut)s THEN 'opted_out' ELSE 'allocated' END, 0, 0, false
               FROM dispatch_dispatchevent e
               JOIN aggregator_resourcemembership m ON m.resource_id = e.resource_id AND m.device_id %% 5 = 0
               WHERE e.created_by_label = 'bench'""",
            {"cut": issued_at - timedelta(days=15)},
        )
        cursor.execute(
            """INSERT INTO dispatch_deviceoptout (device_id, start, "end", event_id, reason, created_at)
               SELECT a.device_id, e.start, e."end", e.id, 'bench', now()
               FROM dispatch_allocation a JOIN dispatch_dispatchevent e ON e.id = a.event_id
               WHERE a.reason = 'opted_out' AND e.created_by_label = 'bench'"""
        )
        # One hourly forecast per resource, 48 h from the window's start: P10 of 40 to 90 kW with a daily shape.
        cursor.execute(
            """INSERT INTO market_forecast (resource_id, kind, model, issued_at, start, interval_minutes, expected_kw,
                   p10_kw, p50_kw, p90_kw, inputs)
               SELECT r.id, 'hourly', 'learned', %(issued)s, %(start)s, 60,
                      ARRAY(SELECT 70 + (r.id %% 50) + 10 * sin(h / 24.0 * 2 * pi()) FROM generate_series(0, 47) h),
                      ARRAY(SELECT 40 + (r.id %% 50) + 10 * sin(h / 24.0 * 2 * pi()) FROM generate_series(0, 47) h),
                      ARRAY(SELECT 60 + (r.id %% 50) + 10 * sin(h / 24.0 * 2 * pi()) FROM generate_series(0, 47) h),
                      ARRAY(SELECT 80 + (r.id %% 50) + 10 * sin(h / 24.0 * 2 * pi()) FROM generate_series(0, 47) h),
                      '{}'
               FROM aggregator_virtualresource r WHERE r.name LIKE 'Bench offers %%'""",
            {"issued": issued_at, "start": window_start},
        )
        cursor.execute("ANALYZE")


def run() -> list[str]:
    global TARGET_FAILED
    from django.db import connection

    from aggregator.market.models import Offer, OfferInterval
    from aggregator.market.offers import selectors, services
    from tests.factories import market

    pjm = market("PJM")
    # The operating day after next, in New York time, built as beat would seven hours before its deadline.
    day = datetime.now(UTC).astimezone(ZoneInfo(pjm.time_zone)).date() + timedelta(days=2)
    window = services.window_for(pjm, "day_ahead", day=day)
    now = window.deadline - timedelta(hours=5)
    t0 = time.perf_counter()
    _seed(window_start=window.start, issued_at=now - timedelta(hours=1))
    setup = (
        f"setup: {RESOURCES:,} resources, {RESOURCES * DEVICES_PER_RESOURCE:,} devices, "
        f"{RESOURCES * DEVICES_PER_RESOURCE // 2:,} battery plans, opt-out history, {RESOURCES:,} forecasts "
        f"in {time.perf_counter() - t0:.1f} s (not timed)"
    )
    lines = [setup]
    resources = list(selectors.offering_resources(pjm))
    started = time.perf_counter()
    result = services.build_offers(market_kind="day_ahead", resources=resources, day=day, now=now)
    elapsed = time.perf_counter() - started
    intervals = OfferInterval.objects.filter(offer__in=Offer.objects.filter(window_start=window.start)).count()
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT avg(jsonb_array_length(segments)), max(jsonb_array_length(segments)), avg(max_kw),
                      min((segments -> 0 ->> 1)::float) FROM market_offerinterval"""
        )
        segments, most, kw, cheapest = cursor.fetchone()
    split = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in result.seconds.items())
    lines.append(
        f"  {len(result.built):,} offers, {intervals:,} intervals ({len(window.starts)} h, operating day {day}) "
        f"in {elapsed:.2f} s; skipped {len(result.skipped)}"
    )
    lines.append(f"  split: {split}")
    dominant = max(result.seconds, key=result.seconds.get) if result.seconds else "-"
    lines.append(
        f"  dominated by {dominant}; {float(segments):.1f} segments per interval on average (at most {most}), "
        f"{float(kw):.1f} kW offered per interval, lowest first price {cheapest:.2f} $/MWh"
    )
    ok = elapsed < TARGET_SECONDS and len(result.built) == RESOURCES
    TARGET_FAILED = not ok
    lines.append(
        f"  target: {RESOURCES:,} resources x 24 h under {TARGET_SECONDS:.0f} s ({elapsed:.2f} s) -> "
        f"{'MET' if ok else 'MISSED'}"
    )
    return lines
