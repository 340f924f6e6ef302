"""Awards on the API: the market sends them in (market token), operators read them (operator roles)."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregator.core.api.parsers import ORJSONParser
from aggregator.market import awards
from aggregator.market.api import award_serializers as s
from aggregator.market.models import Award
from dispatch.api.inbound import IsMarket, MarketTokenAuthentication
from dispatch.models import DispatchEvent


class InboundAwardView(APIView):
    """POST an award (a day-ahead schedule or a real-time dispatch) for one of our submitted offers.

    It is checked against the offer (intervals on its grid, kW never above the offered kW, the price at or above
    the offer's and within the market's floor and cap, the net-benefits price for demand response) and becomes a
    dispatch event, whose id the answer carries. 201: new; 200: the same award again; 409: the award id was used
    with other content, or the window is taken; 422: the award does not stand against the offer (by field).
    A utility's token is refused (403): awards are the market's."""

    authentication_classes = [MarketTokenAuthentication]
    permission_classes = [IsMarket]
    parser_classes = [ORJSONParser]

    @extend_schema(request=s.AwardInputSerializer, responses={201: s.AwardSerializer, 200: s.AwardSerializer})
    def post(self, request):
        credential = request.user.credential
        if credential.source != DispatchEvent.Source.MARKET_INSTRUCTION:
            raise exceptions.PermissionDenied("Awards take a market's token, not a utility's.")
        params = s.AwardInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        award, created = awards.receive_award(
            market=credential.market, award=params.wire(), source=Award.Source.API, by=request.user.get_username()
        )
        award = awards.awards().get(pk=award.pk)
        return Response(
            s.AwardSerializer(award).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class AwardViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Awards the markets sent (inbound API or adapter): intervals, the offer version they answer, their event."""

    queryset = awards.awards()
    serializer_class = s.AwardSerializer
    filterset_fields = ["market_kind", "source", "offer", "event"]
    search_fields = ["award_ref"]
    ordering_fields = ["received_at", "id"]

    def get_serializer_class(self):
        return s.AwardDetailSerializer if self.action == "retrieve" else s.AwardSerializer


class RefusedAwardViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Awards an adapter brought in that the checks refused, with why: for an operator to take up with the market."""

    queryset = awards.refused_awards()
    serializer_class = s.RefusedAwardSerializer
    search_fields = ["award_ref", "offer_ref"]
