"""The readings' primary key carries every column reads use, so a meter's month is an index-only scan.

Readings arrive in time order across the whole fleet, so a meter's readings lie one per heap page: a month of
15-minute readings was ~2,900 page reads (~110 ms from disk, tests/bench/bench_readback.py). With the interval,
kWh, quality, revision and arrival time in the key's leaf entries (INCLUDE: not part of uniqueness), the same
read takes that meter's few leaf pages once autovacuum has marked the heap pages all-visible; so do settlement's
read and its fingerprint of what it read. Rebuilds the key of every partition (a one-off: on a large
installation, run it in a maintenance window).
"""

from django.db import migrations

COLUMNS = "(meter_kind, meter_id, start)"


class Migration(migrations.Migration):
    dependencies = [
        ("settlement", "0014_run_fingerprint_retail"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f"""
                ALTER TABLE settlement_reading DROP CONSTRAINT settlement_reading_pkey;
                ALTER TABLE settlement_reading ADD CONSTRAINT settlement_reading_pkey
                    PRIMARY KEY {COLUMNS} INCLUDE (interval_seconds, kwh, quality, revision, received_at);
            """,
            reverse_sql=f"""
                ALTER TABLE settlement_reading DROP CONSTRAINT settlement_reading_pkey;
                ALTER TABLE settlement_reading ADD CONSTRAINT settlement_reading_pkey PRIMARY KEY {COLUMNS};
            """,
        ),
    ]
