from django.core.management.base import BaseCommand, CommandError

from aggregator.core.access import tokens
from aggregator.reference.models import Utility
from dispatch.models import UtilityCredential


class Command(BaseCommand):
    help = (
        "Issue a token for a distribution utility to block or cap dispatch in its areas (/api/utility/v1/overrides). "
        "Printed once, stored only as a hash."
    )

    def add_arguments(self, parser):
        parser.add_argument("utility", help="The utility's name, as sites name it.")
        parser.add_argument("--label", default="")

    def handle(self, *args, utility, label, **options):
        row = Utility.objects.filter(name=utility).first()
        if row is None:
            raise CommandError(f"No utility {utility!r}; add it in the admin (Utilities) first.")
        issued = tokens.issue("utl")
        UtilityCredential.objects.create(utility=row, key_id=issued.key_id, digest=issued.digest, label=label)
        self.stdout.write(issued.plaintext)
