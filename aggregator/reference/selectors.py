"""Reads of reference data: the tariff version that bills a day."""

from datetime import date

from aggregator.reference.models import Tariff
from aggregator.reference.tariffs import TariffSpec


def tariff_in_effect(*, utility: str, code: str, day: date) -> TariffSpec | None:
    """The version of a tariff that bills `day`'s month: the one in effect on the month's first day."""
    row = (
        Tariff.objects.filter(utility=utility, code=code, effective_from__lte=day.replace(day=1))
        .order_by("-effective_from")
        .first()
    )
    return row.spec() if row is not None else None
