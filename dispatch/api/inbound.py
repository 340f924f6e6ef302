"""The market/utility side: dispatch instructions in, authenticated by a market token (`mkt_...`).

An instruction names the resource by the id the market registered it under. Sending
the same instruction id again returns the event it created (200, not 201); the same
id with different content is refused (409), never applied twice.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import authentication, exceptions, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregator.access import tokens
from aggregator.access.authentication import bearer_token, resolve
from aggregator.errors import DomainError, Problem
from aggregator.api.fields import AwareDateTimeField
from aggregator.api.parsers import ORJSONParser
from aggregator.models import VirtualResource
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
            raise exceptions.AuthenticationFailed("Instructions take a market token (mkt_...).", code="wrong_token_kind")
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
    target_kind = serializers.ChoiceField(choices=DispatchEvent.TargetKind.choices, default=DispatchEvent.TargetKind.REDUCTION)
    notify_at = AwareDateTimeField(required=False)
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    target_kw = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=0, required=False)
    intervals = IntervalInputSerializer(many=True, required=False)
    ramp_seconds = serializers.IntegerField(min_value=0, max_value=3600, default=0)
    replaces_instruction_id = serializers.CharField(max_length=100, required=False)


def _same(event: DispatchEvent, data: dict, specs) -> bool:
    stored = [(i.start, i.end, i.target_kw) for i in event.intervals.order_by("start")]
    asked = [(s.start, s.end, s.target_kw) for s in specs] if specs is not None else None
    return (event.start, event.end) == (data["start"], data["end"]) and (
        asked == stored if asked is not None else all(t == data.get("target_kw") for _, _, t in stored))


class InstructionView(APIView):
    """POST a dispatch instruction for one of the market's registered resources."""

    authentication_classes = [MarketTokenAuthentication]
    permission_classes = [IsMarket]
    parser_classes = [ORJSONParser]

    @extend_schema(request=InstructionSerializer, responses={201: DispatchEventSerializer, 200: DispatchEventSerializer})
    def post(self, request):
        params = InstructionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        credential = request.user.credential
        specs = interval_specs(data)
        existing = DispatchEvent.objects.filter(source=credential.source, external_ref=data["instruction_id"],
                                                resource__market=credential.market).first()
        if existing is not None:
            if existing.resource.market_resource_id != data["resource"] or not _same(existing, data, specs):
                raise DomainError(Problem("instruction_id_reused", "This instruction id was already used for a different "
                                          "instruction.", "instruction_id"))
            return Response(DispatchEventSerializer(existing).data)
        resource = VirtualResource.objects.filter(market=credential.market, market_resource_id=data["resource"]).first()
        if resource is None:
            raise exceptions.ValidationError({"resource": [f"No resource registered in {credential.market.code} as that id."]},
                                             code="does_not_exist")
        replaces = None
        if data.get("replaces_instruction_id"):
            replaces = DispatchEvent.objects.filter(source=credential.source, external_ref=data["replaces_instruction_id"],
                                                    resource=resource).first()
            if replaces is None:
                raise exceptions.ValidationError({"replaces_instruction_id": ["No such instruction for this resource."]},
                                                 code="does_not_exist")
        try:
            event = services.create_event(
                resource=resource, source=credential.source, start=data["start"], end=data["end"], by=request.user.get_username(),
                intervals=specs, target_kw=data.get("target_kw"), notify_at=data.get("notify_at"), target_kind=data["target_kind"],
                ramp_seconds=data["ramp_seconds"], external_ref=data["instruction_id"], replaces=replaces)
        except DomainError:
            # The same instruction sent twice at once: the second finds the first's event.
            twin = DispatchEvent.objects.filter(source=credential.source, external_ref=data["instruction_id"], resource=resource).first()
            if twin is not None and _same(twin, data, specs):
                return Response(DispatchEventSerializer(twin).data)
            raise
        return Response(DispatchEventSerializer(event).data, status=status.HTTP_201_CREATED)
