"""Energy offers on the operator API (/api/v1/market/offers/): list and read versions with their intervals; edit
(a new version), approve and submit. Analysts read; operators and admins act (OperatorRolePermission)."""

from django_filters import filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from aggregator.core.api.filters import FilterSet, IsoDateTimeFilter
from aggregator.market.api import offer_serializers as s
from aggregator.market.models import MarketKind, Offer, OfferState
from aggregator.market.offers import selectors, services


class OfferFilter(FilterSet):
    market_kind = filters.ChoiceFilter(choices=MarketKind.choices)
    state = filters.ChoiceFilter(choices=OfferState.choices)
    window_from = IsoDateTimeFilter(field_name="window_start", lookup_expr="gte", label="Windows starting at or after.")
    window_to = IsoDateTimeFilter(field_name="window_start", lookup_expr="lt", label="Windows starting before.")

    class Meta:
        model = Offer
        fields = ["resource", "market_kind", "state", "window_from", "window_to"]


NEW_VERSION = OpenApiResponse(s.OfferDetailSerializer, description="The new version (a submitted offer's is sent).")


class OfferViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Offer versions, newest window first. Built by beat before each market's deadline; an edit is a new version
    of the same window, a submitted version never changes."""

    queryset = selectors.offers()
    serializer_class = s.OfferSerializer
    filterset_class = OfferFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        rows = selectors.offers()
        if self.action == "retrieve":
            rows = rows.prefetch_related("intervals")
        return rows

    def get_serializer_class(self):
        return s.OfferDetailSerializer if self.action == "retrieve" else s.OfferSerializer

    def _edit(self, request):
        params = s.OfferEditSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        new = services.edit_offer(
            offer=self.get_object(),
            intervals=[dict(i) for i in data["intervals"]],
            notes=data.get("notes"),
            by=request.user,
        )
        return Response(self._detail(new), status=status.HTTP_201_CREATED)

    def _detail(self, offer: Offer) -> dict:
        return s.OfferDetailSerializer(selectors.offers().prefetch_related("intervals").get(pk=offer.pk)).data

    @extend_schema(request=s.OfferEditSerializer, responses={201: NEW_VERSION})
    def partial_update(self, request, pk=None):
        """Edit: a new version with the named intervals changed (the others carried over), validated against the
        market's rules and the forecast quantile; 400 names each refused field. Same as POST .../edit/."""
        return self._edit(request)

    @extend_schema(request=s.OfferEditSerializer, responses={201: NEW_VERSION})
    @action(detail=True, methods=["post"])
    def edit(self, request, pk=None):
        """Edit: a new version with the named intervals changed (see PATCH)."""
        return self._edit(request)

    @extend_schema(request=None, responses=s.OfferDetailSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve a draft: beat submits it shortly before the deadline (or POST .../submit/ now)."""
        return Response(self._detail(services.approve_offer(offer=self.get_object(), by=request.user)))

    @extend_schema(request=None, responses=s.OfferDetailSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """Submit an approved offer through the market's adapter now. Without a connection, or when the market
        does not take it, it stays approved with the reason in `warnings` (beat retries until the deadline)."""
        return Response(self._detail(services.submit_offer(offer=self.get_object(), by=request.user)))
