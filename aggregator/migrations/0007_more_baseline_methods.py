"""The seeded markets offer the baseline methods added since: ISO-NE's 10 like days, ERCOT's middle 8 of 10 and
matching day pair, PJM's Match Day, CAISO's metered generator output."""

from django.db import migrations

ADDED = {
    "ISO-NE": ["isone-10-day"],
    "ERCOT": ["ercot-middle-8-of-10", "ercot-matching-day-pair"],
    "CAISO": ["caiso-mgo"],
    "PJM": ["pjm-match-day"],
}


def add(apps, schema_editor):
    Market = apps.get_model("aggregator", "Market")
    for market in Market.objects.filter(code__in=ADDED):
        market.baseline_methods = [
            *ADDED[market.code],
            *(m for m in market.baseline_methods if m not in ADDED[market.code]),
        ]
        market.save(update_fields=["baseline_methods"])


def remove(apps, schema_editor):
    Market = apps.get_model("aggregator", "Market")
    for market in Market.objects.filter(code__in=ADDED):
        market.baseline_methods = [m for m in market.baseline_methods if m not in ADDED[market.code]]
        market.save(update_fields=["baseline_methods"])


class Migration(migrations.Migration):
    dependencies = [("aggregator", "0006_net_benefits_and_rules")]

    operations = [migrations.RunPython(add, remove)]
