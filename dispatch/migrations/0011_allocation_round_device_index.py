"""A fan-out chunk reads its devices' range of the round through (event, round, device).

With (event, round) alone each chunk of 5,000 devices scanned every allocation of the event (a million at a
million devices), so the fan-out grew with the square of the fleet. The new index is built before the old one is
dropped.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dispatch", "0010_allocation_reason_rebound_limit"),
        ("enrollment", "0012_fleet_import_jobs"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="allocation",
            index=models.Index(fields=["event", "round", "device"], name="allocation_event_round_device"),
        ),
        migrations.RemoveIndex(
            model_name="allocation",
            name="allocation_event_round",
        ),
    ]
