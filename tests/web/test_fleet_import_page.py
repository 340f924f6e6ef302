"""Fleet imports from the console: the upload is imported by a real worker, its bar fed by the task, then its outcome."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from enrollment.models import Device, FleetImport
from tests.enrollment.test_fleet_import import battery, csv_text


def _finished(job: FleetImport) -> FleetImport:
    for _ in range(200):
        job.refresh_from_db()
        if job.finished:
            return job
        time.sleep(0.1)
    raise AssertionError(f"the import is still {job.state}")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_uploaded_fleet_is_imported_by_the_worker_and_its_bar_reaches_done(
    make_operator, settings, tmp_path, celery_worker
):
    settings.MEDIA_ROOT = tmp_path
    client = Client()
    client.force_login(make_operator("operator"))
    rows = [battery(serial=f"PW-{n:04d}", meter_id=f"M-{n:04d}", customer_ref=f"C-{n:04d}") for n in range(30)]
    upload = SimpleUploadedFile("fleet.csv", csv_text(rows).encode(), content_type="text/csv")
    response = client.post(reverse("console:fleet-imports"), {"file": upload})
    job = FleetImport.objects.get()
    assert response.status_code == 302 and response.url == reverse("console:fleet-import", args=[job.pk])
    assert _finished(job).state == "done"
    assert Device.objects.count() == 30
    bar = client.get(reverse("console:fleet-import", args=[job.pk]), {"part": "progress"}).content.decode()
    assert 'value="100"' in bar and "data-refresh" not in bar  # finished: the page stops polling
    assert "30 rows imported" in bar


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_file_with_problems_lists_them_by_row_and_writes_nothing(make_operator, settings, tmp_path, celery_worker):
    settings.MEDIA_ROOT = tmp_path
    client = Client()
    client.force_login(make_operator("operator"))
    upload = SimpleUploadedFile("fleet.csv", csv_text([battery(rated_kw="lots")]).encode(), content_type="text/csv")
    client.post(reverse("console:fleet-imports"), {"file": upload})
    job = _finished(FleetImport.objects.get())
    assert job.state == "rejected" and Device.objects.count() == 0
    page = client.get(reverse("console:fleet-import", args=[job.pk])).content.decode()
    assert "nothing was written" in page and "rated_kw" in page


def test_an_analyst_sees_imports_but_cannot_upload(make_operator):
    client = Client()
    client.force_login(make_operator("analyst"))
    assert client.get(reverse("console:fleet-imports")).status_code == 200
    upload = SimpleUploadedFile("fleet.csv", b"x", content_type="text/csv")
    assert client.post(reverse("console:fleet-imports"), {"file": upload}).status_code == 403
