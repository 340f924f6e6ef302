from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aggregator.reference.weather import import_temperatures


class Command(BaseCommand):
    help = (
        "Import a weather station's hourly temperatures (CSV: start,temperature_f or start,temperature_c) for "
        "weather-driven baselines. All or nothing: with any bad row every problem is listed and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("--station", required=True, help="The station, as sites name it (e.g. KPHL).")
        parser.add_argument("--data", required=True, type=Path, help="The CSV file.")

    def handle(self, *args, station, data, **options):
        if not data.is_file():
            raise CommandError(f"--data: no such file {data}.")
        report = import_temperatures(station=station, source=data.read_bytes())
        for problem in report.problems[:1000]:
            self.stderr.write(f"line {problem.row}, {problem.field}: {problem.message}")
        if not report.ok:
            raise CommandError(f"{len(report.problems)} problem(s) in {report.rows} row(s); nothing was imported.")
        self.stdout.write(f"{report.stored} hour(s) stored for {station.strip().upper()}.")
