from django.core.management.base import BaseCommand, CommandError

from aggregator.core.access import tokens
from aggregator.reference.models import Market
from dispatch.models import DispatchEvent, MarketCredential

SOURCES = (DispatchEvent.Source.MARKET_INSTRUCTION, DispatchEvent.Source.UTILITY_CALL)


class Command(BaseCommand):
    help = (
        "Issue a token for a market's or utility's system to send dispatch instructions "
        "(/api/inbound/v1/instructions). Printed once, stored only as a hash."
    )

    def add_arguments(self, parser):
        parser.add_argument("market", help="The market code, e.g. PJM.")
        parser.add_argument("--source", default=SOURCES[0], choices=SOURCES)
        parser.add_argument("--label", default="")

    def handle(self, *args, market, source, label, **options):
        row = Market.objects.filter(code__iexact=market).first()
        if row is None:
            raise CommandError(
                f"No market {market!r}; markets are {', '.join(Market.objects.values_list('code', flat=True))}."
            )
        issued = tokens.issue("mkt")
        MarketCredential.objects.create(
            market=row, source=source, key_id=issued.key_id, digest=issued.digest, label=label
        )
        self.stdout.write(issued.plaintext)
