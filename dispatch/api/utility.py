"""The distribution utility's API (under /api/utility/v1/, utility tokens `utl_...`): its overrides.

A utility sees and changes only its own overrides; an override covers only its own customers' devices
(dispatch.overrides). Operators see every override on the operator API and in the admin.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import authentication, exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from aggregator.core.access import tokens
from aggregator.core.access.authentication import bearer_token, resolve
from aggregator.core.api.fields import AwareDateTimeField
from aggregator.core.api.parsers import ORJSONParser
from aggregator.reference.models import Market
from dispatch import overrides
from dispatch.models import UtilityCredential, UtilityOverride


class UtilityPrincipal:
    is_authenticated = True
    is_active = True
    is_superuser = False

    def __init__(self, credential: UtilityCredential):
        self.credential = credential
        self.utility = credential.utility

    def get_username(self) -> str:
        return f"{self.utility.name} ({self.credential.key_id})"


class UtilityTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        plaintext = bearer_token(request)
        if plaintext is None:
            return None
        parsed = tokens.parse(plaintext)
        if parsed is None or parsed[0] != "utl":
            raise exceptions.AuthenticationFailed("This API takes a utility token (utl_...).", code="wrong_token_kind")
        credential = resolve(UtilityCredential.objects.select_related("utility"), plaintext, parsed[1])
        return UtilityPrincipal(credential), credential

    def authenticate_header(self, request):
        return "Bearer"


class IsUtility(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, UtilityPrincipal)


class OverrideSerializer(serializers.ModelSerializer):
    utility = serializers.SlugRelatedField(slug_field="name", read_only=True)
    market = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = UtilityOverride
        fields = [
            "id",
            "utility",
            "market",
            "zone",
            "pricing_nodes",
            "start",
            "end",
            "cap_kw",
            "reason",
            "created_by_label",
            "created_at",
            "cancelled_at",
        ]
        read_only_fields = fields


class OverrideCreateSerializer(serializers.Serializer):
    market = serializers.CharField(help_text="The market's code, e.g. PJM.")
    zone = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
    pricing_nodes = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=500
    )
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    cap_kw = serializers.DecimalField(
        max_digits=12,
        decimal_places=3,
        min_value=0,
        required=False,
        allow_null=True,
        default=None,
        help_text="kW the area's devices may give together; empty: dispatch is blocked.",
    )
    reason = serializers.CharField(max_length=200)


class UtilityOverrideViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The utility's blocks and caps on dispatch in an area for a window."""

    authentication_classes = [UtilityTokenAuthentication]
    permission_classes = [IsUtility]
    parser_classes = [ORJSONParser]
    serializer_class = OverrideSerializer
    queryset = UtilityOverride.objects.none()

    def get_queryset(self):
        return UtilityOverride.objects.filter(utility=self.request.user.utility).select_related("utility", "market")

    @extend_schema(request=OverrideCreateSerializer, responses={201: OverrideSerializer})
    def create(self, request):
        params = OverrideCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        market = Market.objects.filter(code__iexact=data["market"]).first()
        if market is None:
            raise serializers.ValidationError({"market": ["No such market."]}, code="does_not_exist")
        override = overrides.make(
            utility=request.user.utility,
            market=market,
            zone=data["zone"],
            pricing_nodes=data["pricing_nodes"],
            start=data["start"],
            end=data["end"],
            cap_kw=data["cap_kw"],
            reason=data["reason"],
            by=request.user.get_username(),
        )
        return Response(OverrideSerializer(override).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=OverrideSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """End the override now: the area's devices may serve events again."""
        return Response(OverrideSerializer(overrides.cancel(override=self.get_object())).data)
