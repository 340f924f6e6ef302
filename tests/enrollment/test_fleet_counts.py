"""What beat counts every minute for the console: the fleet by type and status, and each site's state for the map."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from enrollment import services
from enrollment.models import DeviceStatus, Site, SiteCell, SiteState
from tests.factories import DeviceFactory, SiteFactory


def _cells() -> list[tuple]:
    return sorted(SiteCell.objects.values_list("state", "sites", "devices", "online"))


@pytest.mark.django_db
def test_site_states_follow_the_devices_and_only_changed_sites_are_written():
    a, b = (
        SiteFactory(latitude=Decimal("39.95"), longitude=Decimal("-75.16")),
        SiteFactory(latitude=Decimal("39.95"), longitude=Decimal("-75.16")),
    )
    SiteFactory(latitude=None, longitude=None)  # no position: not on the map
    up = DeviceFactory(site=a)
    DeviceFactory(site=a)
    DeviceStatus.objects.create(device=up, online=True, last_seen_at=timezone.now())

    assert services.refresh_site_states() == 2
    assert dict(SiteState.objects.values_list("site_id", "state")) == {a.pk: "partial", b.pk: "empty"}
    assert _cells() == [("empty", 1, 0, 0), ("partial", 1, 2, 1)]
    assert services.refresh_site_states() == 0  # nothing changed, nothing written

    DeviceStatus.objects.filter(device=up).update(online=False)
    Site.objects.filter(pk=b.pk).update(latitude=None, longitude=None)
    assert services.refresh_site_states() == 2  # a's state changed; b, no longer placed, left the map
    assert list(SiteState.objects.values_list("site_id", "state", "devices", "online")) == [(a.pk, "offline", 2, 0)]
    assert _cells() == [("offline", 1, 2, 0)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_refreshes_at_once_do_not_count_a_site_twice():
    """Beat's refresh and a fleet import's can meet: the second waits for the first, and sees its cells."""
    for _ in range(3):
        SiteFactory(latitude=Decimal("39.95"), longitude=Decimal("-75.16"))
    services.refresh_site_states()  # the cells both will replace; the sites' states stay as they are
    first_done, second_started = threading.Event(), threading.Event()

    def first():
        try:
            with transaction.atomic():
                services.refresh_site_states()
                first_done.set()
                second_started.wait(5)
                threading.Event().wait(0.5)  # the second is now inside its refresh, before this commits
        finally:
            connection.close()

    def second():
        try:
            first_done.wait(5)
            second_started.set()
            services.refresh_site_states()
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert _cells() == [("empty", 3, 0, 0)]
