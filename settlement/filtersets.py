"""The list filters of settlement runs, shared by the operator API and the console."""

import django_filters

from aggregator.core.api.filters import FilterSet
from settlement.models import SettlementRun


class SettlementRunFilter(FilterSet):
    market = django_filters.CharFilter(field_name="event__resource__market__code", lookup_expr="iexact")

    class Meta:
        model = SettlementRun
        fields = {"event": ["exact"], "event__resource": ["exact"], "kind": ["exact"], "created_at": ["gte", "lt"]}
