"""The list filters of virtual resources, shared by the operator API and the console."""

from aggregator.aggregation.models import VirtualResource
from aggregator.core.api.filters import FilterSet


class VirtualResourceFilter(FilterSet):
    class Meta:
        model = VirtualResource
        fields = ["market", "program", "state", "scope_kind", "scope"]
