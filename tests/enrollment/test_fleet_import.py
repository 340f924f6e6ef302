"""Fleet CSV import: the service, the management command, the operator API, and the demo seed.

Every test runs against the real PostgreSQL database (COPY into a temp table and
set-based upserts), never a mock.
"""

import csv
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from aggregator.demo.fleet import fleet_csv, fleet_rows
from aggregator.reference.models import Program
from enrollment.fleet_import import COLUMNS, import_fleet
from enrollment.lifecycle import State
from enrollment.models import Customer, Device, Enrollment, RetailProgramParticipation, Site
from tests.factories import CustomerFactory, DeviceFactory, SiteFactory

IMPORT_URL = "/api/v1/fleet-imports/"
TEMPLATE_URL = "/api/v1/fleet-imports/template/"


# --- building files --------------------------------------------------------------


def battery(**overrides) -> dict:
    """A home battery of customer C-1 at CAISO meter M-1."""
    return {
        "customer_ref": "C-1",
        "customer_name": "Jane Doe",
        "customer_kind": "residential",
        "email": "jane@example.com",
        "utility": "PG&E",
        "meter_id": "M-1",
        "market": "CAISO",
        "pricing_node": "PGAE_N001",
        "zone": "PGAE",
        "latitude": "37.5",
        "longitude": "-121.9",
        "device_type": "battery",
        "manufacturer": "Tesla",
        "model": "Powerwall 3",
        "serial": "B-1",
        "rated_kw": "11.5",
        "charge_kw": "5",
        "energy_kwh": "13.5",
        "backup_reserve_pct": "20",
        **overrides,
    }


def thermostat(**overrides) -> dict:
    """A smart thermostat at the same site as battery()."""
    row = battery(
        device_type="thermostat",
        manufacturer="ecobee",
        model="Premium",
        serial="T-1",
        rated_kw="3",
        charge_kw="",
        energy_kwh="",
        backup_reserve_pct="",
        max_setpoint_offset_f="4",
        max_event_hours="4",
    )
    return {**row, **overrides}


def generator(**overrides) -> dict:
    """A standby generator of industrial customer C-2 at PJM meter M-2, in two retail programs."""
    return {
        "customer_ref": "C-2",
        "customer_name": "Acme Foundry",
        "customer_kind": "industrial",
        "utility": "PECO",
        "meter_id": "M-2",
        "market": "PJM",
        "pricing_node": "PECO_N001",
        "zone": "PECO",
        "retail_programs": "utility_dr; net_metering",
        "device_type": "generator",
        "manufacturer": "Generac",
        "model": "Standby",
        "serial": "G-1",
        "rated_kw": "300",
        "min_run_minutes": "30",
        "fuel": "natural_gas",
        **overrides,
    }


