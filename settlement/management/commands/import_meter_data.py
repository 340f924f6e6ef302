import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from settlement.meter_import import import_meter_data


class Command(BaseCommand):
    help = (
        "Import a utility's interval meter-data CSV (utility, meter_id, start, interval_seconds, kwh|kw, quality). "
        "All or nothing: with any bad row every problem is listed and nothing is written (exit status 1)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, path, **options):
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        report = import_meter_data(
            source=path.read_bytes(), progress=lambda done, total: self.stderr.write(f"  {done}/{total} rows written")
        )
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            for error in report.errors[:1000]:
                self.stderr.write(
                    f"row {error.row}{', ' + error.field if error.field else ''}: {error.message} [{error.code}]"
                )
            self.stdout.write(report.summary())
        if not report.ok:
            raise CommandError(report.summary(), returncode=1)
