"""The operator API for virtual resources and the aggregation builder, on real PostgreSQL."""

import csv
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from aggregator.aggregation.models import AggregationProposal, ResourceMembership, VirtualResource
from enrollment import services as enrollment_services
from enrollment.models import DeviceStatus
from tests.factories import ProgramFactory, SiteFactory, eligible_device, market

pytestmark = pytest.mark.django_db

RESOURCES = "/api/v1/virtual-resources/"
PROPOSALS = "/api/v1/aggregation-proposals/"
NODE = "PECO_N001"
OTHER_NODE = "PECO_N002"

# A battery from the factory: 5 kW, 13.5 kWh, 20% backup reserve, round-trip
# efficiency unset (0.9025, so 0.95 on discharge); the program's events last 4 hours.
DISCHARGE_EFFICIENCY = 0.9025**0.5


def battery_kw(soc_pct: float, *, event_hours: float = 4) -> float:
    return min(5.0, 13.5 * (soc_pct - 20) / 100 * DISCHARGE_EFFICIENCY / event_hours)


# --- helpers -----------------------------------------------------------------------


def errors_of(response):
    return {(error["field"], error["code"]) for error in response.json()["errors"]}


def member_device(
    program, *, pricing_node=NODE, zone="PECO", utility="PECO", stop_at="activate", site_kwargs=None, **device_kwargs
):
    """A device in the program, its enrollment taken through the lifecycle up to `stop_at` (active by default)."""
    site = SiteFactory(
        market=program.market,
        pricing_node=pricing_node,
        zone=zone,
        utility=utility,
        time_zone=program.market.time_zone,
        **(site_kwargs or {}),
    )
    device = eligible_device(program, site=site, **device_kwargs)
    enrollment = enrollment_services.apply(device=device, program=program, by="test")
    for action in ("submit_for_review", "approve", "activate"):
        enrollment = enrollment_services.transition(enrollment=enrollment, action=action, by="test")
        if action == stop_at:
            break
    return device


def generator(program, kw, **kwargs):
    """An active generator: its capability is its nameplate whatever the hour."""
    return member_device(
        program,
        device_type="generator",
        manufacturer="Generac",
        model="Protector",
        rated_kw=Decimal(str(kw)),
        min_run_minutes=30,
        fuel="natural_gas",
        charge_kw=None,
        energy_kwh=None,
        backup_reserve_pct=None,
        **kwargs,
    )


def battery(program, *, soc_pct, **kwargs):
    device = member_device(program, **kwargs)
    DeviceStatus.objects.create(
        device=device, online=True, last_seen_at=timezone.now(), state_of_charge_pct=Decimal(str(soc_pct))
    )
    return device


def create(client, program, /, **overrides):
    payload = {
        "name": "PECO node 1",
        "market": program.market_id,
        "program": program.pk,
        "scope_kind": "pricing_node",
        "scope": NODE,
    }
    payload.update(overrides)
    return client.post(RESOURCES, payload, format="json")


def act(client, resource_id, action, **data):
    return client.post(f"{RESOURCES}{resource_id}/{action}/", data, format="json")


def add(client, resource_id, device, **data):
    return act(client, resource_id, "add-member", device=device.pk, **data)


def resource_with(client, program, devices, /, **overrides):
    """A draft resource (created through the API) holding `devices`; its id."""
    response = create(client, program, **overrides)
    assert response.status_code == 201, response.json()
    resource_id = response.json()["id"]
    for device in devices:
        assert add(client, resource_id, device).status_code == 200
    return resource_id


def get(client, resource_id, path="", **params):
    return client.get(f"{RESOURCES}{resource_id}/{path}", params)


# --- creating a resource -----------------------------------------------------------


def test_an_operator_creates_a_draft_resource(api_as, program):
    response = create(api_as("operator"), program)

    assert response.status_code == 201
    body = response.json()
    assert body["state"] == "draft"
    assert "submit" in body["allowed_actions"]
    assert body["participation_model"] == program.service
    assert body["registered_capability_kw"] is None
    assert VirtualResource.objects.get(pk=body["id"]).transitions.get().action == "create"


