"""Telemetry time series: to the market (outbound, market token; only its own resources) and to operators.

GET /api/outbound/v1/telemetry?resource=<the market's resource id>&since=<ISO>&until=<ISO>
GET /api/v1/market/telemetry?resource=<resource pk>&since=<ISO>&until=<ISO>

Both answer samples with since <= at < until, oldest first, paginated (`page`, `page_size` up to 5,000). The
window defaults to the hour before now and may span at most MAX_WINDOW; a bad parameter is a 400 naming it.
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, serializers

from aggregator.aggregation.models import VirtualResource
from aggregator.core.api.fields import AwareDateTimeField
from aggregator.core.api.pagination import StandardPagination
from aggregator.market import telemetry
from aggregator.market.models import TelemetryQuality, TelemetrySample
from dispatch.api.inbound import IsMarket, MarketTokenAuthentication
from dispatch.models import DispatchEvent

MAX_WINDOW = timedelta(days=7)
DEFAULT_WINDOW = timedelta(hours=1)


class TelemetryPagination(StandardPagination):
    page_size = 360  # an hour at a 10-second scan
    max_page_size = 5000


class WindowQuery(serializers.Serializer):
    since = AwareDateTimeField(required=False, help_text="First instant (inclusive); default: an hour before until.")
    until = AwareDateTimeField(required=False, help_text="End (exclusive); default: now.")

    def validate(self, attrs):
        until = attrs.get("until") or timezone.now()
        since = attrs.get("since") or until - DEFAULT_WINDOW
        if until <= since:
            raise serializers.ValidationError({"until": ["until must be after since."]}, code="window_order")
        if until - since > MAX_WINDOW:
            raise serializers.ValidationError(
                {"until": [f"A window spans at most {MAX_WINDOW.days} days; page through longer ones."]},
                code="window_too_long",
            )
        return {**attrs, "since": since, "until": until}


class OutboundQuery(WindowQuery):
    resource = serializers.CharField(
        max_length=64, required=False, help_text="The market's id of one of its resources; default: all of them."
    )


class OperatorQuery(WindowQuery):
    resource = serializers.IntegerField(min_value=1, help_text="The resource's id.")


class OutboundSampleSerializer(serializers.Serializer):
    resource = serializers.CharField(help_text="The market's id of the resource.")
    at = serializers.CharField(help_text="The scan instant, ISO 8601 in the market's time zone.")
    kw = serializers.FloatField(help_text="Sum of reporting members' kW (positive: consumption, negative: export).")
    devices_reporting = serializers.IntegerField()
    devices_expected = serializers.IntegerField(help_text="Current members of the resource.")
    quality = serializers.ChoiceField(choices=TelemetryQuality.choices)


class OperatorSampleSerializer(serializers.ModelSerializer):
    market_resource_id = serializers.CharField(source="resource.market_resource_id", read_only=True)

    class Meta:
        model = TelemetrySample
        fields = ["resource", "market_resource_id", "at", "kw", "devices_reporting", "devices_expected", "quality"]


def _query(serializer_class, request) -> dict:
    params = serializer_class(data=request.query_params)
    params.is_valid(raise_exception=True)
    return params.validated_data


class OutboundTelemetryView(generics.ListAPIView):
    """The market's resources' real-time telemetry, as pushed: kW, members reporting and expected, quality."""

    authentication_classes = [MarketTokenAuthentication]
    permission_classes = [IsMarket]
    pagination_class = TelemetryPagination
    serializer_class = OutboundSampleSerializer
    filter_backends: list = []
    queryset = TelemetrySample.objects.none()  # for the schema; get_queryset scopes every request

    def get_queryset(self):
        credential = self.request.user.credential
        if credential.source != DispatchEvent.Source.MARKET_INSTRUCTION:
            raise exceptions.PermissionDenied("Telemetry is for the market's own token.", code="not_a_market_token")
        params = _query(OutboundQuery, self.request)
        resources = VirtualResource.objects.filter(market=credential.market).exclude(market_resource_id="")
        if "resource" in params:
            resources = resources.filter(market_resource_id=params["resource"])
            if not resources.exists():  # another market's resource answers exactly as one that does not exist
                raise serializers.ValidationError(
                    {"resource": ["None of your registered resources has this id."]}, code="unknown_resource"
                )
        return telemetry.samples_between(resources=resources, since=params["since"], until=params["until"])

    def list(self, request, *args, **kwargs):
        queryset = self.get_queryset()
        page = self.paginate_queryset(queryset.values_list(*telemetry.WIRE_FIELDS))
        zone = ZoneInfo(request.user.credential.market.time_zone)
        return self.get_paginated_response(telemetry.wire_samples(page, zone=zone))

    @extend_schema(parameters=[OutboundQuery], responses=OutboundSampleSerializer(many=True))
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class OperatorTelemetryView(generics.ListAPIView):
    """A resource's telemetry samples, for the console (any operator role reads)."""

    pagination_class = TelemetryPagination
    serializer_class = OperatorSampleSerializer
    filter_backends: list = []
    queryset = TelemetrySample.objects.none()  # for the schema

    def get_queryset(self):
        params = _query(OperatorQuery, self.request)
        resources = VirtualResource.objects.filter(pk=params["resource"])
        if not resources.exists():
            raise serializers.ValidationError({"resource": ["No resource has this id."]}, code="unknown_resource")
        return telemetry.samples_between(resources=resources, since=params["since"], until=params["until"])

    @extend_schema(parameters=[OperatorQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
