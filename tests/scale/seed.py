"""The scale-out test's data, written through the platform's own services (run with the test's environment).

    python tests/scale/seed.py fleet DEVICES TOKENS_FILE    the fleet (fleet import), one resource, device tokens
    python tests/scale/seed.py event NOTIFY_IN LEAD         an event notified in NOTIFY_IN s, starting LEAD s later

The fleet: DEVICES devices at one PJM pricing node through the fleet import, each active in one program, online
and a member of one registered resource (as tests/bench/bench_dispatch.py sets it up), and a device token each,
written to TOKENS_FILE as [{"device": id, "token": plaintext}] for the device simulator. The event: through the
service an operator's API call uses; its id and moments are printed as JSON.
"""

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggregator.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from aggregator.aggregation.models import VirtualResource  # noqa: E402
from aggregator.core.access import tokens  # noqa: E402
from aggregator.demo.fleet import fleet_csv  # noqa: E402
from aggregator.reference import partitions  # noqa: E402
from aggregator.reference.models import Market, Program  # noqa: E402
from dispatch import services  # noqa: E402
from enrollment.fleet_import import import_fleet  # noqa: E402

PREFIX = "SCL"
RESOURCE = "scale-out"


def fleet(devices: int, tokens_file: str) -> None:
    report = import_fleet(
        source=fleet_csv(
            customers=devices, devices=devices, markets=("PJM",), nodes_per_market=1, prefix=PREFIX, retail_dr_share=0
        ).encode()
    )
    assert report.ok, report.errors[:3]
    market = Market.objects.get(code="PJM")
    program = Program.objects.create(
        market=market, code="scale-out", name="Scale-out test", service="capacity", terms_version="1"
    )
    resource = VirtualResource.objects.create(
        name=RESOURCE,
        market=market,
        program=program,
        participation_model="capacity",
        scope="PJM_N0001",
        state="registered",
        market_resource_id="PJM-SCALE",
    )
    like = f"{PREFIX}S%%"
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO enrollment_enrollment (device_id, program_id, state, applied_at, activated_at, review_outcome,
                                                  utility_reference, updated_at)
               SELECT id, %s, 'active', now(), now(), 'approved', '', now() FROM enrollment_device WHERE serial LIKE %s""",
            [program.pk, like],
        )
        cursor.execute(
            """INSERT INTO enrollment_devicestatus (device_id, online, last_seen_at, state_of_charge_pct, ev_plugged_in,
                                                    mode, firmware, updated_at)
               SELECT id, true, now(), CASE WHEN device_type = 'battery' THEN 90 END,
                      CASE WHEN device_type = 'ev_charger' THEN true END, '', '', now()
               FROM enrollment_device WHERE serial LIKE %s
               ON CONFLICT (device_id) DO UPDATE SET online = true, last_seen_at = now()""",
            [like],
        )
        cursor.execute(
            """INSERT INTO aggregator_resourcemembership (resource_id, device_id, joined_at)
               SELECT %s, id, now() - interval '1 day' FROM enrollment_device WHERE serial LIKE %s""",
            [resource.pk, like],
        )
        cursor.execute("SELECT id FROM enrollment_device WHERE serial LIKE %s ORDER BY id", [like])
        device_ids = [row[0] for row in cursor.fetchall()]
        issued = [tokens.issue("dev") for _ in device_ids]
        now = timezone.now().isoformat()
        with cursor.copy(
            "COPY enrollment_devicecredential (key_id, digest, label, created_at, device_id) FROM STDIN"
        ) as copy:
            copy.write("".join(f"{t.key_id}\t{t.digest}\tscale-out\t{now}\t{d}\n" for t, d in zip(issued, device_ids)))
        cursor.execute("ANALYZE")
    # The simulator's readings are of the last days; the beat task keeps partitions ahead, this covers behind.
    partitions.ensure(first=timezone.now() - timedelta(days=7), last=timezone.now() + timedelta(days=60))
    Path(tokens_file).write_text(json.dumps([{"device": d, "token": t.plaintext} for d, t in zip(device_ids, issued)]))
    print(json.dumps({"devices": len(device_ids), "resource": resource.pk}))


def event(notify_in: float, lead: float) -> None:
    resource = VirtualResource.objects.get(name=RESOURCE)
    notify_at = (timezone.now() + timedelta(seconds=notify_in)).replace(microsecond=0)
    start = notify_at + timedelta(seconds=lead)
    with transaction.atomic():
        created = services.create_event(
            resource=resource,
            source="operator_test",
            start=start,
            end=start + timedelta(hours=1),
            notify_at=notify_at,
            target_kw=10_000_000,
            over_commit_pct=0,
            by="scale-out test",
        )
    print(json.dumps({"event": created.pk, "notify_at": notify_at.isoformat(), "start": start.isoformat()}))


if __name__ == "__main__":
    if sys.argv[1] == "fleet":
        fleet(int(sys.argv[2]), sys.argv[3])
    else:
        event(float(sys.argv[2]), float(sys.argv[3]))