def test_a_zone_scoped_resource_in_a_single_node_market_is_400_naming_scope_kind(api_as):
    nyiso = ProgramFactory(market=market("NYISO"))

    response = create(api_as("operator"), nyiso, scope_kind="zone", scope="N.Y.C.")

    assert response.status_code == 400
    assert ("scope_kind", "multi_node_not_allowed") in errors_of(response)
    assert not VirtualResource.objects.exists()


def test_a_program_from_another_market_is_400_naming_program(api_as, program):
    nyiso = ProgramFactory(market=market("NYISO"))

    response = create(api_as("operator"), program, program=nyiso.pk)

    assert response.status_code == 400
    assert "program" in {field for field, _ in errors_of(response)}
    assert not VirtualResource.objects.exists()


def test_a_duplicate_name_in_a_market_is_400_naming_name(api_as, program):
    client = api_as("operator")
    assert create(client, program).status_code == 201

    response = create(client, program, scope=OTHER_NODE)

    assert response.status_code == 400
    assert ("name", "unique") in errors_of(response)
    assert VirtualResource.objects.count() == 1


def test_an_analyst_cannot_create_a_resource(api_as, program):
    response = create(api_as("analyst"), program)

    assert response.status_code == 403
    assert not VirtualResource.objects.exists()


def test_an_operator_renames_a_resource_and_sets_its_cap(api_as, program):
    client = api_as("operator")
    resource_id = resource_with(client, program, [])

    response = client.patch(f"{RESOURCES}{resource_id}/", {"name": "PECO north", "max_kw": "250"}, format="json")

    assert response.status_code == 200
    assert (response.json()["name"], Decimal(response.json()["max_kw"])) == ("PECO north", Decimal("250"))


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"max_kw": "0"}, "max_kw"),
        ({"max_kw": "50"}, "max_kw"),
        ({"name": "Taken"}, "name"),
    ],
    ids=["zero-cap", "cap-below-minimum", "duplicate-name"],
)
def test_an_edit_breaking_the_creation_rules_is_400_naming_the_field(api_as, program, payload, field):
    client = api_as("operator")
    resource_id = resource_with(client, program, [])
    resource_with(client, program, [], name="Taken")

    response = client.patch(f"{RESOURCES}{resource_id}/", payload, format="json")

    assert response.status_code == 400
    assert field in {f for f, _ in errors_of(response)}


# --- members -----------------------------------------------------------------------


def test_a_device_at_another_pricing_node_is_outside_a_node_scoped_resource(api_as, program):
    client = api_as("operator")
    resource_id = resource_with(client, program, [])
    device = generator(program, 50, pricing_node=OTHER_NODE)

    response = add(client, resource_id, device)

    assert response.status_code == 422
    assert ("device", "outside_scope") in errors_of(response)
    assert not ResourceMembership.objects.exists()


def test_the_same_device_joins_a_zone_scoped_resource_covering_its_zone(api_as, program):
    client = api_as("operator")
    resource_id = resource_with(client, program, [], scope_kind="zone", scope="PECO")
    device = generator(program, 50, pricing_node=OTHER_NODE, zone="PECO")

    response = add(client, resource_id, device)

    assert response.status_code == 200
    assert response.json()["member_count"] == 1


def test_a_device_in_utility_review_cannot_join(api_as, program):
    client = api_as("operator")
    resource_id = resource_with(client, program, [])
    device = generator(program, 50, stop_at="submit_for_review")

    response = add(client, resource_id, device)

    assert response.status_code == 422
    assert ("device", "enrollment_not_active") in errors_of(response)
    assert "utility review" in response.json()["errors"][0]["message"]
    assert not ResourceMembership.objects.exists()


def test_a_device_already_in_another_resource_cannot_join(api_as, program):
    client = api_as("operator")
    device = generator(program, 50)
    resource_with(client, program, [device])
    other_id = resource_with(client, program, [], name="PECO node 1 bis")

    response = add(client, other_id, device)

    assert response.status_code == 422
    assert ("device", "already_in_resource") in errors_of(response)
    assert ResourceMembership.objects.filter(device=device).count() == 1


