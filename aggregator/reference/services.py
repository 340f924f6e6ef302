"""Writes of reference data: tariff versions (prices and readings have their own loaders and store)."""

from django.db import transaction

from aggregator.core.errors import Problem
from aggregator.reference import tariffs
from aggregator.reference.models import Tariff


def save_tariffs(definitions: list) -> list[Tariff]:
    """Store tariff versions (a version already stored for the same utility, code and date is replaced).

    Every definition is checked first; with any problem nothing is written and the
    problems are named by definition (`tariffs[1].energy[0].price_per_kwh`).
    """
    if not isinstance(definitions, list) or not definitions:
        raise tariffs.TariffInvalid(Problem("invalid", "One tariff object or a non-empty list of them.", "tariffs"))
    specs, problems = [], []
    for i, definition in enumerate(definitions):
        try:
            specs.append(tariffs.parse(definition))
        except tariffs.TariffInvalid as refused:
            problems += [
                Problem(p.code, p.message, f"tariffs[{i}]" + (f".{p.field}" if p.field else ""))
                for p in refused.problems
            ]
    seen = {}
    for i, spec in enumerate(specs):
        key = (spec.utility, spec.code, spec.effective_from)
        if key in seen:
            problems.append(
                Problem("duplicate", f"Same utility, code and effective_from as tariffs[{seen[key]}].", f"tariffs[{i}]")
            )
        seen.setdefault(key, i)
    if problems:
        raise tariffs.TariffInvalid(problems)
    with transaction.atomic():
        return [
            Tariff.objects.update_or_create(
                utility=spec.utility,
                code=spec.code,
                effective_from=spec.effective_from,
                defaults={"name": spec.name, "definition": spec.definition},
            )[0]
            for spec in specs
        ]