def csv_text(rows, columns=COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def mixed_fleet() -> str:
    """Two customers, two sites, three devices (rows 2-4), two retail programs."""
    return csv_text([battery(), thermostat(), generator()])


def counts() -> dict[str, int]:
    return {
        "customers": Customer.objects.count(),
        "sites": Site.objects.count(),
        "devices": Device.objects.count(),
        "retail_programs": RetailProgramParticipation.objects.count(),
    }


NOTHING = {"customers": 0, "sites": 0, "devices": 0, "retail_programs": 0}


def where(report) -> set[tuple]:
    return {(e.row, e.field, e.code) for e in report.errors}


# --- a good file -----------------------------------------------------------------


def test_demo_fleet_file_creates_one_record_per_customer_site_device_and_retail_program(db):
    rows = list(fleet_rows(customers=20, retail_dr_share=0.5))
    expected = {
        "customers": len({r["customer_ref"] for r in rows}),
        "sites": len({(r["utility"], r["meter_id"]) for r in rows}),
        "devices": len(rows),
        "retail_programs": len({(r["utility"], r["meter_id"]) for r in rows if r["retail_programs"]}),
    }
    assert expected["retail_programs"] > 0  # the file exercises retail programs too

    report = import_fleet(source=fleet_csv(customers=20, retail_dr_share=0.5))

    assert report.ok, report.errors
    assert report.rows == len(rows)
    assert counts() == expected
    assert report.created == expected
    assert report.updated == {"customers": 0, "sites": 0, "devices": 0}


def test_devices_get_their_type_parameters_in_the_right_columns(db):
    report = import_fleet(source=mixed_fleet())

    assert report.ok, report.errors
    b = Device.objects.get(serial="B-1")
    assert (b.device_type, b.rated_kw, b.charge_kw, b.energy_kwh, b.backup_reserve_pct) == (
        "battery",
        Decimal("11.5"),
        Decimal("5"),
        Decimal("13.5"),
        Decimal("20"),
    )
    assert b.fuel is None and b.min_run_minutes is None and b.max_event_hours is None
    t = Device.objects.get(serial="T-1")
    assert (t.max_setpoint_offset_f, t.max_event_hours, t.energy_kwh) == (Decimal("4"), Decimal("4"), None)
    g = Device.objects.get(serial="G-1")
    assert (g.fuel, g.min_run_minutes, g.energy_kwh, g.charge_kw) == ("natural_gas", 30, None, None)


def test_sites_and_customers_are_linked_and_take_the_market_time_zone_by_default(db):
    import_fleet(source=mixed_fleet())

    site = Site.objects.select_related("customer", "market").get(utility="PECO", meter_id="M-2")
    assert site.customer.external_ref == "C-2" and site.customer.kind == "industrial"
    assert site.market.code == "PJM" and site.time_zone == site.market.time_zone
    assert set(site.retail_programs.values_list("kind", flat=True)) == {"utility_dr", "net_metering"}
    assert set(Device.objects.filter(site__meter_id="M-1").values_list("serial", flat=True)) == {"B-1", "T-1"}


# Each import is its own transaction, as from the command, the API or the admin (and one
# test below runs two inside one enclosing transaction). serialized_rollback
# restores the markets the migrations seed, which a transactional test's flush removes.
committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@committed
def test_reimporting_the_same_file_changes_nothing():
    text = fleet_csv(customers=20, retail_dr_share=0.5)
    assert import_fleet(source=text).ok
    before = counts()

    again = import_fleet(source=text)

    assert again.ok, again.errors
    assert again.created == {"customers": 0, "sites": 0, "devices": 0, "retail_programs": 0}
    assert again.updated == {"customers": 0, "sites": 0, "devices": 0}
    assert counts() == before


@committed
def test_changing_one_rated_kw_updates_exactly_that_device():
    rows = list(fleet_rows(customers=20))
    assert import_fleet(source=csv_text(rows)).ok
    before = counts()
    rows[3] = {**rows[3], "rated_kw": "42.5"}

    report = import_fleet(source=csv_text(rows))

    assert report.ok, report.errors
    assert report.updated == {"customers": 0, "sites": 0, "devices": 1}
    assert report.created == {"customers": 0, "sites": 0, "devices": 0, "retail_programs": 0}
    assert Device.objects.get(serial=rows[3]["serial"]).rated_kw == Decimal("42.5")
    assert counts() == before


def test_two_imports_inside_one_enclosing_transaction_work(db):
    # pytest-django's `db` wraps the test in a transaction, like any caller's transaction.atomic().
    assert import_fleet(source=mixed_fleet()).ok

    again = import_fleet(source=mixed_fleet())

    assert again.ok and again.created["devices"] == 0


def test_dry_run_reports_ok_and_writes_nothing(db):
    report = import_fleet(source=mixed_fleet(), dry_run=True)

    assert report.ok, report.errors
    assert report.as_dict()["written"] is False
    assert report.created["devices"] == 3
    assert counts() == NOTHING


# --- bad rows: every problem by row and field, nothing written ---------------------


@pytest.mark.parametrize(
    ("bad_row", "field", "code"),
    [
        pytest.param(generator(rated_kw="lots"), "rated_kw", "not_a_number", id="non_numeric_rated_kw"),
        pytest.param(battery(serial="B-2", energy_kwh=""), "energy_kwh", "required", id="battery_without_energy_kwh"),
        pytest.param(
            thermostat(serial="T-2", energy_kwh="10"), "energy_kwh", "not_applicable", id="thermostat_with_energy_kwh"
        ),
        pytest.param(generator(market="NOPE"), "market", "unknown_market", id="unknown_market"),
        pytest.param(
            generator(device_type="fusion_reactor"), "device_type", "invalid_choice", id="unknown_device_type"
        ),
        pytest.param(
            generator(site_time_zone="Mars/Olympus_Mons"), "site_time_zone", "invalid_time_zone", id="invalid_time_zone"
        ),
        pytest.param(generator(latitude="95"), "latitude", "out_of_range", id="latitude_95"),
        pytest.param(
            thermostat(serial="T-2", bidirectional="true"),
            "bidirectional",
            "not_applicable",
            id="bidirectional_thermostat",
        ),
        pytest.param(
            generator(rated_kw="100000000"),
            "rated_kw",
            "out_of_range",
            id="rated_kw_beyond_the_column",
        ),
        pytest.param(
            generator(telemetry_interval_seconds="\u00b2"),
            "telemetry_interval_seconds",
            "out_of_range",
            id="superscript_digit_interval",
        ),
    ],
)
def test_a_bad_row_is_reported_by_line_and_field_and_nothing_is_written(db, bad_row, field, code):
    report = import_fleet(source=csv_text([battery(), thermostat(), bad_row]))

    assert not report.ok
    assert (4, field, code) in where(report)
    assert {e.row for e in report.errors} == {4}
    assert counts() == NOTHING


def test_the_same_serial_twice_is_a_duplicate_naming_the_first_row(db):
    report = import_fleet(source=csv_text([battery(), thermostat(), battery(manufacturer="TESLA", model="PW")]))

    assert where(report) == {(4, "serial", "duplicate")}
    assert "row 2" in report.errors[0].message
    assert counts() == NOTHING


def test_one_customer_ref_with_two_names_is_inconsistent(db):
    report = import_fleet(source=csv_text([battery(), thermostat(customer_name="Someone Else"), generator()]))

    assert where(report) == {(3, "customer_name", "inconsistent")}
    assert "row 2" in report.errors[0].message
    assert counts() == NOTHING


def test_one_meter_with_two_customers_is_inconsistent(db):
    other_customer = thermostat(customer_ref="C-9", customer_name="John Roe", email="")
    report = import_fleet(source=csv_text([battery(), other_customer, generator()]))

    assert where(report) == {(3, "customer_ref", "inconsistent")}
    assert counts() == NOTHING


def test_many_bad_rows_are_all_reported_at_once(db):
    rows = [battery(), thermostat(rated_kw="x"), generator(market="NOPE"), battery(serial="B-2", fuel="diesel")]

    report = import_fleet(source=csv_text(rows))

    assert where(report) >= {
        (3, "rated_kw", "not_a_number"),
        (4, "market", "unknown_market"),
        (5, "fuel", "not_applicable"),
    }
    assert {e.row for e in report.errors} == {3, 4, 5}
    assert counts() == NOTHING


def test_row_numbers_are_file_lines_even_after_a_blank_line(db):
    lines = mixed_fleet().splitlines()
    text = "\n".join([lines[0], lines[1], "", lines[2], csv_text([generator(rated_kw="x")]).splitlines()[1]]) + "\n"

    report = import_fleet(source=text)

    assert where(report) == {(5, "rated_kw", "not_a_number")}


# --- bad files ---------------------------------------------------------------------


def test_a_missing_required_column_is_reported_on_the_header_line(db):
    columns = [c for c in COLUMNS if c != "serial"]
    rows = [{k: v for k, v in r.items() if k != "serial"} for r in (battery(), generator())]

    report = import_fleet(source=csv_text(rows, columns=columns))

    assert where(report) == {(1, "serial", "missing_column")}
    assert counts() == NOTHING


def test_an_unknown_column_is_reported_on_the_header_line(db):
    columns = [*COLUMNS, "colour"]
    report = import_fleet(source=csv_text([battery(colour="red"), generator()], columns=columns))

    assert where(report) == {(1, "colour", "unknown_column")}
    assert counts() == NOTHING


def test_a_row_with_the_wrong_number_of_fields_is_reported(db):
    text = mixed_fleet() + "C-3,Short Row,residential\n"

    report = import_fleet(source=text)

    assert where(report) == {(5, None, "wrong_field_count")}
    assert counts() == NOTHING


def test_an_empty_file_is_an_error(db):
    report = import_fleet(source=b"")

    assert [e.code for e in report.errors] == ["empty"]
    assert report.errors[0].row == 1
    assert counts() == NOTHING


def test_a_header_without_rows_is_an_error(db):
    report = import_fleet(source=csv_text([]))

    assert [(e.row, e.code) for e in report.errors] == [(2, "empty")]
    assert counts() == NOTHING


def test_non_utf8_bytes_are_an_encoding_error(db):
    data = csv_text([battery(), generator(customer_name="Caf\u00e9 Industries")]).encode("latin-1")

    report = import_fleet(source=data)

    assert [e.code for e in report.errors] == ["encoding"]
    assert counts() == NOTHING


@pytest.mark.parametrize("field", ["customer_name", "serial", "model"])
def test_a_nul_character_is_reported_on_its_row_and_field(db, field):
    text = csv_text([battery(), generator(**{field: "Acme\x00 Foundry"})])

    report = import_fleet(source=text.encode())

    assert where(report) == {(3, field, "nul_character")}
    assert counts() == NOTHING


def test_the_api_reports_a_nul_character_by_row_not_as_a_server_error(api_as):
    text = csv_text([battery(), thermostat(model="Pre\x00mium")])

    response = api_as("operator").post(IMPORT_URL, {"file": upload(text)}, format="multipart")

    assert response.status_code == 400, response.content
    assert [(e["row"], e["field"], e["code"]) for e in response.json()["errors"]] == [(3, "model", "nul_character")]
    assert counts() == NOTHING


def test_a_utf8_byte_order_mark_is_accepted(db):
    report = import_fleet(source=mixed_fleet().encode("utf-8-sig"))

    assert report.ok, report.errors
    assert counts()["devices"] == 3


# --- conflicts with what the database holds -----------------------------------------


def test_a_meter_of_another_customer_in_the_database_is_an_error(db):
    SiteFactory(customer=CustomerFactory(external_ref="C-OTHER"), utility="PECO", meter_id="M-2")
    before = counts()

    report = import_fleet(source=mixed_fleet())

    assert where(report) == {(4, "meter_id", "meter_of_other_customer")}
    assert "C-OTHER" in report.errors[0].message
    assert counts() == before


def test_a_serial_installed_at_another_site_is_an_error(db):
    DeviceFactory(manufacturer="tesla", serial="B-1", site=SiteFactory(utility="PECO", meter_id="M-ELSEWHERE"))
    before = counts()

    report = import_fleet(source=mixed_fleet())

    assert where(report) == {(2, "serial", "device_elsewhere")}
    assert "M-ELSEWHERE" in report.errors[0].message
    assert counts() == before


# --- management command -------------------------------------------------------------


def test_import_fleet_command_writes_a_good_file(db, tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_text(mixed_fleet())
    out = io.StringIO()

    call_command("import_fleet", str(path), stdout=out)

    assert counts() == {"customers": 2, "sites": 2, "devices": 3, "retail_programs": 2}
    assert "3 row(s) OK" in out.getvalue()


def test_import_fleet_command_fails_on_a_bad_file_and_writes_nothing(db, tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_text(csv_text([battery(), generator(latitude="95")]))
    err = io.StringIO()

    with pytest.raises(CommandError, match="nothing was written") as raised:
        call_command("import_fleet", str(path), stdout=io.StringIO(), stderr=err)

    assert raised.value.returncode == 1
    assert "row 3, latitude" in err.getvalue()
    assert counts() == NOTHING


# --- operator API -------------------------------------------------------------------


def upload(text: str, name: str = "fleet.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_api_import_of_a_good_file_returns_201_and_writes(api_as):
    response = api_as("operator").post(IMPORT_URL, {"file": upload(mixed_fleet())}, format="multipart")

    assert response.status_code == 201, response.content
    assert response.json()["written"] is True
    assert response.json()["created"]["devices"] == 3
    assert counts()["devices"] == 3


def test_api_import_of_a_bad_file_returns_400_with_errors_and_writes_nothing(api_as):
    text = csv_text([battery(), thermostat(rated_kw="x"), generator(market="NOPE")])

    response = api_as("operator").post(IMPORT_URL, {"file": upload(text)}, format="multipart")

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["written"] is False
    assert {(e["row"], e["field"]) for e in body["errors"]} == {(3, "rated_kw"), (4, "market")}
    assert counts() == NOTHING


def test_api_import_dry_run_returns_200_and_writes_nothing(api_as):
    response = api_as("operator").post(
        IMPORT_URL, {"file": upload(mixed_fleet()), "dry_run": "true"}, format="multipart"
    )

    assert response.status_code == 200, response.content
    assert response.json()["ok"] is True and response.json()["written"] is False
    assert counts() == NOTHING


def test_api_import_is_forbidden_to_an_analyst(api_as):
    response = api_as("analyst").post(IMPORT_URL, {"file": upload(mixed_fleet())}, format="multipart")

    assert response.status_code == 403
    assert counts() == NOTHING


def test_api_template_is_a_csv_whose_header_is_the_columns(api_as):
    response = api_as("analyst").get(TEMPLATE_URL)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert next(csv.reader(io.StringIO(response.content.decode()))) == list(COLUMNS)


def test_api_template_itself_imports(api_as):
    client = api_as("operator")
    template = client.get(TEMPLATE_URL).content.decode()

    response = client.post(IMPORT_URL, {"file": upload(template, "fleet-template.csv")}, format="multipart")

    assert response.status_code == 201, response.content
    assert Device.objects.get().serial == "TG1234567"


# --- demo seed ----------------------------------------------------------------------


def test_seed_demo_creates_customers_devices_and_active_enrollments(db, settings, tmp_path):
    settings.VPP_DATA_DIR = tmp_path

    call_command("seed_demo", customers=30, stdout=io.StringIO())

    assert Customer.objects.filter(external_ref__startswith="DEMO-").count() == 30
    assert Device.objects.count() >= 30
    assert Enrollment.objects.filter(state=State.ACTIVE).exists()
    assert Program.objects.filter(code__in=["caiso-pdr", "pjm-capacity-dr"]).count() == 2
    assert (tmp_path / "demo_operator_password").read_text()


def test_seed_demo_run_twice_changes_nothing(db, settings, tmp_path):
    settings.VPP_DATA_DIR = tmp_path
    call_command("seed_demo", customers=30, stdout=io.StringIO())
    password = (tmp_path / "demo_operator_password").read_text()
    before = {**counts(), "enrollments": Enrollment.objects.count(), "programs": Program.objects.count()}

    call_command("seed_demo", customers=30, stdout=io.StringIO())

    assert {**counts(), "enrollments": Enrollment.objects.count(), "programs": Program.objects.count()} == before
    assert (tmp_path / "demo_operator_password").read_text() == password
