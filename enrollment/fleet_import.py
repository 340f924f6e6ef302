"""Bulk import of a customer fleet from CSV: one row per device, with its site and customer.

All or nothing: every row is parsed and checked first (types, per-type parameters,
consistency between rows, conflicts with what the database holds); if any row is
bad, the report lists every problem by row and field and nothing is written.
Otherwise the rows go to a temporary table by COPY and customers, sites, devices
and retail-program participations are upserted set-based, in one transaction.

Re-importing the same file changes nothing; a changed attribute updates the record.
Customers are keyed by `customer_ref`, sites by (`utility`, `meter_id`), devices by
(`manufacturer` case-insensitively, `serial`). A meter that belongs to another
customer, or a serial already installed at another site, is an error, not a move.
"""

import io
import time
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import connection, transaction

from aggregator.core.csv_files import RowError, UnreadableFile, read_csv, write_csv
from aggregator.reference.models import Market
from enrollment import jobs
from enrollment.device_types import MAX_KW, PARAMETERS, DeviceType, parameter_problems, parse_parameter
from enrollment.models import Customer, Device, FleetImport, RetailProgramParticipation

MAX_ROWS = 1_000_000

CUSTOMER_COLUMNS = ("customer_ref", "customer_name", "customer_kind", "contact_name", "email", "phone")
SITE_COLUMNS = (
    "utility",
    "meter_id",
    "load_serving_entity",
    "retail_tariff",
    "market",
    "pricing_node",
    "zone",
    "site_time_zone",
    "address",
    "city",
    "region",
    "postal_code",
    "country",
    "latitude",
    "longitude",
    "retail_programs",
)
DEVICE_COLUMNS = (
    "device_type",
    "manufacturer",
    "model",
    "serial",
    "rated_kw",
    *PARAMETERS,
    "bidirectional",
    "telemetry_interval_seconds",
    "communication_path",
)
COLUMNS = CUSTOMER_COLUMNS + SITE_COLUMNS + DEVICE_COLUMNS
REQUIRED_COLUMNS = frozenset(
    {
        "customer_ref",
        "customer_name",
        "customer_kind",
        "utility",
        "meter_id",
        "market",
        "pricing_node",
        "zone",
        "device_type",
        "manufacturer",
        "model",
        "serial",
        "rated_kw",
    }
)
MAX_LENGTHS = {
    "customer_ref": 64,
    "customer_name": 200,
    "contact_name": 200,
    "email": 254,
    "phone": 40,
    "utility": 100,
    "meter_id": 64,
    "load_serving_entity": 100,
    "retail_tariff": 100,
    "pricing_node": 64,
    "zone": 64,
    "address": 250,
    "city": 100,
    "region": 50,
    "postal_code": 20,
    "country": 2,
    "manufacturer": 100,
    "model": 100,
    "serial": 100,
}
CUSTOMER_FIELDS = ("customer_name", "customer_kind", "contact_name", "email", "phone")
SITE_FIELDS = (
    "customer_ref",
    "load_serving_entity",
    "retail_tariff",
    "market_id",
    "pricing_node",
    "zone",
    "site_time_zone",
    "address",
    "city",
    "region",
    "postal_code",
    "country",
    "latitude",
    "longitude",
    "retail_programs",
)
# The staging table's columns, in COPY order.
STAGE_COLUMNS = (
    ("row_no", "integer"),
    *((name, "text") for name in ("customer_ref", *CUSTOMER_FIELDS, "utility", "meter_id")),
    *((name, "text") for name in ("load_serving_entity", "retail_tariff")),
    ("market_id", "bigint"),
    *(
        (name, "text")
        for name in ("pricing_node", "zone", "site_time_zone", "address", "city", "region", "postal_code", "country")
    ),
    ("latitude", "numeric"),
    ("longitude", "numeric"),
    ("retail_programs", "text[]"),
    *((name, "text") for name in ("device_type", "manufacturer", "model", "serial")),
    ("rated_kw", "numeric"),
    *(
        (name, "integer" if spec.kind == "int" else "text" if spec.kind == "choice" else "numeric")
        for name, spec in PARAMETERS.items()
    ),
    ("bidirectional", "boolean"),
    ("telemetry_interval_seconds", "integer"),
    ("communication_path", "text"),
)
STAGE_NAMES = tuple(name for name, _ in STAGE_COLUMNS)

TRUE = frozenset({"true", "yes", "1", "y", "t"})
FALSE = frozenset({"false", "no", "0", "n", "f", ""})


