from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aggregator.reference.models import Market
from aggregator.reference.prices import import_prices


class Command(BaseCommand):
    help = (
        "Import a market's energy prices per pricing node (CSV: node,start,price_per_mwh[,interval_minutes]). "
        "All or nothing: with any bad row every problem is listed and nothing is written."
    )

    # The loader and what it stores: import_net_benefits reads its file the same way.
    importer = staticmethod(import_prices)
    stored = "price(s)"

    def add_arguments(self, parser):
        parser.add_argument("--market", required=True, help="Market code, e.g. PJM.")
        parser.add_argument("--data", required=True, type=Path, help="The CSV file.")

    def handle(self, *args, market, data, **options):
        found = Market.objects.filter(code__iexact=market).first()
        if found is None:
            raise CommandError(f"--market: no market {market!r}.")
        if not data.is_file():
            raise CommandError(f"--data: no such file {data}.")
        report = self.importer(market=found, source=data.read_bytes())
        for problem in report.problems[:1000]:
            self.stderr.write(f"line {problem.line}, {problem.field}: {problem.message}")
        if not report.ok:
            raise CommandError(f"{len(report.problems)} problem(s) in {report.rows} row(s); nothing was imported.")
        self.stdout.write(f"{report.stored} {self.stored} stored for {found.code}.")
