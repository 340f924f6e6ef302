from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from aggregator.core.access.models import OperatorToken
from aggregator.reference.models import Market
from enrollment.models import Consent, Customer, Device, Enrollment, Site
from enrollment.services import issue_credential
from tests.conftest import operator_token
from tests.factories import (
    CustomerFactory,
    DeviceFactory,
    RetailProgramFactory,
    SiteFactory,
    eligible_device,
    market,
)

pytestmark = pytest.mark.django_db


def client_with_token(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def errors_of(response):
    return {(error["field"], error["code"]) for error in response.json()["errors"]}


def battery_payload(*, site, **overrides):
    payload = {
        "site": site.pk,
        "device_type": "battery",
        "manufacturer": "Tesla",
        "model": "Powerwall 3",
        "serial": "PW-0001",
        "rated_kw": "5",
        "charge_kw": "5",
        "energy_kwh": "13.5",
        "backup_reserve_pct": "20",
    }
    payload.update(overrides)
    return payload


def thermostat_payload(*, site, **overrides):
    payload = {
        "site": site.pk,
        "device_type": "thermostat",
        "manufacturer": "Ecobee",
        "model": "Premium",
        "serial": "EC-0001",
        "rated_kw": "3",
        "max_setpoint_offset_f": "4",
        "max_event_hours": "4",
    }
    payload.update(overrides)
    return payload


def site_payload(*, customer, **overrides):
    payload = {
        "customer": customer.pk,
        "utility": "PECO",
        "meter_id": "M-1",
        "market": market("PJM").pk,
        "pricing_node": "PECO_N001",
        "zone": "PECO",
    }
    payload.update(overrides)
    return payload


def consent_payload(*, customer, **overrides):
    payload = {
        "customer": customer.pk,
        "kind": "utility_data_sharing",
        "terms_version": "2026.1",
        "granted_by": "Jane Doe",
        "method": "web",
    }
    payload.update(overrides)
    return payload


def wall_clock(value, *, time_zone):
    return datetime.fromisoformat(value).astimezone(ZoneInfo(time_zone)).replace(tzinfo=None)


def act(client, enrollment_id, action, **data):
    return client.post(f"/api/v1/enrollments/{enrollment_id}/{action}/", data, format="json")


def test_a_request_without_credentials_is_401_not_authenticated():
    response = APIClient().get("/api/v1/devices/")

    assert response.status_code == 401
    assert response.json()["type"] == "not_authenticated"
    assert response.json()["status"] == 401


def test_a_malformed_bearer_token_is_401():
    response = client_with_token("not-a-token").get("/api/v1/devices/")

    assert response.status_code == 401
    assert response.json()["type"] == "invalid_token"


def test_a_revoked_operator_token_is_401(make_operator):
    user = make_operator("admin")
    token = operator_token(user)
    OperatorToken.objects.filter(user=user).update(revoked_at=timezone.now())

    response = client_with_token(token).get("/api/v1/devices/")

    assert response.status_code == 401


def test_a_device_token_on_the_operator_api_is_401_wrong_token_kind():
    _, token = issue_credential(device=DeviceFactory(), by="test")

    response = client_with_token(token).get("/api/v1/devices/")

    assert response.status_code == 401
    assert response.json()["type"] == "wrong_token_kind"


def test_a_user_without_an_operator_role_is_403():
    user = get_user_model().objects.create_user(username="no-role", password="x-not-used-x")

    response = client_with_token(operator_token(user)).get("/api/v1/devices/")

    assert response.status_code == 403
    assert response.json()["type"] == "permission_denied"


def test_an_analyst_can_read_but_not_create(api_as):
    analyst = api_as("analyst")

    assert analyst.get("/api/v1/devices/").status_code == 200
    response = analyst.post("/api/v1/customers/", {"external_ref": "C-1", "name": "Ann", "kind": "residential"})
    assert response.status_code == 403
    assert not Customer.objects.exists()


def test_an_operator_can_create_a_customer_but_not_delete_one(api_as):
    operator = api_as("operator")

    created = operator.post("/api/v1/customers/", {"external_ref": "C-1", "name": "Ann", "kind": "residential"})
    assert created.status_code == 201
    assert created.json()["external_ref"] == "C-1"

    assert operator.delete(f"/api/v1/customers/{created.json()['id']}/").status_code == 403
    assert Customer.objects.filter(pk=created.json()["id"]).exists()


def test_an_admin_can_delete_a_customer(api_as):
    customer = CustomerFactory()

    response = api_as("admin").delete(f"/api/v1/customers/{customer.pk}/")

    assert response.status_code == 204
    assert not Customer.objects.filter(pk=customer.pk).exists()


def test_only_an_admin_can_change_market_rules(api_as):
    pjm = market("PJM")

    refused = api_as("operator").patch(f"/api/v1/markets/{pjm.pk}/", {"utility_review_days": 30})
    accepted = api_as("admin").patch(f"/api/v1/markets/{pjm.pk}/", {"utility_review_days": 30})

    assert refused.status_code == 403
    assert accepted.status_code == 200
    assert Market.objects.get(pk=pjm.pk).utility_review_days == 30


def test_a_battery_without_energy_kwh_is_rejected_naming_the_field(api_as):
    payload = battery_payload(site=SiteFactory())
    del payload["energy_kwh"]

    response = api_as("operator").post("/api/v1/devices/", payload)

    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert ("energy_kwh", "required") in errors_of(response)
    assert not Device.objects.exists()


def test_a_thermostat_with_energy_kwh_is_rejected_as_not_applicable(api_as):
    response = api_as("operator").post("/api/v1/devices/", thermostat_payload(site=SiteFactory(), energy_kwh="10"))

    assert response.status_code == 400
    assert ("energy_kwh", "not_applicable") in errors_of(response)
    assert not Device.objects.exists()


def test_a_valid_thermostat_is_created(api_as):
    response = api_as("operator").post("/api/v1/devices/", thermostat_payload(site=SiteFactory()))

    assert response.status_code == 201
    assert Device.objects.get(pk=response.json()["id"]).device_type == "thermostat"


def test_a_duplicate_serial_of_the_same_manufacturer_in_any_case_is_rejected(api_as):
    existing = DeviceFactory(manufacturer="Tesla", serial="PW-0001")

    response = api_as("operator").post(
        "/api/v1/devices/", battery_payload(site=existing.site, manufacturer="TESLA", serial="PW-0001")
    )

    assert response.status_code == 400
    assert "serial" in {field for field, _ in errors_of(response)}
    assert Device.objects.count() == 1


def test_a_site_with_a_meter_already_registered_at_the_utility_is_rejected(api_as):
    SiteFactory(utility="PECO", meter_id="M-1")

    response = api_as("operator").post("/api/v1/sites/", site_payload(customer=CustomerFactory(), meter_id="M-1"))

    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert {code for _, code in errors_of(response)} == {"unique"}
    assert Site.objects.count() == 1


def test_a_site_without_a_time_zone_takes_the_market_time_zone(api_as):
    response = api_as("operator").post("/api/v1/sites/", site_payload(customer=CustomerFactory()))

    assert response.status_code == 201
    assert response.json()["time_zone"] == "America/New_York"


def test_a_site_with_an_unknown_time_zone_is_rejected_naming_time_zone(api_as):
    response = api_as("operator").post(
        "/api/v1/sites/", site_payload(customer=CustomerFactory(), time_zone="Mars/Olympus_Mons")
    )

    assert response.status_code == 400
    assert "time_zone" in {field for field, _ in errors_of(response)}
    assert not Site.objects.exists()


def test_customers_are_paginated_with_a_page_size(api_as):
    CustomerFactory.create_batch(7)
    analyst = api_as("analyst")

    first = analyst.get("/api/v1/customers/", {"page_size": 3}).json()
    last = analyst.get("/api/v1/customers/", {"page_size": 3, "page": 3}).json()

    assert first["count"] == 7
    assert len(first["results"]) == 3
    assert "page=2" in first["next"]
    assert len(last["results"]) == 1
    assert last["next"] is None


def test_devices_can_be_filtered_by_type(api_as):
    thermostat = DeviceFactory(
        device_type="thermostat",
        charge_kw=None,
        energy_kwh=None,
        backup_reserve_pct=None,
        max_setpoint_offset_f="4",
        max_event_hours="4",
    )
    DeviceFactory()

    response = api_as("analyst").get("/api/v1/devices/", {"device_type": "thermostat"})

    assert [device["id"] for device in response.json()["results"]] == [thermostat.pk]


def test_devices_can_be_filtered_by_market(api_as):
    in_pjm = DeviceFactory(site=SiteFactory(market=market("PJM")))
    DeviceFactory(site=SiteFactory(market=market("CAISO"), time_zone="America/Los_Angeles"))

    response = api_as("analyst").get("/api/v1/devices/", {"market": "pjm"})

    assert [device["id"] for device in response.json()["results"]] == [in_pjm.pk]


def test_devices_can_be_searched_by_serial(api_as):
    wanted = DeviceFactory(serial="FIND-ME-42")
    DeviceFactory()

    response = api_as("analyst").get("/api/v1/devices/", {"search": "FIND-ME-42"})

    assert [device["id"] for device in response.json()["results"]] == [wanted.pk]


def test_applying_for_an_eligible_device_creates_an_applied_enrollment(api_as, program):
    device = eligible_device(program)

    response = api_as("operator").post("/api/v1/enrollments/", {"device": device.pk, "program": program.pk})

    assert response.status_code == 201
    assert response.json()["state"] == "applied"
    assert "submit_for_review" in response.json()["allowed_actions"]
    assert Enrollment.objects.get(pk=response.json()["id"]).device == device


def test_submitting_for_review_sets_a_60_day_deadline_in_market_time_across_dst(api_as, program):
    operator = api_as("operator")
    with time_machine.travel(datetime(2027, 2, 15, 15, 0, tzinfo=UTC), tick=False):
        applied = operator.post("/api/v1/enrollments/", {"device": eligible_device(program).pk, "program": program.pk})

        response = act(operator, applied.json()["id"], "submit-for-review", utility_reference="PECO-123")

    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "utility_review"
    assert body["utility_reference"] == "PECO-123"
    assert wall_clock(body["review_started_at"], time_zone="America/New_York") == datetime(2027, 2, 15, 10, 0)
    assert wall_clock(body["review_deadline"], time_zone="America/New_York") == datetime(2027, 4, 16, 10, 0)


def test_an_enrollment_walks_to_active_and_each_step_records_the_operator(make_operator, program):
    user = make_operator("operator", username="olivia")
    operator = client_with_token(operator_token(user))
    enrollment_id = operator.post(
        "/api/v1/enrollments/", {"device": eligible_device(program).pk, "program": program.pk}
    ).json()["id"]

    for action in ("submit-for-review", "approve", "activate"):
        assert act(operator, enrollment_id, action).status_code == 200
    transitions = operator.get(f"/api/v1/enrollments/{enrollment_id}/transitions/").json()

    assert Enrollment.objects.get(pk=enrollment_id).state == "active"
    assert [(t["action"], t["to_state"]) for t in transitions] == [
        ("apply", "applied"),
        ("submit_for_review", "utility_review"),
        ("approve", "approved"),
        ("activate", "active"),
    ]
    assert {t["actor_label"] for t in transitions} == {"olivia"}
    assert {t["actor"] for t in transitions} == {user.pk}


def test_applying_without_consent_is_422_naming_missing_consent(api_as, program):
    device = DeviceFactory(site=SiteFactory(market=program.market))

    response = api_as("operator").post("/api/v1/enrollments/", {"device": device.pk, "program": program.pk})

    assert response.status_code == 422
    assert response.json()["type"] == "missing_consent"
    assert {error["code"] for error in response.json()["errors"]} == {"missing_consent"}
    assert not Enrollment.objects.exists()


def test_applying_from_a_site_in_a_utility_dr_program_is_422_double_counting(api_as, program):
    device = eligible_device(program)
    RetailProgramFactory(site=device.site, kind="utility_dr")

    response = api_as("operator").post("/api/v1/enrollments/", {"device": device.pk, "program": program.pk})

    assert response.status_code == 422
    assert ("site.retail_programs", "double_counting") in errors_of(response)
    assert not Enrollment.objects.exists()


def test_applying_for_a_device_already_enrolled_is_422_already_enrolled(api_as, program):
    operator = api_as("operator")
    device = eligible_device(program)
    operator.post("/api/v1/enrollments/", {"device": device.pk, "program": program.pk})

    response = operator.post("/api/v1/enrollments/", {"device": device.pk, "program": program.pk})

    assert response.status_code == 422
    assert ("device", "already_enrolled") in errors_of(response)
    assert Enrollment.objects.count() == 1


def test_a_device_whose_enrollment_was_rejected_can_apply_again(api_as, program):
    operator = api_as("operator")
    device = eligible_device(program)
    first = operator.post("/api/v1/enrollments/", {"device": device.pk, "program": program.pk})
    act(operator, first.json()["id"], "reject", reason="Wrong meter.")

    response = operator.post("/api/v1/enrollments/", {"device": device.pk, "program": program.pk})

    assert response.status_code == 201
    assert response.json()["state"] == "applied"


def test_activating_an_applied_enrollment_is_409_invalid_transition(api_as, program):
    operator = api_as("operator")
    applied = operator.post("/api/v1/enrollments/", {"device": eligible_device(program).pk, "program": program.pk})

    response = act(operator, applied.json()["id"], "activate")

    assert response.status_code == 409
    assert response.json()["type"] == "invalid_transition"
    assert Enrollment.objects.get(pk=applied.json()["id"]).state == "applied"


def test_rejecting_without_a_reason_is_400_naming_reason(api_as, program):
    operator = api_as("operator")
    applied = operator.post("/api/v1/enrollments/", {"device": eligible_device(program).pk, "program": program.pk})

    response = act(operator, applied.json()["id"], "reject", reason="   ")

    assert response.status_code == 400
    assert ("reason", "required") in errors_of(response)
    assert Enrollment.objects.get(pk=applied.json()["id"]).state == "applied"


def test_rejecting_with_a_reason_ends_the_enrollment(api_as, program):
    operator = api_as("operator")
    applied = operator.post("/api/v1/enrollments/", {"device": eligible_device(program).pk, "program": program.pk})

    response = act(operator, applied.json()["id"], "reject", reason="Meter is not interval-capable.")

    assert response.status_code == 200
    assert response.json()["state"] == "rejected"
    assert response.json()["ended_at"] is not None
    assert response.json()["allowed_actions"] == []


def test_an_analyst_cannot_apply_or_move_an_enrollment(api_as, program):
    device = eligible_device(program)
    applied = api_as("operator").post("/api/v1/enrollments/", {"device": device.pk, "program": program.pk})
    analyst = api_as("analyst")

    assert analyst.post("/api/v1/enrollments/", {"device": device.pk, "program": program.pk}).status_code == 403
    assert act(analyst, applied.json()["id"], "submit-for-review").status_code == 403
    assert Enrollment.objects.get(pk=applied.json()["id"]).state == "applied"


def test_the_eligibility_check_lists_every_problem(api_as, program):
    device = DeviceFactory(site=SiteFactory(market=program.market))
    RetailProgramFactory(site=device.site, kind="utility_dr")

    response = api_as("analyst").get(f"/api/v1/devices/{device.pk}/eligibility/", {"program": program.pk})

    assert response.status_code == 200
    assert response.json()["eligible"] is False
    assert [problem["code"] for problem in response.json()["problems"]] == [
        "missing_consent",
        "missing_consent",
        "double_counting",
    ]


def test_the_eligibility_check_passes_an_eligible_device(api_as, program):
    device = eligible_device(program)

    response = api_as("analyst").get(f"/api/v1/devices/{device.pk}/eligibility/", {"program": program.pk})

    assert response.json() == {"device": device.pk, "program": program.pk, "eligible": True, "problems": []}


def test_the_eligibility_check_requires_a_program(api_as):
    response = api_as("analyst").get(f"/api/v1/devices/{DeviceFactory().pk}/eligibility/")

    assert response.status_code == 400
    assert ("program", "required") in errors_of(response)


def test_recording_a_consent_stores_who_recorded_it(make_operator):
    user = make_operator("operator")
    customer = CustomerFactory()

    response = client_with_token(operator_token(user)).post("/api/v1/consents/", consent_payload(customer=customer))

    assert response.status_code == 201
    assert response.json()["active"] is True
    consent = Consent.objects.get(pk=response.json()["id"])
    assert (consent.customer, consent.recorded_by, consent.revoked_at) == (customer, user, None)


def test_a_new_consent_of_the_same_kind_revokes_the_earlier_one(api_as):
    operator = api_as("operator")
    customer = CustomerFactory()
    first = operator.post("/api/v1/consents/", consent_payload(customer=customer, terms_version="2025.1"))

    second = operator.post("/api/v1/consents/", consent_payload(customer=customer, terms_version="2026.1"))

    assert second.status_code == 201
    assert Consent.objects.get(pk=first.json()["id"]).revoked_at is not None
    assert Consent.objects.get(pk=second.json()["id"]).revoked_at is None


def test_program_terms_consent_without_a_program_is_400_naming_program(api_as):
    response = api_as("operator").post(
        "/api/v1/consents/", consent_payload(customer=CustomerFactory(), kind="program_terms")
    )

    assert response.status_code == 400
    assert "program" in {field for field, _ in errors_of(response)}
    assert not Consent.objects.exists()


def test_consents_cannot_be_edited_or_deleted(api_as):
    created = api_as("operator").post("/api/v1/consents/", consent_payload(customer=CustomerFactory()))
    url = f"/api/v1/consents/{created.json()['id']}/"
    admin = api_as("admin")

    assert admin.patch(url, {"terms_version": "1999.1"}).status_code == 405
    assert admin.delete(url).status_code == 405
    assert Consent.objects.get(pk=created.json()["id"]).terms_version == "2026.1"


def test_the_openapi_schema_describes_both_apis(api_as):
    response = api_as("analyst").get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/devices/" in paths
    assert "/api/device/v1/devices/" in paths


def test_the_openapi_schema_requires_authentication():
    assert APIClient().get("/api/schema/").status_code in (401, 403)


def test_bulk_apply_enrolls_the_eligible_and_gives_each_refusal_its_reasons(api_as, program):
    from tests.factories import DeviceFactory, eligible_device

    good = [eligible_device(program) for _ in range(3)]
    no_consent = DeviceFactory(site__market=program.market)
    response = api_as("operator").post(
        "/api/v1/enrollments/bulk-apply/",
        {"program": program.pk, "devices": [d.pk for d in good] + [no_consent.pk, 999_999]},
        format="json",
    )
    body = response.json()
    assert response.status_code == 200, body
    assert len(body["done"]) == 3
    refused = {r["id"]: {e["code"] for e in r["errors"]} for r in body["refused"]}
    assert refused == {no_consent.pk: {"missing_consent"}, 999_999: {"not_found"}}
    assert Enrollment.objects.filter(program=program).count() == 3


def test_bulk_transition_moves_what_it_can_and_explains_the_rest(api_as, program):
    from enrollment import services
    from tests.factories import eligible_device

    enrollments = [services.apply(device=eligible_device(program), program=program, by="t") for _ in range(3)]
    services.transition(enrollment=enrollments[0], action="submit_for_review", by="t")
    client = api_as("operator")
    response = client.post(
        "/api/v1/enrollments/bulk-transition/",
        {"action": "submit_for_review", "enrollments": [e.pk for e in enrollments]},
        format="json",
    )
    body = response.json()
    assert sorted(body["done"]) == sorted(e.pk for e in enrollments[1:])
    assert (
        body["refused"][0]["id"] == enrollments[0].pk
        and body["refused"][0]["errors"][0]["code"] == "invalid_transition"
    )
    assert Enrollment.objects.filter(state="utility_review").count() == 3
    bad = client.post(
        "/api/v1/enrollments/bulk-transition/", {"action": "reject", "enrollments": [enrollments[1].pk]}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "reason"
    assert (
        api_as("analyst")
        .post(
            "/api/v1/enrollments/bulk-transition/",
            {"action": "withdraw", "enrollments": [enrollments[1].pk]},
            format="json",
        )
        .status_code
        == 403
    )


def test_an_undecided_review_outcome_is_null_and_the_schema_says_so(api_as, program):
    device = eligible_device(program)
    client = api_as("operator")
    enrollment = client.post("/api/v1/enrollments/", {"device": device.pk, "program": program.pk}).json()

    assert enrollment["review_outcome"] is None
    schema = api_as("analyst").get("/api/schema/", {"format": "json"}).json()
    field = schema["components"]["schemas"]["Enrollment"]["properties"]["review_outcome"]
    components = schema["components"]["schemas"]
    allowed = [value for one in field["oneOf"] for value in components[one["$ref"].rsplit("/", 1)[1]]["enum"]]
    assert allowed == ["approved", "rejected", "lapsed", None]
