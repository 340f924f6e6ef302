from pathlib import Path
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError

from aggregator.aggregation.models import VirtualResource
from aggregator.core.csv_files import write_csv
from settlement.reconciliation import DISPUTE_HEADER, FORMATS, dispute_rows, import_market_statement, reconcile


class Command(BaseCommand):
    help = (
        "Import the market's settlement statement for a resource (CSV; formats in settlement/reconciliation.py) "
        "and reconcile it with our latest run of each event: matched intervals, differences with their causes, "
        "and with --dispute a CSV report to send. All or nothing: with any bad row nothing is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("--resource", required=True, type=int, help="The virtual resource's id.")
        parser.add_argument("--data", required=True, type=Path, help="The market's statement, CSV.")
        parser.add_argument("--format", choices=sorted(FORMATS), default="generic", help="The statement's layout.")
        parser.add_argument("--dispute", type=Path, help="Write the differing intervals here (CSV).")
        parser.add_argument("--by", default="manage.py", help="Who imports it (kept with the statement).")

    def handle(self, *args, resource, data, format, dispute, by, **options):
        found = VirtualResource.objects.select_related("market").filter(pk=resource).first()
        if found is None:
            raise CommandError(f"--resource: no resource {resource}.")
        if not data.is_file():
            raise CommandError(f"--data: no such file {data}.")
        report = import_market_statement(
            resource=found, source=data.read_bytes(), file_format=format, file_name=data.name, by=by
        )
        for problem in report.problems[:1000]:
            self.stderr.write(f"line {problem.row}, {problem.field}: {problem.message}")
        if not report.ok:
            raise CommandError(f"{len(report.problems)} problem(s) in {report.rows} row(s); nothing was imported.")
        result = reconcile(report.statement)
        totals = result.totals()
        self.stdout.write(
            f"Statement {report.statement.pk}: {len(result.lines)} interval(s), {result.matched} matched, "
            f"{len(result.differences)} differ. Ours ${totals['ours']:.2f}, the market's ${totals['market']:.2f}, "
            f"difference ${totals['difference']:.2f}."
        )
        zone = ZoneInfo(found.market.time_zone)
        for row in dispute_rows(result, zone):
            self.stdout.write(f"  event {row[0]} {row[2]}: {row[4]} (ours ${row[13] or '-'}, market ${row[14] or '-'})")
        if dispute is not None:
            with dispute.open("w", newline="") as out:
                write_csv(out, DISPUTE_HEADER, dispute_rows(result, zone))
            self.stdout.write(f"Dispute report: {dispute}")
