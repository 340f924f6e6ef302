from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from settlement.retail_events import COLUMNS, import_retail_events


class Command(BaseCommand):
    help = (
        f"Import a utility's retail demand-response events (CSV: {','.join(COLUMNS)}); their days are never the "
        "sites' baseline days. All or nothing: with any bad row every problem is listed and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, type=Path, help="The CSV file.")

    def handle(self, *args, data, **options):
        if not data.is_file():
            raise CommandError(f"--data: no such file {data}.")
        report = import_retail_events(data.read_bytes())
        for problem in report.problems[:1000]:
            self.stderr.write(f"line {problem.row}, {problem.field}: {problem.message}")
        if not report.ok:
            raise CommandError(f"{len(report.problems)} problem(s) in {report.rows} row(s); nothing was imported.")
        self.stdout.write(f"{report.stored} retail event(s) stored.")
