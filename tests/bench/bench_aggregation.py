"""Aggregation builder and capability: 100,000 active devices over 1,000 pricing nodes (targets: each under 10 s; at a million devices over 10,000 nodes, the builder under 20 s and capability under 30 s).

Setup (not timed): a 100,000-device PJM fleet through the fleet import, active
enrollments and heartbeat statuses written set-based. Timed: the builder
(load every eligible unassigned device, estimate kW now, group by pricing node,
balance into resources), accepting its proposal (memberships written), and the
capability of every resource now and by hour for 48 hours.
"""

import os
import time

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from aggregator.aggregation import services
from aggregator.aggregation.models import VirtualResource
from aggregator.aggregation.selectors import capability_of
from aggregator.demo.fleet import fleet_csv
from aggregator.reference.models import Market, Program
from enrollment.fleet_import import import_fleet

DEVICES = int(os.environ.get("BENCH_AGG_DEVICES", "100000"))
NODES = max(DEVICES // 100, 1)
# Issue targets: each under 10 s at 100,000 devices; at a million, the builder under 20 s and capability under 30 s.
BUILDER_TARGET_SECONDS = 10.0 if DEVICES <= 100_000 else 20.0
CAPABILITY_TARGET_SECONDS = 10.0 if DEVICES <= 100_000 else 30.0
TARGET_FAILED = False


def _setup() -> Program:
    report = import_fleet(
        source=fleet_csv(
            customers=DEVICES,
            devices=DEVICES,
            markets=("PJM",),
            nodes_per_market=NODES,
            prefix="AGG",
            retail_dr_share=0,
        ).encode()
    )
    assert report.ok, report.errors[:3]
    program = Program.objects.create(
        market=Market.objects.get(code="PJM"), code="bench-dr", name="Bench DR", service="capacity", terms_version="1"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO enrollment_enrollment (device_id, program_id, state, applied_at, activated_at, review_outcome,
                                               utility_reference, updated_at)
            SELECT d.id, %s, CASE WHEN d.id %% 20 = 0 THEN 'utility_review' ELSE 'active' END, now(), now(), 'approved', '', now()
            FROM enrollment_device d WHERE d.serial LIKE 'AGGS%%'
            """,
            [program.pk],
        )
        cursor.execute(
            """
            INSERT INTO enrollment_devicestatus (device_id, online, last_seen_at, state_of_charge_pct, ev_plugged_in,
                                                 mode, firmware, updated_at)
            SELECT d.id, d.id %% 50 <> 0, now() - interval '3 minutes',
                   CASE WHEN d.device_type = 'battery' THEN 20 + (d.id %% 80) END,
                   CASE WHEN d.device_type = 'ev_charger' THEN d.id %% 3 = 0 END, '', '', now()
            FROM enrollment_device d WHERE d.serial LIKE 'AGGS%%'
            """,
            [],
        )
        cursor.execute("ANALYZE")
    return program


def run() -> list[str]:
    global TARGET_FAILED
    t0 = time.perf_counter()
    program = _setup()
    user = get_user_model().objects.create_user("bench")
    lines = [
        f"setup: {DEVICES:,} devices over {NODES} pricing nodes, 95% active, 2% offline, in {time.perf_counter() - t0:.1f} s (not timed)"
    ]

    started = time.perf_counter()
    proposal = services.build_proposal(
        market=program.market, program=program, by=user, scope_kind="pricing_node", max_kw=1000
    )
    build = time.perf_counter() - started
    placed = sum(r["devices"] for r in proposal.resources)
    lines.append(
        f"builder: {build:.2f} s -> {len(proposal.resources)} resources holding {placed:,} devices, "
        f"{sum(r['capability_kw'] for r in proposal.resources) / 1000:,.1f} MW; "
        f"{len(proposal.unplaced)} unplaced groups; ineligible {proposal.ineligible}"
    )

    started = time.perf_counter()
    resources = services.accept_proposal(proposal=proposal, by=user)
    accept = time.perf_counter() - started
    lines.append(f"accept proposal: {accept:.2f} s ({len(resources)} draft resources, {placed:,} memberships written)")

    ids = list(VirtualResource.objects.filter(program=program).values_list("pk", flat=True))
    started = time.perf_counter()
    figures = capability_of(resource_ids=ids, now=timezone.now(), hours=48, event_hours=4)
    capability_seconds = time.perf_counter() - started
    total_now = sum(f["now_kw"] for f in figures.values())
    peak = max(sum(f["forecast"][h]["kw"] for f in figures.values()) for h in range(48))
    lines.append(
        f"capability of all {len(ids)} resources, now + 48 hourly steps: {capability_seconds:.2f} s "
        f"({sum(f['members'] for f in figures.values()):,} members; {total_now / 1000:,.1f} MW now, peak hour {peak / 1000:,.1f} MW)"
    )

    started = time.perf_counter()
    one = capability_of(resource_ids=[ids[0]], now=timezone.now(), hours=48, event_hours=4)[ids[0]]
    lines.append(
        f"capability of one resource ({one['members']} members): {(time.perf_counter() - started) * 1000:.0f} ms"
    )

    TARGET_FAILED = build > BUILDER_TARGET_SECONDS or capability_seconds > CAPABILITY_TARGET_SECONDS
    lines.append(
        f"target: builder under {BUILDER_TARGET_SECONDS:.0f} s, capability under {CAPABILITY_TARGET_SECONDS:.0f} s "
        f"-> {'MISSED' if TARGET_FAILED else 'MET'}"
    )
    return lines
