"""The list filters of OCPP chargers (the console's list)."""

import django_filters

from aggregator.core.api.filters import FilterSet
from dispatch.ocpp.models import Charger


class ChargerFilter(FilterSet):
    market = django_filters.CharFilter(field_name="device__site__market__code", lookup_expr="iexact")

    class Meta:
        model = Charger
        fields = ["connected", "protocol", "applies_profile"]
