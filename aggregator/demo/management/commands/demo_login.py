from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

DEMO_USERNAME = "demo"
DEMO_CUSTOMER = "customer"


def password_file():
    return settings.VPP_DATA_DIR / "demo_operator_password"


def customer_password_file():
    return settings.VPP_DATA_DIR / "demo_customer_password"


class Command(BaseCommand):
    help = "Print the demo operator's login (created by seed_demo)."

    def handle(self, *args, **options):
        path = password_file()
        if not path.exists():
            raise CommandError("No demo operator yet; run `manage.py seed_demo`.")
        self.stdout.write(f"    login:        {DEMO_USERNAME} / {path.read_text().strip()}")
        customer = customer_password_file()
        if customer.exists():
            self.stdout.write(f"    customer portal (/portal/): {DEMO_CUSTOMER} / {customer.read_text().strip()}")
