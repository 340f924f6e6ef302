import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aggregator.reference import services as reference_services
from aggregator.reference import tariffs


class Command(BaseCommand):
    help = (
        "Load retail tariff versions from a JSON file (one tariff object or a list) or a CSV file "
        "(see aggregator.reference.tariffs for both forms). All or nothing: any problem is reported and nothing is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        try:
            text = file.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from None
        try:
            if file.suffix.lower() == ".csv":
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
