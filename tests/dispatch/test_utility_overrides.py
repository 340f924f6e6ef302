"""A distribution utility blocks or caps dispatch in its area for a window, on its own API with its own token:
allocation respects it, events already running give the area's devices up, and the event page says why."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from aggregator.core.access import tokens
from aggregator.reference.models import Utility
from dispatch import overrides, services
from dispatch.models import Allocation, DeviceCommand, UtilityCredential, UtilityOverride
from tests.dispatch.conftest import online
from tests.factories import SiteFactory, active_device, market

LOAD = {
    "device_type": "controllable_load",
    "rated_kw": Decimal("10"),
    "max_event_hours": Decimal("4"),
    "charge_kw": None,
    "energy_kwh": None,
    "backup_reserve_pct": None,
}


def utility_client(utility: Utility) -> APIClient:
    issued = tokens.issue("utl")
    UtilityCredential.objects.create(utility=utility, key_id=issued.key_id, digest=issued.digest)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


@pytest.fixture
def area(program, make_resource):
    """Two PECO devices in zone PECO and one of another utility's in the same zone, in one resource."""
    peco = [active_device(program, **LOAD) for _ in range(2)]
    other = active_device(program, site=SiteFactory(market=program.market, utility="PPL"), **LOAD)
    online(*peco, other)
    return Utility.objects.create(name="PECO", state="PA"), peco, other, make_resource(devices=[*peco, other])


def soon() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=5)


def allocate(resource, start, *, target_kw=30):
    event = services.create_event(
        resource=resource,
        source="operator_test",
        start=start,
        end=start + timedelta(hours=1),
        target_kw=target_kw,
        over_commit_pct=0,
        by="tester",
    )
    services.advance(event_id=event.pk)
    return event, {a.device_id: a for a in Allocation.objects.filter(event=event)}


def test_a_block_leaves_the_areas_devices_out_and_says_why(area, client, make_operator):
    peco, (a, b), other, resource = area
    start = soon()
    client = utility_client(peco)
    answer = client.post(
        "/api/utility/v1/overrides/",
        {
            "market": "PJM",
            "zone": "PECO",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
            "reason": "Feeder 12 switching",
        },
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["cap_kw"] is None and answer.json()["utility"] == "PECO"
    event, allocations = allocate(resource, start)
    assert allocations[a.pk].reason == allocations[b.pk].reason == "utility_override"
    assert max(allocations[a.pk].kw) == max(allocations[b.pk].kw) == 0
    assert max(allocations[other.pk].kw) == 10  # another utility's site in the zone is not the utility's to block
    client.force_login(make_operator("operator"))
    page = client.get(f"/console/events/{event.pk}/")
    assert page.status_code == 200 and "Feeder 12 switching" in page.content.decode()


def test_a_cap_keeps_the_areas_devices_within_it(area):
    peco, (a, b), other, resource = area
    start = soon()
    overrides.make(
        utility=peco,
        market=market("PJM"),
        zone="PECO",
        start=start,
        end=start + timedelta(hours=1),
        cap_kw=Decimal("12"),
        reason="Substation loading",
        by="PECO",
    )
    _, allocations = allocate(resource, start)
    assert max(allocations[a.pk].kw) + max(allocations[b.pk].kw) == pytest.approx(12)
    assert max(allocations[other.pk].kw) == 10


def test_a_running_event_gives_the_blocked_devices_up(area, django_capture_on_commit_callbacks):
    peco, (a, b), other, resource = area
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=False):
        event, _ = allocate(resource, start)
        for chunk in services.advance(event_id=event.pk):
            services.issue_commands(
                event_id=chunk[0], round_number=chunk[1], first_device=chunk[2], last_device=chunk[3]
            )
    assert DeviceCommand.objects.filter(event=event, status="pending").count() == 3
    with django_capture_on_commit_callbacks(execute=False) as queued:
        overrides.make(
            utility=peco,
            market=market("PJM"),
            zone="PECO",
            start=start,
            end=start + timedelta(hours=1),
            reason="Fault on feeder 7",
            by="PECO",
        )
    left = DeviceCommand.objects.filter(event=event, device__in=[a, b])
    assert {c.status for c in left} == {"opted_out"} and "Fault on feeder 7" in left[0].reason
    assert DeviceCommand.objects.get(event=event, device=other).status == "pending"
    assert queued  # the event re-balances once the override commits


