"""Readings on the device API (write and read) and the operator API (read)."""

from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregator.core.access.devices import DeviceAPIMixin, DeviceTokenRateThrottle
from aggregator.core.api.fields import OFFSET_MESSAGE, possible_offset
from aggregator.core.api.parsers import ORJSONParser
from aggregator.reference import readings as ingest
from aggregator.reference.models import MeterKind
from enrollment.models import Device, Site
from settlement.selectors import readings_json

MAX_WINDOW = timedelta(days=93)


class PayloadTooLarge(APIException):
    status_code = 413
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


def _window(request) -> tuple[datetime, datetime]:
    values = {}
    for name in ("start", "end"):
        raw = request.query_params.get(name)
        try:
            values[name] = datetime.fromisoformat(raw) if raw else None
        except ValueError:
            raise ValidationError(
                {name: [f"{name} must be an ISO 8601 timestamp."]}, code="invalid_timestamp"
            ) from None
        if values[name] is not None and values[name].tzinfo is None:
            raise ValidationError({name: [f"{name} needs its UTC offset."]}, code="naive_timestamp")
        if values[name] is not None and not possible_offset(values[name]):
            raise ValidationError({name: [OFFSET_MESSAGE]}, code="invalid_offset")
    end = values["end"] or timezone.now()
    start = values["start"] or end - timedelta(days=1)
    if not start < end:
        raise ValidationError({"end": ["end must be after start."]}, code="out_of_range")
    if end - start > MAX_WINDOW:
        raise ValidationError({"end": [f"At most {MAX_WINDOW.days} days per request."]}, code="out_of_range")
    return start, end


def columns_response(*, meter: str, meter_id: int, start: datetime, end: datetime) -> HttpResponse:
    """The columns as PostgreSQL wrote them, with the meter named in front."""
    kind = MeterKind.SITE if meter == "site" else MeterKind.DEVICE
    body = readings_json(meter_kind=kind, meter_id=meter_id, start=start, end=end)
    head = orjson.dumps({"meter": meter, "meter_id": meter_id})[:-1] + b","
    return HttpResponse(head + body.encode()[1:], content_type="application/json")


_WINDOW_PARAMETERS = [
    OpenApiParameter("start", datetime, description="ISO 8601 with offset; default: end - 1 day"),
    OpenApiParameter("end", datetime, description="ISO 8601 with offset; default: now"),
]
_COLUMNS = inline_serializer(
    "ReadingColumns",
    {
        "meter": serializers.CharField(),
        "meter_id": serializers.IntegerField(),
        "start": serializers.ListField(child=serializers.DateTimeField()),
        "interval_seconds": serializers.ListField(child=serializers.IntegerField()),
        "kwh": serializers.ListField(child=serializers.FloatField(allow_null=True)),
        "quality": serializers.ListField(child=serializers.CharField()),
        "revision": serializers.ListField(child=serializers.IntegerField()),
    },
)


class DeviceReadingsView(DeviceAPIMixin, APIView):
    """POST a batch of interval readings (up to 10,000); GET them back as columns.

    See aggregator.reference.readings for the reading format, units and sign convention.
    """

    parser_classes = [ORJSONParser]
    throttle_classes = [DeviceTokenRateThrottle]

    def _meters(self, request) -> ingest.Meters:
        principal = request.user
        devices = {
            pk: (site, kind, bidirectional)
            for pk, site, kind, bidirectional in principal.devices().values_list(
                "pk", "site_id", "device_type", "bidirectional"
            )
        }
        return ingest.Meters(devices=devices, default_device=principal.device_id)

    @extend_schema(
        request=inline_serializer(
            "ReadingBatch", {"readings": serializers.ListField(child=serializers.DictField(), max_length=10_000)}
        ),
        responses=inline_serializer(
            "ReadingBatchResult",
            {n: serializers.IntegerField() for n in ("received", "inserted", "updated", "unchanged")},
        ),
    )
    def post(self, request):
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.DEVICE_API_MAX_BODY_BYTES:
            raise PayloadTooLarge(f"At most {settings.DEVICE_API_MAX_BODY_BYTES} bytes per request.")
        body = request.data
        if not isinstance(body, dict) or "readings" not in body:
            raise ValidationError({"readings": ["A JSON object with a readings list is required."]}, code="required")
        result = ingest.ingest(readings=body["readings"], meters=self._meters(request))
        return Response(result.as_dict())

    @extend_schema(
        parameters=[
            OpenApiParameter("meter", str, enum=["site", "device"]),
            OpenApiParameter("device", int, description="Required for gateway tokens"),
            *_WINDOW_PARAMETERS,
        ],
        responses=_COLUMNS,
    )
    def get(self, request):
        meters = self._meters(request)
        raw_device = request.query_params.get("device")
        if raw_device is not None and not (raw_device.isascii() and raw_device.isdigit()):
            raise ValidationError({"device": ["A device id."]}, code="invalid")
        device = int(raw_device) if raw_device else meters.default_device
        if device not in meters.devices:
            raise ValidationError({"device": ["Name one of your devices."]}, code="unknown_meter")
        meter = request.query_params.get("meter", "device")
        if meter not in ("site", "device"):
            raise ValidationError({"meter": ["meter is 'site' or 'device'."]}, code="invalid_choice")
        meter_id = meters.devices[device][0] if meter == "site" else device
        start, end = _window(request)
        return columns_response(meter=meter, meter_id=meter_id, start=start, end=end)


class OperatorReadingsView(APIView):
    """A site's or a device's interval readings, as columns (operator API)."""

    meter_kind: int = MeterKind.SITE

    @extend_schema(parameters=_WINDOW_PARAMETERS, responses=_COLUMNS)
    def get(self, request, pk: int):
        model = Site if self.meter_kind == MeterKind.SITE else Device
        get_object_or_404(model, pk=pk)
        start, end = _window(request)
        return columns_response(
            meter="site" if self.meter_kind == MeterKind.SITE else "device", meter_id=pk, start=start, end=end
        )
