"""The list filters of dispatch events, shared by the operator API and the console."""

import django_filters

from aggregator.core.api.filters import FilterSet
from dispatch.models import DispatchEvent


class DispatchEventFilter(FilterSet):
    market = django_filters.CharFilter(field_name="resource__market__code", lookup_expr="iexact")

    class Meta:
        model = DispatchEvent
        fields = ["resource", "state", "source"]
