"""The device API (`/api/device/v1/`): a device or gateway token sees only its own devices."""

import math

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregator.core.access.devices import DeviceAPIMixin
from aggregator.core.api.fields import DateTimeField
from aggregator.core.api.parsers import ORJSONParser
from enrollment import services
from enrollment.api.serializers import DeviceSelfSerializer
from enrollment.models import Device


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
    at = DateTimeField(required=False, help_text="When the status was read; default: now.")
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
    outdoor_temperature_f = serializers.FloatField(
        min_value=-80,
        max_value=140,
        required=False,
        allow_null=True,
        help_text="Outdoor temperature at the site (°F), if the device measures it; averaged per zone and hour.",
    )
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

    def validate_outdoor_temperature_f(self, value):
        if value is not None and not math.isfinite(value):
            raise serializers.ValidationError("A temperature, -80 to 140 °F.", code="invalid")
        return value

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
