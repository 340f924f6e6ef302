from rest_framework import viewsets

from aggregator.aggregation.api.serializers import MarketSerializer, ProgramSerializer
from aggregator.core.access.roles import ADMIN
from aggregator.reference.models import Market, Program


class MarketViewSet(viewsets.ModelViewSet):
    """Markets and their Order 2222 parameters. Only admins change market rules."""

    queryset = Market.objects.all()
    serializer_class = MarketSerializer
    write_roles = frozenset({ADMIN})
    filterset_fields = ["code", "multi_node_allowed"]
    lookup_value_regex = r"\d+"


class ProgramViewSet(viewsets.ModelViewSet):
    queryset = Program.objects.select_related("market")
    serializer_class = ProgramSerializer
    write_roles = frozenset({ADMIN})
    filterset_fields = ["market", "service", "is_open", "code"]
    search_fields = ["code", "name"]
