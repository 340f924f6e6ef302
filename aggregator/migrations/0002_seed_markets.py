"""Seed the seven North American wholesale markets with published defaults.

Every value is data an operator can change as tariffs change. Notes:
- MISO's market clock is Eastern Standard Time all year (no DST), hence Etc/GMT+5.
- ERCOT is outside FERC jurisdiction; its aggregated DER pilot (ADER) groups within a
  load zone, which is modelled as a multi-node area with 15-minute settlement.
- The 60-day distribution utility review is the common default; no market here is
  seeded with "a lapsed review counts as approval".
"""

from django.db import migrations

MARKETS = [
    # code, name, time zone, multi-node, settlement minutes, baseline methods
    (
        "CAISO",
        "California ISO",
        "America/Los_Angeles",
        True,
        5,
        ["caiso-10-in-10", "meter-before-meter-after", "metered-device-output"],
    ),
    ("PJM", "PJM Interconnection", "America/New_York", True, 5, ["pjm-high-4-of-5", "metered-device-output"]),
    ("NYISO", "New York ISO", "America/New_York", False, 5, ["nyiso-cbl", "metered-device-output"]),
    ("ISO-NE", "ISO New England", "America/New_York", False, 5, ["meter-before-meter-after", "metered-device-output"]),
    ("MISO", "Midcontinent ISO", "Etc/GMT+5", False, 5, ["meter-before-meter-after", "metered-device-output"]),
    (
        "ERCOT",
        "Electric Reliability Council of Texas",
        "America/Chicago",
        True,
        15,
        ["meter-before-meter-after", "metered-device-output"],
    ),
    ("SPP", "Southwest Power Pool", "America/Chicago", False, 5, ["meter-before-meter-after", "metered-device-output"]),
]


def seed(apps, schema_editor):
    Market = apps.get_model("aggregator", "Market")
    for code, name, tz, multi_node, interval, methods in MARKETS:
        Market.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "time_zone": tz,
                "multi_node_allowed": multi_node,
                "settlement_interval_minutes": interval,
                "baseline_methods": methods,
                "min_aggregation_kw": 100,
                "utility_review_days": 60,
                "review_lapse_approves": False,
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("aggregator", "Market").objects.filter(code__in=[m[0] for m in MARKETS], sites__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("aggregator", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
