import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from enrollment.models import Customer, CustomerLogin


class Command(BaseCommand):
    help = (
        "Give a customer a login for the customer portal (/portal/). Prints a generated password once "
        "(the customer changes it by asking support to run this again with --reset)."
    )

    def add_arguments(self, parser):
        parser.add_argument("customer", help="The customer's external reference (or id).")
        parser.add_argument("username")
        parser.add_argument("--reset", action="store_true", help="Set a new password for an existing login.")

    def handle(self, *args, customer, username, reset, **options):
        row = Customer.objects.filter(external_ref=customer).first() or (
            Customer.objects.filter(pk=int(customer)).first() if customer.isdigit() else None
        )
        if row is None:
            raise CommandError(f"No customer {customer!r}.")
        User = get_user_model()
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.filter(username=username).first()
            if user is not None and not reset:
                raise CommandError(f"The username {username!r} is taken (--reset to set a new password for it).")
            if user is not None and getattr(user, "customer_login", None) is None:
                raise CommandError(f"{username!r} is not a customer login.")
            if user is not None and user.customer_login.customer_id != row.pk:
                raise CommandError(f"{username!r} belongs to another customer.")
            if user is None:
                user = User.objects.create_user(username=username, password=password)
                CustomerLogin.objects.create(user=user, customer=row)
            else:
                user.set_password(password)
                user.save()
        self.stdout.write(f"{username} / {password}  (customer {row.external_ref or row.pk}: {row.name})")
