from django.core.management.base import BaseCommand, CommandError

from aggregator.core.errors import DomainError
from dispatch.ocpp import services
from dispatch.ocpp.models import ChargerCredential
from enrollment.models import Device


class Command(BaseCommand):
    help = (
        "Issue an OCPP password for an enrolled EV charger (by device id or serial). Prints its identity and the "
        "password once; only the password's hash is kept. --revoke ends every password of the charger."
    )

    def add_arguments(self, parser):
        parser.add_argument("device", help="The charger's device id, or its serial number.")
        parser.add_argument("--label", default="")
        parser.add_argument("--revoke", action="store_true", help="Revoke the charger's passwords instead.")

    def handle(self, *args, device, label, revoke, **options):
        found = Device.objects.filter(pk=int(device)) if device.isdigit() else Device.objects.none()
        found = found or Device.objects.filter(serial=device)
        if found.count() != 1:
            raise CommandError(f"No single device {device!r} (give its id).")
        row = found.get()
        if revoke:
            credentials = ChargerCredential.objects.filter(charger__device=row, revoked_at__isnull=True)
            for credential in credentials:
                services.revoke_password(credential=credential)
            self.stdout.write(f"Revoked {len(credentials)} password(s) of {row.serial}.")
            return
        try:
            credential, password = services.issue_password(device=row, label=label, by="manage.py ocpp_password")
        except DomainError as refused:
            raise CommandError("; ".join(f"{p.field}: {p.message}" for p in refused.problems)) from None
        self.stdout.write(f"identity={credential.charger.identity}\npassword={password}")
