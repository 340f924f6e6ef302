"""The Django admin for enrollment: changelists, fleet import page, lifecycle and credential actions."""

import csv
import hashlib
import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from aggregator.core.access.roles import ensure_role_groups, grant
from aggregator.demo.fleet import fleet_csv, fleet_rows
from enrollment import services
from enrollment.fleet_import import COLUMNS
from enrollment.lifecycle import State
from enrollment.models import Customer, Device, DeviceCredential, Enrollment, EnrollmentTransition, Site
from tests.factories import DeviceFactory, eligible_device

IMPORT_URL_NAME = "admin:enrollment_device_import"


@pytest.fixture
def applied(program, superuser):
    """Two enrollments in state `applied`."""
    return [services.apply(device=eligible_device(program), program=program, by=superuser) for _ in range(2)]


def changelist(model: str) -> str:
    return reverse(f"admin:enrollment_{model}_changelist")


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def csv_upload(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("fleet.csv", text.encode(), content_type="text/csv")


def bad_fleet() -> str:
    """Three good rows and one (line 4) with a non-numeric rated_kw."""
    rows = list(fleet_rows(customers=3))
    rows[2] = {**rows[2], "rated_kw": "lots"}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def post_action(browser, action: str, enrollments, **extra):
    data = {"action": action, "_selected_action": [e.pk for e in enrollments], **extra}
    return browser.post(changelist("enrollment"), data, follow=True)


# --- changelists -------------------------------------------------------------------


@pytest.mark.parametrize("model", ["customer", "site", "device", "enrollment", "consent"])
def test_changelist_loads(browser, applied, model):
    response = browser.get(changelist(model))

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 2


def test_device_search_by_serial_finds_only_that_device(browser):
    wanted, other = DeviceFactory(serial="FIND-ME-001"), DeviceFactory(serial="NOT-ME-002")

    response = browser.get(changelist("device"), {"q": "FIND-ME-001"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [wanted]
    assert other.serial not in response.content.decode()


def test_device_changelist_links_to_the_import_page(browser):
    response = browser.get(changelist("device"))

    assert reverse(IMPORT_URL_NAME) in response.content.decode()


# --- fleet import page --------------------------------------------------------------


def test_import_page_shows_the_upload_form(browser):
    response = browser.get(reverse(IMPORT_URL_NAME))

    assert response.status_code == 200
    assert 'type="file"' in response.content.decode()
    assert reverse("admin:enrollment_device_import_template") in response.content.decode()


def test_import_template_download_has_the_columns_as_header(browser):
    response = browser.get(reverse("admin:enrollment_device_import_template"))

    assert response.status_code == 200
    assert next(csv.reader(io.StringIO(response.content.decode()))) == list(COLUMNS)


def test_import_page_writes_a_good_file(browser):
    expected_devices = len(list(fleet_rows(customers=5)))

    response = browser.post(reverse(IMPORT_URL_NAME), {"file": csv_upload(fleet_csv(customers=5))})

    assert response.status_code == 200
    assert response.context["report"].ok
    assert Customer.objects.count() == 5
    assert Device.objects.count() == expected_devices
    assert any("row(s) OK; wrote" in m for m in messages_of(response))


def test_import_page_lists_the_errors_of_a_bad_file_and_writes_nothing(browser):
    response = browser.post(reverse(IMPORT_URL_NAME), {"file": csv_upload(bad_fleet())})

    assert response.status_code == 200
    page = response.content.decode()
    assert "Problems by row" in page
    assert re.search(r"<tr><td>4</td><td>rated_kw</td>.*?<td>not_a_number</td></tr>", page)
    assert any("nothing was written" in m for m in messages_of(response))
    assert (Customer.objects.count(), Site.objects.count(), Device.objects.count()) == (0, 0, 0)


def test_import_page_dry_run_writes_nothing(browser):
    response = browser.post(reverse(IMPORT_URL_NAME), {"file": csv_upload(fleet_csv(customers=5)), "dry_run": "on"})

    assert response.context["report"].ok
    assert any("would write" in m for m in messages_of(response))
    assert Device.objects.count() == 0


def test_import_page_is_forbidden_to_a_staff_analyst(db):
    ensure_role_groups()
    analyst = get_user_model().objects.create_user(username="ana", password="x-not-used-x", is_staff=True)
    grant(analyst, "analyst")
    client = Client()
    client.force_login(analyst)

    response = client.post(reverse(IMPORT_URL_NAME), {"file": csv_upload(fleet_csv(customers=5))})

    assert response.status_code == 403
    assert Device.objects.count() == 0


# --- enrollment lifecycle actions ------------------------------------------------------


def test_lifecycle_action_first_asks_for_confirmation_and_changes_nothing(browser, applied):
    response = browser.post(
        changelist("enrollment"), {"action": "action_reject", "_selected_action": [e.pk for e in applied]}
    )

    assert response.status_code == 200
    assert response.context["reason_required"] is True
    assert set(response.context["queryset"]) == set(applied)
    assert set(Enrollment.objects.values_list("state", flat=True)) == {State.APPLIED}


def test_submit_for_review_then_reject_with_reason_moves_enrollments_and_records_transitions(
    browser, applied, superuser
):
    post_action(browser, "action_submit_for_review", applied, apply="1")
    assert set(Enrollment.objects.values_list("state", flat=True)) == {State.UTILITY_REVIEW}

    response = post_action(browser, "action_reject", applied, apply="1", reason="Meter not on the utility's list")

    assert response.status_code == 200
    assert any("reject: 2 enrollment(s)" in m for m in messages_of(response))
    for enrollment in applied:
        enrollment.refresh_from_db()
        assert (enrollment.state, enrollment.review_outcome) == (State.REJECTED, "rejected")
        steps = list(
            EnrollmentTransition.objects.filter(enrollment=enrollment).values_list("action", "from_state", "to_state")
        )
        assert steps == [
            ("apply", "", State.APPLIED),
            ("submit_for_review", State.APPLIED, State.UTILITY_REVIEW),
            ("reject", State.UTILITY_REVIEW, State.REJECTED),
        ]
        reject = EnrollmentTransition.objects.get(enrollment=enrollment, action="reject")
        assert (reject.actor, reject.reason) == (superuser, "Meter not on the utility's list")


def test_reject_without_a_reason_leaves_state_unchanged_and_shows_an_error(browser, applied):
    response = post_action(browser, "action_reject", applied, apply="1", reason="  ")

    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert len(errors) == 1 and "reason is required" in errors[0]
    assert set(Enrollment.objects.values_list("state", flat=True)) == {State.APPLIED}
    assert not EnrollmentTransition.objects.filter(action="reject").exists()


# --- device credentials -----------------------------------------------------------------


def test_issue_credentials_shows_tokens_whose_sha256_is_stored(browser, superuser):
    devices = [DeviceFactory(), DeviceFactory()]

    response = browser.post(
        changelist("device"), {"action": "issue_credentials", "_selected_action": [d.pk for d in devices]}
    )

    assert response.status_code == 200
    tokens = re.findall(r"<code>([^<]+)</code>", response.content.decode())
    assert len(tokens) == 2
    credentials = DeviceCredential.objects.all()
    assert {c.device_id for c in credentials} == {d.pk for d in devices}
    by_digest = {c.digest: c for c in credentials}
    assert set(by_digest) == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    for token in tokens:
        assert token.split("_")[1] == by_digest[hashlib.sha256(token.encode()).hexdigest()].key_id
    assert all(c.issued_by == superuser for c in credentials)