def test_removing_a_device_that_is_not_a_member_is_404(api_as, program):
    client = api_as("operator")
    resource_id = resource_with(client, program, [])
    device = generator(program, 50)

    response = act(client, resource_id, "remove-member", device=device.pk)

    assert response.status_code == 404
    assert ("device", "not_a_member") in errors_of(response)


def test_changing_members_of_a_draft_records_no_modification(api_as, program):
    client = api_as("operator")
    device = generator(program, 50)
    resource_id = resource_with(client, program, [device])

    response = act(client, resource_id, "remove-member", device=device.pk)

    assert response.status_code == 200
    assert response.json()["member_count"] == 0
    assert get(client, resource_id, "history/").json()["modifications"] == []


# --- lifecycle ---------------------------------------------------------------------


def test_submitting_a_resource_below_the_minimum_is_422_with_the_shortfall(api_as, program):
    client = api_as("operator")
    resource_id = resource_with(client, program, [generator(program, 30), generator(program, 30)])

    response = act(client, resource_id, "submit")

    assert response.status_code == 422
    assert ("capability", "below_minimum_size") in errors_of(response)
    assert "40.0 kW short" in response.json()["errors"][0]["message"]
    body = get(client, resource_id).json()
    assert body["state"] == "draft"
    assert body["registered_capability_kw"] is None
    assert body["submitted_at"] is None
    assert [t["action"] for t in get(client, resource_id, "history/").json()["transitions"]] == ["create"]


def test_a_resource_is_submitted_registered_and_activated(api_as, program):
    client = api_as("operator")
    resource_id = resource_with(client, program, [generator(program, 60), generator(program, 60)])

    submitted = act(client, resource_id, "submit")
    assert submitted.status_code == 200
    assert submitted.json()["state"] == "submitted"
    assert Decimal(submitted.json()["registered_capability_kw"]) == Decimal("120")
    assert submitted.json()["submitted_at"] is not None

    missing_id = act(client, resource_id, "register")
    assert missing_id.status_code == 400
    assert ("market_resource_id", "required") in errors_of(missing_id)
    assert get(client, resource_id).json()["state"] == "submitted"

    registered = act(client, resource_id, "register", market_resource_id="  PJM-DER-0042 ")
    assert registered.status_code == 200
    assert registered.json()["state"] == "registered"
    assert registered.json()["market_resource_id"] == "PJM-DER-0042"

    activated = act(client, resource_id, "activate")
    assert activated.status_code == 200
    assert activated.json()["state"] == "active"
    assert activated.json()["activated_at"] is not None


def test_an_action_the_state_does_not_allow_is_409(api_as, program):
    client = api_as("operator")
    resource_id = resource_with(client, program, [])

    response = act(client, resource_id, "activate")

    assert response.status_code == 409
    assert ("state", "invalid_transition") in errors_of(response)


@pytest.mark.parametrize(
    "state_actions", [["submit", "register"], ["submit", "register", "activate"]], ids=["registered", "active"]
)
def test_member_changes_after_registration_are_recorded_as_modifications(api_as, program, state_actions):
    client = api_as("operator")
    resource_id = resource_with(client, program, [generator(program, 60), generator(program, 60)])
    for action in state_actions:
        assert act(client, resource_id, action, market_resource_id="PJM-DER-1").status_code == 200
    newcomer = generator(program, 40)

    added = add(client, resource_id, newcomer, reason="customer upgrade")
    assert added.status_code == 200
    assert added.json()["member_count"] == 3
    assert Decimal(added.json()["registered_capability_kw"]) == Decimal("160")
    removed = act(client, resource_id, "remove-member", device=newcomer.pk, reason="customer moved out")
    assert removed.status_code == 200
    assert removed.json()["member_count"] == 2

    modifications = get(client, resource_id, "history/").json()["modifications"]
    assert [(m["kind"], m["device"]) for m in modifications] == [
        ("member_added", newcomer.pk),
        ("member_removed", newcomer.pk),
    ]
    assert [
        (m["capability_before_kw"], m["capability_after_kw"], m["capability_change_kw"]) for m in modifications
    ] == [(120.0, 160.0, 40.0), (160.0, 120.0, -40.0)]
    assert [m["reason"] for m in modifications] == ["customer upgrade", "customer moved out"]
    assert Decimal(get(client, resource_id).json()["registered_capability_kw"]) == Decimal("120")


