import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from aggregator.core.access.roles import ROLES, ensure_role_groups, grant


class Command(BaseCommand):
    help = "Create an operator account with a role; prints a generated password unless --password-env names one."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=ROLES, required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--password-env", help="Read the password from this environment variable.")

    @transaction.atomic
    def handle(self, *args, username, role, email, password_env, **options):
        import os

        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise CommandError(f"User {username!r} already exists.")
        password = os.environ.get(password_env, "") if password_env else secrets.token_urlsafe(12)
        if not password:
            raise CommandError(f"Environment variable {password_env} is empty.")
        ensure_role_groups()
        user = User.objects.create_user(
            username=username, email=email, password=password, is_staff=True, is_superuser=(role == "admin")
        )
        grant(user, role)
        self.stdout.write(f"Created {username} ({role}).")
        if not password_env:
            self.stdout.write(f"Password: {password}")
