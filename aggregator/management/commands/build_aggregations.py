from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from aggregator.aggregation import services
from aggregator.core.errors import DomainError
from aggregator.reference.models import Market, Program


class Command(BaseCommand):
    help = (
        "Run the aggregation builder for a market and program: propose virtual resources of at least the market's "
        "minimum from eligible unassigned devices, print the proposal, and with --accept create them as drafts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--market", required=True, help="Market code, e.g. PJM")
        parser.add_argument("--program", required=True, help="Program code within the market")
        parser.add_argument(
            "--scope-kind", choices=["pricing_node", "zone"], help="Default: zone where the market allows it"
        )
        parser.add_argument("--max-kw", help="Largest resource to build (kW)")
        parser.add_argument("--accept", action="store_true", help="Create the proposed resources")

    def handle(self, *args, market, program, scope_kind, max_kw, accept, **options):
        market_obj = Market.objects.filter(code__iexact=market).first()
        if market_obj is None:
            raise CommandError(f"Unknown market {market!r}.")
        program_obj = Program.objects.filter(market=market_obj, code=program).first()
        if program_obj is None:
            raise CommandError(f"No program {program!r} in {market_obj.code}.")
        try:
            limit = Decimal(max_kw) if max_kw else None
        except InvalidOperation:
            raise CommandError(f"--max-kw must be a number, not {max_kw!r}.") from None
        try:
            proposal = services.build_proposal(
                market=market_obj, program=program_obj, scope_kind=scope_kind, max_kw=limit, by="build_aggregations"
            )
            for r in proposal.resources:
                self.stdout.write(f"  {r['name']}: {r['devices']} devices, {r['capability_kw']:.1f} kW")
            for u in proposal.unplaced:
                self.stdout.write(f"  not placed, {u['scope']}: {u['reason']}")
            if proposal.ineligible:
                self.stdout.write(f"  not eligible: {proposal.ineligible}")
            self.stdout.write(
                f"Proposal {proposal.pk}: {len(proposal.resources)} resource(s) in {proposal.seconds:.2f} s."
            )
            if accept:
                created = services.accept_proposal(proposal=proposal, by="build_aggregations")
                self.stdout.write(f"Created {len(created)} draft resource(s).")
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
