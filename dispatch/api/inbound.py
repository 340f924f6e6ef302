"""The market/utility side: dispatch instructions in, authenticated by a market token (`mkt_...`).

An instruction names the resource by the id the market registered it under. Sending
the same instruction id again returns the event it created (200, not 201); the same
id with different content is refused (409), never applied twice.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import authentication, exceptions, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregator.core.access import tokens
from aggregator.core.access.authentication import bearer_token, resolve
from aggregator.core.api.fields import AwareDateTimeField
from aggregator.core.api.parsers import ORJSONParser
from dispatch import services
from dispatch.api.serializers import DispatchEventSerializer, IntervalInputSerializer
from dispatch.api.views import interval_specs
from dispatch.models import DispatchEvent, MarketCredential


class MarketPrincipal:
    is_authenticated = True
    is_active = True
    is_superuser = False

    def __init__(self, credential: MarketCredential):
        self.credential = credential

    def get_username(self) -> str:
        return f"{self.credential.market.code} {self.credential.source} ({self.credential.key_id})"


class MarketTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        plaintext = bearer_token(request)
        if plaintext is None:
            return None
        parsed = tokens.parse(plaintext)
        if parsed is None or parsed[0] != "mkt":
            raise exceptions.AuthenticationFailed(
                "Instructions take a market token (mkt_...).", code="wrong_token_kind"
            )
        credential = resolve(MarketCredential.objects.select_related("market"), plaintext, parsed[1])
        return MarketPrincipal(credential), credential

    def authenticate_header(self, request):
        return "Bearer"


class IsMarket(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, MarketPrincipal)


class InstructionSerializer(serializers.Serializer):
    instruction_id = serializers.CharField(max_length=100)
    resource = serializers.CharField(max_length=64, help_text="The market's id of the registered resource.")
    target_kind = serializers.ChoiceField(
        choices=DispatchEvent.TargetKind.choices, default=DispatchEvent.TargetKind.REDUCTION
    )
    notify_at = AwareDateTimeField(required=False)
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    target_kw = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=0, required=False)
    intervals = IntervalInputSerializer(many=True, required=False)
    ramp_seconds = serializers.IntegerField(min_value=0, max_value=3600, default=0)
    replaces_instruction_id = serializers.CharField(max_length=100, required=False)


class InstructionView(APIView):
    """POST a dispatch instruction for one of the market's registered resources."""

    authentication_classes = [MarketTokenAuthentication]
    permission_classes = [IsMarket]
    parser_classes = [ORJSONParser]

    @extend_schema(
        request=InstructionSerializer, responses={201: DispatchEventSerializer, 200: DispatchEventSerializer}
    )
    def post(self, request):
        params = InstructionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        event, created = services.receive_instruction(
            market=request.user.credential.market,
            source=request.user.credential.source,
            by=request.user.get_username(),
            instruction_id=data["instruction_id"],
            resource_ref=data["resource"],
            start=data["start"],
            end=data["end"],
            intervals=interval_specs(data),
            target_kw=data.get("target_kw"),
            notify_at=data.get("notify_at"),
            target_kind=data["target_kind"],
            ramp_seconds=data["ramp_seconds"],
            replaces_ref=data.get("replaces_instruction_id") or "",
        )
        return Response(
            DispatchEventSerializer(event).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
