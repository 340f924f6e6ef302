from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aggregator.reference.models import Market
from aggregator.reference.prices import import_net_benefits


class Command(BaseCommand):
    help = (
        "Import a market's monthly net-benefits thresholds (FERC Order 745; CSV: month,price_per_mwh, month as "
        "YYYY-MM). All or nothing: with any bad row every problem is listed and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("--market", required=True, help="Market code, e.g. PJM.")
        parser.add_argument("--data", required=True, type=Path, help="The CSV file.")

    def handle(self, *args, market, data, **options):
        found = Market.objects.filter(code__iexact=market).first()
        if found is None:
            raise CommandError(f"--market: no market {market!r}.")
        if not data.is_file():
            raise CommandError(f"--data: no such file {data}.")
        report = import_net_benefits(market=found, source=data.read_bytes())
        for problem in report.problems[:1000]:
            self.stderr.write(f"line {problem.line}, {problem.field}: {problem.message}")
        if not report.ok:
            raise CommandError(f"{len(report.problems)} problem(s) in {report.rows} row(s); nothing was imported.")
        self.stdout.write(f"{report.stored} month(s) stored for {found.code}.")
