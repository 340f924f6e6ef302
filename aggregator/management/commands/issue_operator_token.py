from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from aggregator.core.access import tokens
from aggregator.core.access.models import OperatorToken
from aggregator.core.access.roles import roles_of


class Command(BaseCommand):
    help = "Issue an API token for an operator. The token is printed once and stored only as a hash."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--label", default="")

    def handle(self, *args, username, label, **options):
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r}.")
        if not roles_of(user):
            raise CommandError(f"{username} has no operator role (admin, operator or analyst); grant one first.")
        issued = tokens.issue("op")
        OperatorToken.objects.create(user=user, key_id=issued.key_id, digest=issued.digest, label=label)
        self.stdout.write(issued.plaintext)
