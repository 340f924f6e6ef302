from django.core.management.base import BaseCommand, CommandError

from aggregator.core.errors import DomainError
from dispatch.openadr import auth
from dispatch.openadr.models import Client
from enrollment.models import Site


class Command(BaseCommand):
    help = (
        "Issue OAuth client credentials for the OpenADR 3 VTN (/openadr3/3.0.1/): a business-logic client, or a VEN "
        "client for a site. Prints the client id and the secret once; only the secret's hash is kept. "
        "--revoke CLIENT_ID ends a client and its tokens."
    )

    def add_arguments(self, parser):
        parser.add_argument("client_id", help="The client id, e.g. ven-site-42 (letters, digits, - and _).")
        parser.add_argument("--role", choices=Client.Role.values, default=Client.Role.VEN)
        parser.add_argument(
            "--site", type=int, help="For a VEN client: the id of the site whose equipment the VEN controls."
        )
        parser.add_argument("--label", default="")
        parser.add_argument("--revoke", action="store_true", help="Revoke this client instead of issuing it.")

    def handle(self, *args, client_id, role, site, label, revoke, **options):
        if revoke:
            client = Client.objects.filter(client_id=client_id).first()
            if client is None:
                raise CommandError(f"No client {client_id!r}.")
            auth.revoke_client(client)
            self.stdout.write(f"Revoked {client_id} and its tokens.")
            return
        site_row = None
        if site is not None:
            site_row = Site.objects.filter(pk=site).first()
            if site_row is None:
                raise CommandError(f"No site {site}.")
        try:
            client, secret = auth.issue_client(client_id=client_id, role=role, site=site_row, label=label)
        except DomainError as refused:
            raise CommandError("; ".join(f"{p.field}: {p.message}" for p in refused.problems)) from None
        self.stdout.write(f"client_id={client.client_id}\nclient_secret={secret}\nscopes={' '.join(client.scopes())}")