@dataclass
class ImportReport:
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "dry_run": self.dry_run,
            "written": self.ok and not self.dry_run,
            "created": self.created,
            "updated": self.updated,
            "errors": [e.as_dict() for e in self.errors],
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        if not self.ok:
            return f"{len(self.errors)} error(s) in {self.rows} row(s); nothing was written."
        verb = "would write" if self.dry_run else "wrote"
        parts = [
            f"{kind}: {self.created.get(kind, 0)} new, {self.updated.get(kind, 0)} updated"
            for kind in ("customers", "sites", "devices")
        ]
        return f"{self.rows} row(s) OK; {verb} " + "; ".join(parts) + "."


class _Parser:
    """Turns CSV rows into staging tuples, collecting every problem."""

    def __init__(self, markets: dict[str, tuple[int, str]]):
        self.markets = markets  # code (upper) -> (id, time zone)
        self.time_zones = zoneinfo.available_timezones()
        self.email = EmailValidator()
        self.errors: list[RowError] = []
        self.customers: dict[str, tuple[int, tuple]] = {}
        self.sites: dict[tuple[str, str], tuple[int, tuple]] = {}
        self.devices: dict[tuple[str, str], int] = {}
        self.retail_kinds = frozenset(RetailProgramParticipation.Kind.values)
        self.device_types = frozenset(DeviceType.values)
        self.paths = frozenset(Device.CommunicationPath.values)
        self.customer_kinds = frozenset(Customer.Kind.values)

    def error(self, row: int, column: str | None, code: str, message: str) -> None:
        self.errors.append(RowError(row, column, code, message))

    def decimal(self, row: int, column: str, raw: str, *, low=None, high=None) -> Decimal | None:
        if raw == "":
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation:
            self.error(row, column, "not_a_number", f"{column} must be a number, not {raw!r}.")
            return None
        if not value.is_finite() or (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if low is not None else f"at most {high}"
            self.error(row, column, "out_of_range", f"{column} must be {bounds}.")
            return None
        return value

    def parse(self, row: int, raw: dict[str, str]) -> tuple | None:
        before = len(self.errors)
        for column in REQUIRED_COLUMNS:
            if raw[column] == "":
                self.error(row, column, "required", f"{column} is required.")
        for column, limit in MAX_LENGTHS.items():
            if len(raw[column]) > limit:
                self.error(row, column, "too_long", f"{column} is longer than {limit} characters.")
        if len(self.errors) > before:
            return None

        kind = raw["customer_kind"].lower()
        if kind not in self.customer_kinds:
            self.error(
                row,
                "customer_kind",
                "invalid_choice",
                f"customer_kind must be one of {', '.join(sorted(self.customer_kinds))}.",
            )
        if raw["email"]:
            try:
                self.email(raw["email"])
            except ValidationError:
                self.error(row, "email", "invalid", f"{raw['email']!r} is not an email address.")
        market = self.markets.get(raw["market"].upper())
        if market is None:
            self.error(
                row,
                "market",
                "unknown_market",
                f"Unknown market {raw['market']!r}; known: {', '.join(sorted(self.markets))}.",
            )
        tz = raw["site_time_zone"] or (market[1] if market else "")
        if raw["site_time_zone"] and tz not in self.time_zones:
            self.error(row, "site_time_zone", "invalid_time_zone", f"{tz!r} is not an IANA time zone name.")
        country = (raw["country"] or "US").upper()
        latitude = self.decimal(row, "latitude", raw["latitude"], low=-90, high=90)
        longitude = self.decimal(row, "longitude", raw["longitude"], low=-180, high=180)
        retail = sorted({k.strip() for k in raw["retail_programs"].split(";") if k.strip()})
        for k in retail:
            if k not in self.retail_kinds:
                self.error(
                    row,
                    "retail_programs",
                    "invalid_choice",
                    f"Unknown retail program {k!r}; known: {', '.join(sorted(self.retail_kinds))}.",
                )

        device_type = raw["device_type"].lower()
        if device_type not in self.device_types:
            self.error(
                row, "device_type", "invalid_choice", f"device_type must be one of {', '.join(DeviceType.values)}."
            )
        rated_kw = self.decimal(row, "rated_kw", raw["rated_kw"], high=MAX_KW)
        if rated_kw is not None and rated_kw <= 0:
            self.error(row, "rated_kw", "out_of_range", "rated_kw must be greater than 0.")
        params = {}
        for name in PARAMETERS:
            value, problem = parse_parameter(name, raw[name])
            if problem:
                self.error(row, name, problem.code, problem.message)
            params[name] = value
        bidirectional = raw["bidirectional"].lower()
        if bidirectional not in TRUE | FALSE:
            self.error(row, "bidirectional", "invalid", "bidirectional must be true or false.")
        bidirectional = bidirectional in TRUE
        if bidirectional and device_type not in (DeviceType.EV_CHARGER, DeviceType.BATTERY):
            self.error(row, "bidirectional", "not_applicable", "Only EV chargers and batteries can be bidirectional.")
        interval = raw["telemetry_interval_seconds"] or "300"
        if not (interval.isascii() and interval.isdigit()) or not 1 <= int(interval) <= 3600:
            self.error(
                row,
                "telemetry_interval_seconds",
                "out_of_range",
                "telemetry_interval_seconds must be a whole number from 1 to 3600.",
            )
        path = raw["communication_path"] or Device.CommunicationPath.NATIVE_API
        if path not in self.paths:
            self.error(
                row,
                "communication_path",
                "invalid_choice",
                f"communication_path must be one of {', '.join(sorted(self.paths))}.",
            )
        if device_type in self.device_types and len(self.errors) == before:
            for problem in parameter_problems(device_type, rated_kw, params):
                self.error(row, problem.field, problem.code, problem.message)
        if len(self.errors) > before:
            return None

        customer = (raw["customer_name"], kind, raw["contact_name"], raw["email"], raw["phone"])
        site = (
            raw["customer_ref"],
            raw["load_serving_entity"],
            raw["retail_tariff"],
            market[0],
            raw["pricing_node"],
            raw["zone"],
            tz,
            raw["address"],
            raw["city"],
            raw["region"],
            raw["postal_code"],
            country,
            latitude,
            longitude,
            tuple(retail),
        )
        self._consistent(row, self.customers, raw["customer_ref"], customer, CUSTOMER_FIELDS, "customer_ref")
        self._consistent(row, self.sites, (raw["utility"], raw["meter_id"]), site, SITE_FIELDS, "meter_id")
        device_key = (raw["manufacturer"].lower(), raw["serial"])
        if device_key in self.devices:
            self.error(
                row,
                "serial",
                "duplicate",
                f"Serial {raw['serial']!r} of {raw['manufacturer']} is already on row {self.devices[device_key]}.",
            )
        else:
            self.devices[device_key] = row
        if len(self.errors) > before:
            return None
        return (
            row,
            raw["customer_ref"],
            *customer,
            raw["utility"],
            raw["meter_id"],
            *site[1:14],
            list(site[14]),
            device_type,
            raw["manufacturer"],
            raw["model"],
            raw["serial"],
            rated_kw,
            *(params[name] for name in PARAMETERS),
            bidirectional,
            int(interval),
            path,
        )

    def _consistent(self, row, seen, key, values, names, key_column):
        first = seen.get(key)
        if first is None:
            seen[key] = (row, values)
            return
        first_row, first_values = first
        for name, a, b in zip(names, first_values, values):
            if a != b:
                self.error(row, name, "inconsistent", f"{name} differs from row {first_row} for the same {key_column}.")


def _read(source) -> tuple[list[str], list[tuple[int, list[str]]]] | RowError:
    try:
        return read_csv(source, max_rows=MAX_ROWS)
    except UnreadableFile as exc:
        return RowError(exc.line, None, exc.problem.code, exc.problem.message)


PROGRESS_EVERY = 5000  # rows between two progress reports while checking


def import_fleet(*, source, dry_run: bool = False, progress=None) -> ImportReport:
    """Import a fleet CSV (text, bytes or a text file). See the module docstring.

    `progress(done_rows, total_rows, stage)` is called as rows are checked ("checking") and before the set-based
    write ("writing"), whose rows all land at once."""
    report = ImportReport(dry_run=dry_run)
    started = time.perf_counter()
    read = _read(source)
    if isinstance(read, RowError):
        report.errors.append(read)
        return report
    header, records = read
    report.rows = len(records)
    unknown = [h for h in header if h not in COLUMNS]
    missing = sorted(REQUIRED_COLUMNS - set(header))
    duplicated = sorted({h for h in header if header.count(h) > 1})
    for name in unknown:
        report.errors.append(RowError(1, name, "unknown_column", f"Unknown column {name!r}."))
    for name in missing:
        report.errors.append(RowError(1, name, "missing_column", f"Required column {name!r} is missing."))
    for name in duplicated:
        report.errors.append(RowError(1, name, "duplicate_column", f"Column {name!r} appears more than once."))
    if report.errors:
        return report

    markets = {code.upper(): (pk, tz) for pk, code, tz in Market.objects.values_list("pk", "code", "time_zone")}
    parser = _Parser(markets)
    positions = [(name, header.index(name) if name in header else None) for name in COLUMNS]
    width = len(header)
    staged = []
    for n, (line, record) in enumerate(records, 1):
        if progress and n % PROGRESS_EVERY == 0:
            progress(n, report.rows, "checking")
        if len(record) != width:
            parser.error(line, None, "wrong_field_count", f"Expected {width} fields, found {len(record)}.")
            continue
        raw = {name: (record[i].strip() if i is not None else "") for name, i in positions}
        with_nul = [name for name, value in raw.items() if "\x00" in value]
        for name in with_nul:  # PostgreSQL text cannot hold one
            parser.error(line, name, "nul_character", f"{name} contains a NUL character.")
        if with_nul:
            continue
        parsed = parser.parse(line, raw)
        if parsed is not None:
            staged.append(parsed)
    report.seconds["parse"] = round(time.perf_counter() - started, 3)
    if parser.errors:
        report.errors = sorted(parser.errors, key=lambda e: (e.row, e.field or ""))
        return report
    if not staged:
        report.errors.append(RowError(2, None, "empty", "The file has a header but no rows."))
        return report

    if progress:
        progress(report.rows, report.rows, "writing")
    try:
        with transaction.atomic():
            _write(staged, report)
            if report.errors or dry_run:
                transaction.set_rollback(True)
    finally:
        report.seconds["total"] = round(time.perf_counter() - started, 3)
    return report


def _write(staged: list[tuple], report: ImportReport) -> None:
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        columns_sql = ", ".join(f"{name} {kind}" for name, kind in STAGE_COLUMNS)
        # ON COMMIT DROP alone is not enough when a caller wraps several imports in one transaction.
        cursor.execute("DROP TABLE IF EXISTS fleet_stage")
        cursor.execute(f"CREATE TEMP TABLE fleet_stage ({columns_sql}) ON COMMIT DROP")
        with cursor.copy(f"COPY fleet_stage ({', '.join(STAGE_NAMES)}) FROM STDIN") as copy:
            for row in staged:
                copy.write_row(row)
        cursor.execute("ANALYZE fleet_stage")
        report.seconds["copy"] = round(time.perf_counter() - t0, 3)

        t1 = time.perf_counter()
        cursor.execute(
            """
            SELECT s.row_no, c.external_ref FROM fleet_stage s
            JOIN enrollment_site site ON site.utility = s.utility AND site.meter_id = s.meter_id
            JOIN enrollment_customer c ON c.id = site.customer_id
            WHERE c.external_ref <> s.customer_ref
            """
        )
        for row_no, owner in cursor.fetchall():
            report.errors.append(
                RowError(
                    row_no, "meter_id", "meter_of_other_customer", f"This meter already belongs to customer {owner}."
                )
            )
        cursor.execute(
            """
            SELECT s.row_no, site.utility, site.meter_id, d.device_type FROM fleet_stage s
            JOIN enrollment_device d ON lower(d.manufacturer) = lower(s.manufacturer) AND d.serial = s.serial
            JOIN enrollment_site site ON site.id = d.site_id
            WHERE site.utility <> s.utility OR site.meter_id <> s.meter_id OR d.device_type <> s.device_type
            """
        )
        for row_no, utility, meter_id, device_type in cursor.fetchall():
            report.errors.append(
                RowError(
                    row_no,
                    "serial",
                    "device_elsewhere",
                    f"This device is already registered as a {device_type} at meter {utility} {meter_id}.",
                )
            )
        if report.errors:
            report.errors.sort(key=lambda e: e.row)
            return
        report.seconds["check"] = round(time.perf_counter() - t1, 3)

        t2 = time.perf_counter()
        customer_set = ("name", "kind", "contact_name", "email", "phone")
        _upsert(
            cursor,
            report,
            "customers",
            f"""
            INSERT INTO enrollment_customer (external_ref, name, kind, contact_name, email, phone, created_at, updated_at)
            SELECT DISTINCT ON (customer_ref) customer_ref, customer_name, customer_kind, contact_name, email, phone, now(), now()
            FROM fleet_stage ORDER BY customer_ref, row_no
            ON CONFLICT (external_ref) DO UPDATE SET {_assign(customer_set)}, updated_at = now()
            WHERE {_changed("enrollment_customer", customer_set)}
            RETURNING (xmax = 0)
        """,
        )
        site_set = (
            "customer_id",
            "load_serving_entity",
            "retail_tariff",
            "market_id",
            "pricing_node",
            "zone",
            "time_zone",
            "address",
            "city",
            "region",
            "postal_code",
            "country",
            "latitude",
            "longitude",
        )
        _upsert(
            cursor,
            report,
            "sites",
            f"""
            INSERT INTO enrollment_site (customer_id, name, utility, meter_id, load_serving_entity, retail_tariff, market_id,
                pricing_node, zone, time_zone, address, city, region, postal_code, country, latitude, longitude, created_at, updated_at)
            SELECT DISTINCT ON (s.utility, s.meter_id) c.id, '', s.utility, s.meter_id, s.load_serving_entity, s.retail_tariff,
                s.market_id, s.pricing_node, s.zone, s.site_time_zone, s.address, s.city, s.region, s.postal_code, s.country,
                s.latitude, s.longitude, now(), now()
            FROM fleet_stage s JOIN enrollment_customer c ON c.external_ref = s.customer_ref
            ORDER BY s.utility, s.meter_id, s.row_no
            ON CONFLICT (utility, meter_id) WHERE meter_id <> '' DO UPDATE SET {_assign(site_set)}, updated_at = now()
            WHERE {_changed("enrollment_site", site_set)}
            RETURNING (xmax = 0)
        """,
        )
        device_set = (
            "manufacturer",
            "model",
            "rated_kw",
            *PARAMETERS,
            "bidirectional",
            "telemetry_interval_seconds",
            "communication_path",
        )
        device_columns = ("site_id", "device_type", "serial", *device_set)
        _upsert(
            cursor,
            report,
            "devices",
            f"""
            INSERT INTO enrollment_device ({", ".join(device_columns)}, created_at, updated_at)
            SELECT site.id, s.device_type, s.serial, {", ".join(f"s.{c}" for c in device_set)}, now(), now()
            FROM fleet_stage s JOIN enrollment_site site ON site.utility = s.utility AND site.meter_id = s.meter_id
            ON CONFLICT ((lower(manufacturer)), serial) DO UPDATE SET {_assign(device_set)}, updated_at = now()
            WHERE {_changed("enrollment_device", device_set)}
            RETURNING (xmax = 0)
        """,
        )
        cursor.execute(
            """
            INSERT INTO enrollment_retailprogramparticipation (site_id, kind, name, starts_on, ends_on)
            SELECT DISTINCT site.id, k.kind, '', NULL::date, NULL::date
            FROM fleet_stage s
            CROSS JOIN LATERAL unnest(s.retail_programs) AS k(kind)
            JOIN enrollment_site site ON site.utility = s.utility AND site.meter_id = s.meter_id
            WHERE NOT EXISTS (
                SELECT 1 FROM enrollment_retailprogramparticipation r
                WHERE r.site_id = site.id AND r.kind = k.kind AND r.ends_on IS NULL
            )
            """
        )
        report.created["retail_programs"] = cursor.rowcount
        cursor.execute("DROP TABLE fleet_stage")
        report.seconds["upsert"] = round(time.perf_counter() - t2, 3)


def _assign(columns) -> str:
    return ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)


