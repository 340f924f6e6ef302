import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from enrollment.fleet_import import import_fleet


class Command(BaseCommand):
    help = (
        "Import a customer fleet from CSV (one row per device). All or nothing: "
        "with any bad row, every problem is listed and nothing is written (exit status 1)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="Check the file and report; write nothing.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, path, dry_run, json: bool, **options):
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        report = import_fleet(source=path.read_bytes(), dry_run=dry_run)
        if json:
            self.stdout.write(_json(report.as_dict()))
        else:
            for error in report.errors[:1000]:
                where = f"row {error.row}" + (f", {error.field}" if error.field else "")
                self.stderr.write(f"{where}: {error.message} [{error.code}]")
            if len(report.errors) > 1000:
                self.stderr.write(f"... and {len(report.errors) - 1000} more")
            self.stdout.write(report.summary())
        if not report.ok:
            raise CommandError(report.summary(), returncode=1)


def _json(data) -> str:
    return json.dumps(data, indent=2)
