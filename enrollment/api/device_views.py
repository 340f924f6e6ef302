"""The device API (`/api/device/v1/`): a device or gateway token sees only its own devices."""

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import authentication, exceptions, permissions, serializers, viewsets
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from aggregator import redis_client
from aggregator.access import tokens
from aggregator.access.authentication import bearer_token, resolve
from aggregator.api.parsers import ORJSONParser
from enrollment import services
from enrollment.api.serializers import DeviceSelfSerializer
from enrollment.models import Device, DeviceCredential


class DevicePrincipal:
    """The caller on the device API: one device, or a gateway acting for its devices."""

    is_authenticated = True
    is_active = True
    is_superuser = False

    def __init__(self, credential: DeviceCredential):
        self.credential = credential
        self.device_id = credential.device_id
        self.gateway_id = credential.gateway_id

    def devices(self):
        if self.device_id is not None:
            return Device.objects.filter(pk=self.device_id)
        return Device.objects.filter(gateway_id=self.gateway_id)


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        plaintext = bearer_token(request)
        if plaintext is None:
            return None
        parsed = tokens.parse(plaintext)
        if parsed is None:
            raise exceptions.AuthenticationFailed("Malformed token.", code="invalid_token")
        kind, key_id = parsed
        if kind not in ("dev", "gw"):
            raise exceptions.AuthenticationFailed(
                "The device API takes device or gateway tokens.", code="wrong_token_kind"
            )
        credential = resolve(DeviceCredential.objects.all(), plaintext, key_id)
        return DevicePrincipal(credential), credential

    def authenticate_header(self, request):
        return "Bearer"


class IsDevice(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, DevicePrincipal)


class DeviceTokenRateThrottle(SimpleRateThrottle):
    """Requests per token: a device reports every few minutes; a gateway speaks for many devices.

    A fixed-window counter in Redis, one round trip per request (SET NX EX + INCR in a
    pipeline): the device API's hottest endpoints cannot afford DRF's history list
    (a read, a pickle and a write of up to thousands of timestamps per request).
    """

    def allow_request(self, request, view):
        principal = request.user
        if not isinstance(principal, DevicePrincipal):
            return True
        kind = "device" if principal.device_id is not None else "gateway"
        allowed, self.retry_after = count_request(kind=kind, key_id=principal.credential.key_id)
        return allowed

    def wait(self):
        return self.retry_after

    def get_rate(self):
        return None  # per token kind, from settings.DEVICE_API_RATES


def rate_limit(*, kind: str, key_id: str) -> tuple[str, int, int]:
    """(counter key, requests allowed, window seconds) of a token's fixed window."""
    limit, window = SimpleRateThrottle.parse_rate(None, settings.DEVICE_API_RATES[kind])
    return cache.make_and_validate_key(f"throttle:{kind}:{key_id}"), limit, window


def count_request(*, kind: str, key_id: str) -> tuple[bool, int | None]:
    """(allowed, seconds to wait) for one more request by this token."""
    key, limit, window = rate_limit(kind=kind, key_id=key_id)
    client = redis_client.client()
    pipe = client.pipeline(transaction=False)
    pipe.set(key, 0, ex=window, nx=True)
    pipe.incr(key)
    count = pipe.execute()[1]
    if count <= limit:
        return True, None
    return False, max(client.ttl(key), 1)


class DeviceAPIMixin:
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]
    throttle_classes = [DeviceTokenRateThrottle]
    filter_backends = []


class OwnDeviceViewSet(DeviceAPIMixin, viewsets.ReadOnlyModelViewSet):
    """The caller's own devices: one for a device token, those behind it for a gateway token.

    Another device's id answers 404, exactly as an id that does not exist.
    """

    serializer_class = DeviceSelfSerializer
    queryset = Device.objects.none()  # for the schema; get_queryset scopes every request

    def get_queryset(self):
        return self.request.user.devices().select_related("site__market").order_by("id")


class HeartbeatSerializer(serializers.Serializer):
    device = serializers.IntegerField(required=False, help_text="Required for gateway tokens.")
    at = serializers.DateTimeField(required=False, help_text="When the status was read; default: now.")
    online = serializers.BooleanField(default=True)
    state_of_charge_pct = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=0, max_value=100, required=False, allow_null=True
    )
    power_kw = serializers.DecimalField(
        max_digits=10,
        decimal_places=3,
        required=False,
        allow_null=True,
        help_text="Positive: import from the grid / consumption; negative: export / generation.",
    )
    ev_plugged_in = serializers.BooleanField(required=False, allow_null=True)
    mode = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    firmware = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")
    grid_status = serializers.ChoiceField(
        choices=["grid_connected", "islanded", "outage"],
        required=False,
        allow_blank=True,
        default="",
        help_text="islanded or outage: the device serves its site and leaves "
        "any event it is in; it is not dispatched until it reports grid_connected.",
    )

    def validate_at(self, value):
        if value > timezone.now() + timezone.timedelta(minutes=5):
            raise serializers.ValidationError("at is in the future.", code="future_timestamp")
        return value


class HeartbeatView(DeviceAPIMixin, APIView):
    """POST the device's status: the platform marks it offline when heartbeats stop."""

    parser_classes = [ORJSONParser]

    @extend_schema(request=HeartbeatSerializer, responses={200: HeartbeatSerializer})
    def post(self, request):
        params = HeartbeatSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = dict(params.validated_data)
        device = data.pop("device", request.user.device_id)
        if device is None or not request.user.devices().filter(pk=device).exists():
            raise exceptions.ValidationError({"device": ["Name one of your devices."]}, code="unknown_meter")
        status = services.record_heartbeat(device_id=device, at=data.pop("at", None) or timezone.now(), **data)
        return Response(
            {
                "device": device,
                "online": status.online,
                "last_seen_at": status.last_seen_at,
                "recommended_interval_seconds": status.device.telemetry_interval_seconds,
            }
        )