def test_retiring_needs_a_reason_and_closes_memberships_keeping_history(api_as, program):
    client = api_as("operator")
    devices = [generator(program, 60), generator(program, 60)]
    resource_id = resource_with(client, program, devices)
    for action in ("submit", "register", "activate"):
        assert act(client, resource_id, action, market_resource_id="PJM-DER-7").status_code == 200

    no_reason = act(client, resource_id, "retire", reason="  ")
    assert no_reason.status_code == 400
    assert ("reason", "required") in errors_of(no_reason)
    assert get(client, resource_id).json()["member_count"] == 2

    retired = act(client, resource_id, "retire", reason="contract ended")
    assert retired.status_code == 200
    assert retired.json()["state"] == "retired"
    assert retired.json()["member_count"] == 0
    assert retired.json()["allowed_actions"] == []
    assert not ResourceMembership.objects.filter(resource_id=resource_id, left_at__isnull=True).exists()
    assert ResourceMembership.objects.filter(resource_id=resource_id).count() == 2  # closed, not deleted

    transitions = get(client, resource_id, "history/").json()["transitions"]
    assert [(t["action"], t["to_state"]) for t in transitions] == [
        ("create", "draft"),
        ("submit", "submitted"),
        ("register", "registered"),
        ("activate", "active"),
        ("retire", "retired"),
    ]
    assert transitions[-1]["reason"] == "contract ended"

    late = add(client, resource_id, generator(program, 10))
    assert late.status_code == 409
    assert ("resource", "resource_retired") in errors_of(late)


# --- capability --------------------------------------------------------------------


def test_capability_reports_now_a_48_hour_forecast_by_type_and_shortfall(api_as, program):
    client = api_as("analyst")
    resource_id = resource_with(api_as("operator"), program, [generator(program, 30), generator(program, 30)])

    response = get(client, resource_id, "capability/")

    assert response.status_code == 200
    body = response.json()
    assert body["now_kw"] == 60.0
    assert body["members"] == 2
    assert body["by_type_kw"] == {"generator": 60.0}
    assert body["minimum_kw"] == 100.0
    assert body["shortfall_kw"] == 40.0
    assert body["event_hours"] == 4.0
    assert len(body["forecast"]) == 48
    assert all(set(point) == {"start", "kw"} for point in body["forecast"])
    assert {point["kw"] for point in body["forecast"]} == {60.0}
    starts = [point["start"] for point in body["forecast"]]
    assert starts == sorted(starts) and len(set(starts)) == 48


@pytest.mark.parametrize("event_hours", ["0", "-1", "25", "lots"])
def test_capability_rejects_an_event_length_out_of_range(api_as, program, event_hours):
    resource_id = resource_with(api_as("operator"), program, [])

    response = get(api_as("analyst"), resource_id, "capability/", event_hours=event_hours)

    assert response.status_code == 400
    assert "event_hours" in {field for field, _ in errors_of(response)}


def test_a_battery_with_less_charge_offers_less_capability(api_as, program):
    client = api_as("operator")
    device = battery(program, soc_pct=90)
    resource_id = resource_with(client, program, [device])

    full = get(client, resource_id, "capability/").json()
    DeviceStatus.objects.filter(device=device).update(state_of_charge_pct=Decimal("30"))
    low = get(client, resource_id, "capability/").json()

    assert full["now_kw"] == pytest.approx(battery_kw(90), abs=1e-3)  # 13.5 x 0.7 x 0.95 / 4
    assert low["now_kw"] == pytest.approx(battery_kw(30), abs=1e-3)  # 13.5 x 0.1 x 0.95 / 4
    assert low["now_kw"] < full["now_kw"]
    assert full["by_type_kw"] == {"battery": full["now_kw"]}


