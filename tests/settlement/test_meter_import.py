import csv
import io
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from aggregator.reference.models import Reading
from settlement.meter_import import import_meter_data
from settlement.models import MeterDataImport
from tests.factories import SiteFactory

NEW_YORK = ZoneInfo("America/New_York")


def csv_bytes(rows, header=("utility", "meter_id", "start", "interval_seconds", "kwh", "quality")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def day_rows(site, day: datetime, *, kwh="0.4"):
    """Every 15-minute interval of a local day, stepping in UTC (so DST days have 92 or 100)."""
    at = day.astimezone(UTC)
    end = (day.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=NEW_YORK).astimezone(UTC)
    rows = []
    while at < end:
        rows.append((site.utility, site.meter_id, at.astimezone(NEW_YORK).isoformat(), 900, kwh, "actual"))
        at += timedelta(minutes=15)
    return rows


def test_a_utility_file_for_many_meters_lands_including_both_dst_days(db):
    a, b = SiteFactory(), SiteFactory()
    spring = day_rows(a, datetime(2026, 3, 8, tzinfo=NEW_YORK))
    autumn = day_rows(b, datetime(2026, 11, 1, tzinfo=NEW_YORK))
    report = import_meter_data(source=csv_bytes(spring + autumn))
    assert report.ok, report.errors[:3]
    assert (len(spring), len(autumn)) == (92, 100)
    assert (report.inserted, report.updated, report.unchanged) == (192, 0, 0)
    assert Reading.objects.filter(meter_kind=1, meter_id=a.pk).count() == 92
    assert Reading.objects.filter(meter_kind=1, meter_id=b.pk).count() == 100


def test_importing_the_same_file_again_changes_nothing_and_a_changed_value_is_a_correction(db):
    site = SiteFactory()
    rows = day_rows(site, datetime(2026, 7, 15, tzinfo=NEW_YORK))
    import_meter_data(source=csv_bytes(rows))
    again = import_meter_data(source=csv_bytes(rows))
    corrected = import_meter_data(source=csv_bytes([(*rows[0][:4], "0.9", "actual")]))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 96)
    assert (corrected.updated, Reading.objects.get(meter_id=site.pk, start=datetime.fromisoformat(rows[0][2])).kwh) == (
        1,
        Decimal("0.9"),
    )


@pytest.mark.parametrize(
    "row, column, code",
    [
        (("PECO", "NO-SUCH-METER", "2026-07-15T10:00:00-04:00", 900, "0.4", "actual"), "meter_id", "unknown_meter"),
        ((None, None, "2026-07-15T10:00:00-04:00", 900, "lots", "actual"), "kwh", "not_a_number"),
        ((None, None, "2026-07-15T10:00:00", 900, "0.4", "actual"), "start", "naive_timestamp"),
        ((None, None, "2026-07-15T10:00:00-04:00", 600, "0.4", "actual"), "interval_seconds", "invalid_interval"),
        ((None, None, "2026-07-15T10:00:00-04:00", 900, "0.4", "guessed"), "quality", "invalid_choice"),
        ((None, None, "2026-07-15T10:05:00-04:00", 900, "0.4", "actual"), "start", "overlapping_interval"),
        ((None, None, "2099-07-15T10:00:00-04:00", 900, "0.4", "actual"), "start", "future_timestamp"),
    ],
)
def test_a_bad_row_is_named_by_line_and_column_and_nothing_is_written(db, row, column, code):
    site = SiteFactory()
    good = (site.utility, site.meter_id, "2026-07-15T10:00:00-04:00", 900, "0.4", "actual")
    bad = tuple(
        site.utility if v is None and i == 0 else site.meter_id if v is None and i == 1 else v
        for i, v in enumerate(row)
    )
    report = import_meter_data(source=csv_bytes([good, bad]))
    assert not report.ok
    assert [(e.row, e.field, e.code) for e in report.errors] == [(3, column, code)]
    assert not Reading.objects.exists()


def test_the_command_writes_a_good_file_and_exits_non_zero_on_a_bad_one(db, tmp_path, capsys):
    site = SiteFactory()
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(csv_bytes([(site.utility, site.meter_id, "2026-07-15T10:00:00-04:00", 900, "0.4", "actual")]))
    bad.write_bytes(csv_bytes([(site.utility, "NOPE", "2026-07-15T10:00:00-04:00", 900, "0.4", "actual")]))
    call_command("import_meter_data", str(good))
    assert "1 new" in capsys.readouterr().out
    with pytest.raises(CommandError) as error:
        call_command("import_meter_data", str(bad))
    assert "nothing was written" in str(error.value)
    assert Reading.objects.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_admin_upload_is_imported_by_a_worker_with_its_report(browser, settings, tmp_path, celery_worker):
    settings.MEDIA_ROOT = tmp_path
    site = SiteFactory()
    rows = day_rows(site, datetime(2026, 7, 15, tzinfo=NEW_YORK))
    upload = SimpleUploadedFile("peco.csv", csv_bytes(rows), content_type="text/csv")
    response = browser.post(reverse("admin:settlement_meterdataimport_upload"), {"file": upload})
    job = MeterDataImport.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/{job.pk}/change/")
    for _ in range(100):
        job.refresh_from_db()
        if job.state in ("done", "rejected", "failed"):
            break
        time.sleep(0.1)
    assert (job.state, job.report["inserted"]) == ("done", 96), job.report
    assert Reading.objects.filter(meter_id=site.pk).count() == 96
    page = browser.get(reverse("admin:settlement_meterdataimport_change", args=[job.pk])).content.decode()
    assert "96 row(s): 96 new" in page
