from datetime import datetime
from zoneinfo import ZoneInfo

import time_machine
from django.core.management import call_command

from aggregator.models import ResourceState, VirtualResource


def test_demo_seed_builds_virtual_resources_of_at_least_100_kw_in_two_markets(db, settings, tmp_path):
    settings.VPP_DATA_DIR = tmp_path
    with time_machine.travel(datetime(2026, 7, 15, 15, 0, tzinfo=ZoneInfo("America/New_York")), tick=False):
        call_command("seed_demo", customers=300)
    submitted = VirtualResource.objects.filter(state=ResourceState.SUBMITTED)
    assert submitted.count() >= 2
    assert set(submitted.values_list("market__code", flat=True)) == {"CAISO", "PJM"}
    assert all(r.registered_capability_kw >= r.market.min_aggregation_kw for r in submitted)
    assert all(r.memberships.filter(left_at__isnull=True).exists() for r in submitted)