def test_a_shorter_event_lets_a_battery_deliver_up_to_its_rating(api_as, program):
    client = api_as("operator")
    resource_id = resource_with(client, program, [battery(program, soc_pct=90)])

    body = get(client, resource_id, "capability/", event_hours="1").json()

    assert body["event_hours"] == 1.0
    assert body["now_kw"] == pytest.approx(battery_kw(90, event_hours=1)) == 5.0


def test_members_lists_each_device_with_its_kw_and_an_explanation(api_as, program):
    client = api_as("operator")
    big, small = generator(program, 60), battery(program, soc_pct=90)
    resource_id = resource_with(client, program, [big, small])

    response = get(api_as("analyst"), resource_id, "members/")

    assert response.status_code == 200
    rows = {row["device"]: row for row in response.json()}
    assert set(rows) == {big.pk, small.pk}
    assert rows[big.pk]["device_type"] == "generator"
    assert rows[big.pk]["available_kw"] == 60.0
    assert rows[big.pk]["explanation"] == "generator rated 60 kW: 60.00 kW"
    assert rows[small.pk]["available_kw"] == pytest.approx(battery_kw(90), abs=1e-3)
    assert "state of charge 90% above a 20% reserve" in rows[small.pk]["explanation"]
    assert all(row["joined_at"] for row in rows.values())


# --- registration export -----------------------------------------------------------


def located_members(program):
    """Three generators at node PECO_N001: two behind PECO meters, one behind a PPL meter."""
    where = {"latitude": Decimal("39.952583"), "longitude": Decimal("-75.165222")}
    return [
        generator(program, 50, utility="PECO", site_kwargs=where),
        generator(program, 30, utility="PECO", site_kwargs=where),
        generator(program, 25, utility="PPL", site_kwargs=where),
    ]


def test_the_registration_export_lists_each_member_with_meter_type_kw_and_location(api_as, program):
    client = api_as("operator")
    devices = located_members(program)
    resource_id = resource_with(client, program, devices)

    response = get(client, resource_id, "registration/")

    assert response.status_code == 200
    body = response.json()
    assert (body["resource"], body["market"], body["scope_kind"], body["scope"]) == (
        "PECO node 1",
        "PJM",
        "pricing_node",
        NODE,
    )
    rows = {row["device"]: row for row in body["members"]}
    assert set(rows) == {d.pk for d in devices}
    for device in devices:
        row, site = rows[device.pk], device.site
        assert (row["utility"], row["meter_id"], row["device_type"], row["rated_kw"]) == (
            site.utility,
            site.meter_id,
            "generator",
            float(device.rated_kw),
        )
        assert (row["pricing_node"], row["zone"]) == (NODE, "PECO")
        assert (row["latitude"], row["longitude"]) == (39.952583, -75.165222)