def _changed(table: str, columns) -> str:
    return f"({', '.join(f'{table}.{c}' for c in columns)}) IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in columns)})"


def _upsert(cursor, report: ImportReport, kind: str, sql: str) -> None:
    cursor.execute(sql)
    flags = [inserted for (inserted,) in cursor.fetchall()]
    report.created[kind] = sum(flags)
    report.updated[kind] = len(flags) - report.created[kind]


def template_csv() -> str:
    """A header row and one example row, for operators starting a file."""
    example = {
        "customer_ref": "C-0001",
        "customer_name": "Jane Doe",
        "customer_kind": "residential",
        "email": "jane@example.com",
        "utility": "PG&E",
        "meter_id": "1009384756",
        "market": "CAISO",
        "pricing_node": "PGAE-APND",
        "zone": "PGAE",
        "device_type": "battery",
        "manufacturer": "Tesla",
        "model": "Powerwall 3",
        "serial": "TG1234567",
        "rated_kw": "11.5",
        "charge_kw": "5",
        "energy_kwh": "13.5",
        "backup_reserve_pct": "20",
    }
    out = io.StringIO()
    write_csv(out, COLUMNS, [[example.get(c, "") for c in COLUMNS]])
    return out.getvalue()


def queue_import(*, file, by) -> FleetImport:
    """Store an uploaded fleet file and queue its import; the row shows its progress and then its report."""
    job = FleetImport.objects.create(file=file, created_by=None if isinstance(by, str) else by)
    jobs.import_fleet(job.pk)
    return job