def test_a_utility_sees_only_its_own_overrides_and_bad_input_names_the_field(area, api_as):
    peco, *_ = area
    ppl = Utility.objects.create(name="PPL", state="PA")
    start = soon()
    mine = overrides.make(
        utility=peco,
        market=market("PJM"),
        zone="PECO",
        start=start,
        end=start + timedelta(hours=1),
        reason="Work",
        by="PECO",
    )
    theirs = utility_client(ppl)
    assert theirs.get("/api/utility/v1/overrides/").json()["results"] == []
    assert theirs.get(f"/api/utility/v1/overrides/{mine.pk}/").status_code == 404
    assert theirs.post(f"/api/utility/v1/overrides/{mine.pk}/cancel/").status_code == 404
    bad = theirs.post(
        "/api/utility/v1/overrides/",
        {"market": "PJM", "zone": "PPL", "start": start.isoformat(), "end": start.isoformat(), "reason": "x"},
        format="json",
    )
    assert bad.status_code == 400 and "end" in str(bad.json())
    # An operator's token is not a utility's; no token at all is refused.
    assert APIClient().get("/api/utility/v1/overrides/").status_code == 401
    assert api_as("admin").get("/api/utility/v1/overrides/").status_code in (401, 403)
    cancelled = utility_client(peco).post(f"/api/utility/v1/overrides/{mine.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["cancelled_at"] is not None


def test_a_token_is_issued_for_a_known_utility_only(db, capsys):
    Utility.objects.create(name="PECO")
    call_command("issue_utility_token", "PECO")
    assert capsys.readouterr().out.startswith("utl_")
    with pytest.raises(Exception, match="No utility"):
        call_command("issue_utility_token", "Nowhere Power")


def test_the_console_lists_overrides_and_an_operator_cancels_one(area, client, make_operator):
    peco, *_ = area
    start = soon()
    override = overrides.make(
        utility=peco,
        market=market("PJM"),
        zone="PECO",
        start=start,
        end=start + timedelta(hours=1),
        reason="Transformer swap",
        by="PECO",
    )
    client.force_login(make_operator("analyst"))
    page = client.get("/console/storm-watches/").content.decode()
    assert "Transformer swap" in page and "in force" in page and 'name="cancel_override"' not in page
    client.force_login(make_operator("operator"))
    assert client.post("/console/storm-watches/", {"cancel_override": override.pk}).status_code == 302
    override.refresh_from_db()
    assert override.cancelled_at is not None


def test_an_operator_keys_in_an_override_on_the_utilitys_word(area, client, make_operator):
    peco, devices, other, resource = area
    start = soon()
    form = {
        "kind": "override",
        "utility": "PECO",
        "market": "PJM",
        "zone": "PECO",
        "pricing_nodes": "",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "cap_kw": "",
        "reason": "Feeder fault, called in by PECO's control room",
    }
    client.force_login(make_operator("analyst"))
    assert client.post("/console/storm-watches/", form).status_code == 403
    client.force_login(make_operator("operator"))
    for field, value in (("cap_kw", "lots"), ("cap_kw", "NaN"), ("utility", "Nowhere Power"), ("end", "soon")):
        bad = client.post("/console/storm-watches/", {**form, field: value})
        assert bad.status_code == 400 and f"<strong>{field}</strong>".encode() in bad.content, field
    backwards = client.post("/console/storm-watches/", {**form, "end": (start - timedelta(hours=1)).isoformat()})
    assert backwards.status_code == 400 and b"<strong>end</strong>" in backwards.content
    assert not UtilityOverride.objects.exists()

    assert client.post("/console/storm-watches/", form).status_code == 302
    override = UtilityOverride.objects.get()
    assert override.utility == peco and override.cap_kw is None and override.zone == "PECO"
    assert override.created_by_label.endswith("for PECO")
    # The override keyed in from the console is the same rule allocation follows: PECO's devices get nothing.
    _, allocations = allocate(resource, start)
    assert {allocations[d.pk].reason for d in devices} == {"utility_override"}
    assert allocations[other.pk].kw and max(allocations[other.pk].kw) > 0
    capped = client.post(
        "/console/storm-watches/",
        {
            **form,
            "cap_kw": "7.5",
            "start": (start + timedelta(hours=2)).isoformat(),
            "end": (start + timedelta(hours=3)).isoformat(),
        },
    )
    assert capped.status_code == 302
    assert UtilityOverride.objects.order_by("pk").last().cap_kw == Decimal("7.5")
