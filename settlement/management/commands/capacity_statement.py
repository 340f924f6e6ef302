from datetime import datetime
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError

from settlement.capacity import capacity_statement
from settlement.models import CapacityCommitment


class Command(BaseCommand):
    help = (
        "A capacity commitment's month: the payment on accredited capacity, each event's performance per interval "
        "against the commitment, non-performance charges, test events passed or failed, and the net."
    )

    def add_arguments(self, parser):
        parser.add_argument("--commitment", required=True, type=int, help="The capacity commitment's id.")
        parser.add_argument("--month", required=True, help="YYYY-MM.")

    def handle(self, *args, commitment, month, **options):
        found = CapacityCommitment.objects.select_related("resource__market").filter(pk=commitment).first()
        if found is None:
            raise CommandError(f"--commitment: no capacity commitment {commitment}.")
        try:
            first = datetime.strptime(month, "%Y-%m").date()
        except ValueError:
            raise CommandError(f"--month {month!r}: write YYYY-MM.") from None
        statement = capacity_statement(found, first)
        zone = ZoneInfo(found.resource.market.time_zone)
        out = self.stdout
        out.write(
            f"{found}: {first:%Y-%m}, {statement.days} day(s) committed, {found.accredited_kw} kW accredited at "
            f"{found.rate} {found.get_rate_unit_display()}: payment ${statement.payment}"
        )
        for event in statement.events:
            kind = "test" if event.test else "event"
            verdict = f", test {'passed' if event.passed else 'failed'}" if event.test else ""
            out.write(
                f"{kind} {event.event_id} (run v{event.run_version}): committed {event.committed_kwh:.3f} kWh, "
                f"delivered {event.delivered_kwh:.3f} kWh{verdict}, non-performance ${event.charge}"
            )
            for i in event.intervals:
                out.write(
                    f"  {i.start.astimezone(zone).isoformat()} committed {i.committed_kwh:.3f} delivered "
                    f"{i.delivered_kwh:.3f} short {i.shortfall_kwh:.3f} kWh"
                )
        for event_id in statement.unsettled_events:
            out.write(f"event {event_id}: not settled yet, not measured")
        out.write(f"Charges ${statement.charges}; net ${statement.net}")
