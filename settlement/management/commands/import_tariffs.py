import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aggregator.reference import services as reference_services
from aggregator.reference import tariffs
from aggregator.reference import urdb as urdb_module


class Command(BaseCommand):
    help = (
        "Load retail tariff versions from a JSON file (one tariff object or a list) or a CSV file "
        "(see aggregator.reference.tariffs for both forms), or OpenEI Utility Rate Database JSON with --urdb. "
        "All or nothing: any problem is reported and nothing is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--urdb", action="store_true", help="The file is URDB JSON (a rate, a list, or the API's items)."
        )
        parser.add_argument("--utility", help="With --urdb: the utility as sites name it (default: the rate's).")
        parser.add_argument("--code", help="With --urdb: the tariff code sites name (default: the rate's label).")

    def handle(self, *args, file: Path, urdb: bool = False, utility=None, code=None, **options):
        if not urdb and (utility or code):
            raise CommandError("--utility and --code go with --urdb.")
        try:
            text = file.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from None
        try:
            if urdb:
                try:
                    loaded = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise CommandError(f"{file} is not JSON: {exc}.") from None
                definitions = urdb_module.definitions_from_urdb(loaded, utility=utility, code=code)
            elif file.suffix.lower() == ".csv":
                definitions = tariffs.definitions_from_csv(text)
            else:
                try:
                    loaded = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise CommandError(f"{file} is not JSON: {exc}.") from None
                definitions = loaded if isinstance(loaded, list) else [loaded]
            stored = reference_services.save_tariffs(definitions)
        except tariffs.TariffInvalid as refused:
            raise CommandError(
                "Nothing was stored:\n" + "\n".join(f"  {p.field}: {p.message}" for p in refused.problems)
            ) from None
        for row in stored:
            self.stdout.write(f"{row.utility}/{row.code} effective {row.effective_from}: {row.name}")
