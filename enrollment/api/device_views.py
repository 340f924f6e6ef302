"""The device API (`/api/device/v1/`): a device or gateway token sees only its own devices."""

from rest_framework import authentication, exceptions, permissions, viewsets

from aggregator.access import tokens
from aggregator.access.authentication import bearer_token, resolve
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
            raise exceptions.AuthenticationFailed("The device API takes device or gateway tokens.", code="wrong_token_kind")
        credential = resolve(DeviceCredential.objects.all(), plaintext, key_id)
        return DevicePrincipal(credential), credential

    def authenticate_header(self, request):
        return "Bearer"


class IsDevice(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, DevicePrincipal)


class DeviceAPIMixin:
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]
    filter_backends = []


class OwnDeviceViewSet(DeviceAPIMixin, viewsets.ReadOnlyModelViewSet):
    """The caller's own devices: one for a device token, those behind it for a gateway token.

    Another device's id answers 404, exactly as an id that does not exist.
    """

    serializer_class = DeviceSelfSerializer
    queryset = Device.objects.none()  # for the schema; get_queryset scopes every request

    def get_queryset(self):
        return self.request.user.devices().select_related("site__market").order_by("id")