def test_the_registration_export_of_a_resource_without_members_is_a_csv_of_its_header(api_as, program):
    client = api_as("operator")
    resource_id = resource_with(client, program, [])

    response = client.get(f"{RESOURCES}{resource_id}/registration/?format=csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    (header,) = list(csv.reader(io.StringIO(response.content.decode())))
    assert {"device", "utility", "meter_id", "rated_kw"} <= set(header)


def test_the_registration_export_writes_formula_like_text_as_text_and_numbers_as_numbers(api_as, program):
    client = api_as("operator")
    where = {"latitude": Decimal("39.952583"), "longitude": Decimal("-75.165222")}
    device = generator(program, 50, utility="PECO", site_kwargs={**where, "meter_id": '=HYPERLINK("http://x.example")'})
    resource_id = resource_with(client, program, [device])

    response = client.get(f"{RESOURCES}{resource_id}/registration/?format=csv")

    assert response.status_code == 200
    (row,) = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert row["meter_id"] == '\'=HYPERLINK("http://x.example")'
    assert (row["latitude"], row["longitude"]) == ("39.952583", "-75.165222")


def test_the_registration_export_as_csv(api_as, program):
    client = api_as("operator")
    devices = located_members(program)
    resource_id = resource_with(client, program, devices)

    response = client.get(f"{RESOURCES}{resource_id}/registration/?format=csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    header, data = rows[0], rows[1:]
    assert {
        "device",
        "utility",
        "meter_id",
        "device_type",
        "rated_kw",
        "pricing_node",
        "zone",
        "latitude",
        "longitude",
    } <= set(header)
    assert sorted(int(row[header.index("device")]) for row in data) == sorted(d.pk for d in devices)


def test_utility_sharing_groups_members_by_utility_with_totals(api_as, program):
    client = api_as("operator")
    devices = located_members(program)
    resource_id = resource_with(client, program, devices)

    response = get(api_as("analyst"), resource_id, "utility-sharing/")

    assert response.status_code == 200
    utilities = response.json()["utilities"]
    assert [(u["utility"], u["ders"], u["total_rated_kw"]) for u in utilities] == [("PECO", 2, 80.0), ("PPL", 1, 25.0)]
    assert {m["device"] for m in utilities[0]["members"]} == {devices[0].pk, devices[1].pk}
    assert [m["device"] for m in utilities[1]["members"]] == [devices[2].pk]


# --- the aggregation builder -------------------------------------------------------


def propose(client, program, **extra):
    return client.post(PROPOSALS, {"market": program.market_id, "program": program.pk, **extra}, format="json")


@pytest.fixture
def two_nodes(program):
    """Node A: three active 50 kW generators; node B: one 40 kW; plus one in utility review at node A."""
    node_a = [generator(program, 50, pricing_node="NODE_A") for _ in range(3)]
    node_b = [generator(program, 40, pricing_node="NODE_B")]
    generator(program, 80, pricing_node="NODE_A", stop_at="submit_for_review")
    return node_a, node_b


def test_the_builder_proposes_resources_per_node_and_explains_what_it_left_out(api_as, program, two_nodes):
    node_a, _node_b = two_nodes

    response = propose(api_as("operator"), program, scope_kind="pricing_node")

    assert response.status_code == 201
    body = response.json()
    assert body["state"] == "proposed"
    assert body["scope_kind"] == "pricing_node"
    assert [(r["scope"], r["capability_kw"], r["devices"]) for r in body["resources"]] == [("NODE_A", 150.0, 3)]
    assert [(u["scope"], u["code"], u["devices"], u["capability_kw"]) for u in body["unplaced"]] == [
        ("NODE_B", "scope_too_small", 1, 40.0)
    ]
    assert "60.0 kW short" in body["unplaced"][0]["reason"]
    assert body["ineligible"] == {"enrollment_utility_review": 1}
    proposal = AggregationProposal.objects.get(pk=body["id"])
    assert sorted(proposal.resources[0]["device_ids"]) == sorted(d.pk for d in node_a)


def test_the_builder_leaves_out_devices_already_in_a_resource(api_as, program, two_nodes):
    node_a, _ = two_nodes
    client = api_as("operator")
    resource_with(client, program, [node_a[0]], scope="NODE_A")

    body = propose(client, program, scope_kind="pricing_node").json()

    assert [(r["scope"], r["capability_kw"], r["devices"]) for r in body["resources"]] == [("NODE_A", 100.0, 2)]
    detail = client.get(f"{PROPOSALS}{body['id']}/").json()
    assert sorted(detail["resources"][0]["device_ids"]) == sorted(d.pk for d in node_a[1:])


@pytest.mark.parametrize(
    ("devices", "max_kw", "expected"),
    [
        (3, "100", [180.0]),  # two groups would leave one below 100 kW: one group of 180
        (4, "150", [120.0, 120.0]),
        (5, "100", [180.0, 120.0]),
    ],
    ids=["fewer-bins", "balanced", "five-into-two"],
)
def test_every_proposed_resource_reaches_the_market_minimum(api_as, program, devices, max_kw, expected):
    for _ in range(devices):
        generator(program, 60, pricing_node="NODE_A")

    response = propose(api_as("operator"), program, scope_kind="pricing_node", max_kw=max_kw)

    assert response.status_code == 201
    resources = response.json()["resources"]
    assert sorted((r["capability_kw"] for r in resources), reverse=True) == expected
    assert all(r["capability_kw"] >= 100 for r in resources)
    assert sum(r["devices"] for r in resources) == devices
    assert len({r["name"] for r in resources}) == len(resources)


def test_a_zone_proposal_in_a_single_node_market_is_400(api_as):
    nyiso = ProgramFactory(market=market("NYISO"))

    response = propose(api_as("operator"), nyiso, scope_kind="zone")

    assert response.status_code == 400
    assert ("scope_kind", "multi_node_not_allowed") in errors_of(response)
    assert not AggregationProposal.objects.exists()


def test_the_proposal_list_omits_device_ids_and_the_detail_includes_them(api_as, program, two_nodes):
    node_a, _ = two_nodes
    client = api_as("operator")
    proposal_id = propose(client, program, scope_kind="pricing_node").json()["id"]

    listed = client.get(PROPOSALS).json()["results"]
    detail = client.get(f"{PROPOSALS}{proposal_id}/").json()

    assert [p["id"] for p in listed] == [proposal_id]
    assert "device_ids" not in listed[0]["resources"][0]
    assert listed[0]["resources"][0]["devices"] == 3
    assert sorted(detail["resources"][0]["device_ids"]) == sorted(d.pk for d in node_a)


def test_accepting_a_proposal_creates_draft_resources_with_its_members_once(api_as, program, two_nodes):
    node_a, _ = two_nodes
    client = api_as("operator")
    proposal_id = propose(client, program, scope_kind="pricing_node").json()["id"]

    accepted = client.post(f"{PROPOSALS}{proposal_id}/accept/")

    assert accepted.status_code == 201
    [created] = accepted.json()
    assert (created["state"], created["scope_kind"], created["scope"]) == ("draft", "pricing_node", "NODE_A")
    assert get(client, created["id"]).json()["member_count"] == 3
    assert {m["device"] for m in get(client, created["id"], "members/").json()} == {d.pk for d in node_a}
    assert client.get(f"{PROPOSALS}{proposal_id}/").json()["state"] == "accepted"

    again = client.post(f"{PROPOSALS}{proposal_id}/accept/")
    assert again.status_code == 409
    assert ("state", "invalid_transition") in errors_of(again)
    assert VirtualResource.objects.count() == 1


def test_a_stale_proposal_is_refused_and_creates_nothing(api_as, program, two_nodes):
    node_a, _ = two_nodes
    client = api_as("operator")
    proposal_id = propose(client, program, scope_kind="pricing_node").json()["id"]
    resource_with(client, program, [node_a[1]], name="Hand built", scope="NODE_A")
    resources_before = VirtualResource.objects.count()

    response = client.post(f"{PROPOSALS}{proposal_id}/accept/")

    assert response.status_code == 409
    assert ("proposal", "stale_proposal") in errors_of(response)
    assert VirtualResource.objects.count() == resources_before
    assert ResourceMembership.objects.count() == 1
    assert AggregationProposal.objects.get(pk=proposal_id).state == "proposed"


def test_a_proposal_is_discarded_once(api_as, program, two_nodes):
    client = api_as("operator")
    proposal_id = propose(client, program, scope_kind="pricing_node").json()["id"]

    discarded = client.post(f"{PROPOSALS}{proposal_id}/discard/")
    again = client.post(f"{PROPOSALS}{proposal_id}/discard/")
    accept = client.post(f"{PROPOSALS}{proposal_id}/accept/")

    assert discarded.status_code == 200
    assert discarded.json()["state"] == "discarded"
    assert discarded.json()["decided_at"] is not None
    assert again.status_code == 409
    assert accept.status_code == 409
    assert not VirtualResource.objects.exists()


def test_an_analyst_cannot_build_or_accept_proposals(api_as, program, two_nodes):
    proposal_id = propose(api_as("operator"), program, scope_kind="pricing_node").json()["id"]
    analyst = api_as("analyst")

    assert propose(analyst, program).status_code == 403
    assert analyst.post(f"{PROPOSALS}{proposal_id}/accept/").status_code == 403
    assert analyst.get(f"{PROPOSALS}{proposal_id}/").status_code == 200
    assert not VirtualResource.objects.exists()
