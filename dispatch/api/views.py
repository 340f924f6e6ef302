"""Dispatch on the operator API: events, their actions, allocations and commands."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from aggregator.aggregation.models import VirtualResource
from aggregator.reference.models import Market
from dispatch import resilience, services
from dispatch.api import serializers as s
from dispatch.filtersets import DispatchEventFilter
from dispatch.models import Allocation, DeviceCommand, DispatchEvent, StormWatch


def interval_specs(data) -> list[services.IntervalSpec] | None:
    if data.get("intervals") is None:
        return None
    return [services.IntervalSpec(i["start"], i["end"], i["target_kw"]) for i in data["intervals"]]


def _filtered(request, rows, names):
    for name in names:
        value = request.query_params.get(name)
        if not value:
            continue
        if name == "device" and not (value.isascii() and value.isdigit()):
            raise ValidationError({"device": ["A device id."]}, code="invalid")
        rows = rows.filter(**{name: value})
    return rows


class DispatchEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Dispatch events. Created here (operator tests and utility calls keyed in by hand) or by the market
    side on /api/inbound/v1/instructions; changed only through cancel and modify."""

    queryset = DispatchEvent.objects.prefetch_related("intervals")
    serializer_class = s.DispatchEventSerializer
    filterset_class = DispatchEventFilter
    search_fields = ["external_ref"]

    def get_serializer_class(self):
        return s.DispatchEventDetailSerializer if self.action == "retrieve" else s.DispatchEventSerializer

    def _event_arguments(self, request) -> dict:
        params = s.EventCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        resource = VirtualResource.objects.filter(pk=data["resource"]).first()
        if resource is None:
            raise ValidationError({"resource": ["No such virtual resource."]}, code="does_not_exist")
        replaces = DispatchEvent.objects.filter(pk=data["replaces"]).first() if data.get("replaces") else None
        if data.get("replaces") and replaces is None:
            raise ValidationError({"replaces": ["No such event."]}, code="does_not_exist")
        return {
            "resource": resource,
            "source": data["source"],
            "start": data["start"],
            "end": data["end"],
            "by": request.user,
            "intervals": interval_specs(data),
            "target_kw": data.get("target_kw"),
            "notify_at": data.get("notify_at"),
            "target_kind": data["target_kind"],
            "ramp_seconds": data["ramp_seconds"],
            "over_commit_pct": data.get("over_commit_pct"),
            "external_ref": data["external_ref"],
            "replaces": replaces,
        }

    @extend_schema(request=s.EventCreateSerializer, responses={201: s.DispatchEventSerializer})
    def create(self, request):
        event = services.create_event(**self._event_arguments(request))
        return Response(s.DispatchEventSerializer(event).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.EventCreateSerializer, responses=s.EventPreviewSerializer)
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """What the event would do, creating nothing: its allocation, and what it costs customers whose battery
        plans wanted the energy it takes (before anyone accepts it)."""
        return Response(s.EventPreviewSerializer(services.preview_event(**self._event_arguments(request))).data)

    @extend_schema(request=s.ReasonSerializer, responses=s.DispatchEventSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel the event: devices with a live command get a cancel command."""
        params = s.ReasonSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        event = services.cancel(event=self.get_object(), by=request.user, reason=params.validated_data["reason"])
        return Response(s.DispatchEventSerializer(event).data)

    @extend_schema(request=s.EventModifySerializer, responses=s.DispatchEventSerializer)
    @action(detail=True, methods=["post"])
    def modify(self, request, pk=None):
        """New targets from now on and/or a new end; devices get updated commands."""
        params = s.EventModifySerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        event = services.modify(
            event=self.get_object(),
            by=request.user,
            reason=data["reason"],
            intervals=interval_specs(data),
            target_kw=data.get("target_kw"),
            end=data.get("end"),
        )
        return Response(s.DispatchEventSerializer(event).data)

    @extend_schema(responses=s.AllocationSerializer(many=True))
    @action(detail=True, methods=["get"])
    def allocations(self, request, pk=None):
        """Each member device's share per interval, and why (filter with ?reason= or ?device=)."""
        rows = Allocation.objects.filter(event=self.get_object()).select_related("device").order_by("rank", "device_id")
        rows = _filtered(request, rows, ("reason", "device"))
        of = rows.count() if not request.query_params.get("reason") and not request.query_params.get("device") else None
        page = self.paginate_queryset(rows)
        for row in page:
            row.of = of
        return self.get_paginated_response(s.AllocationSerializer(page, many=True).data)

    @extend_schema(responses=s.DeviceCommandSerializer(many=True))
    @action(detail=True, methods=["get"])
    def commands(self, request, pk=None):
        """Commands sent for the event (filter with ?status= or ?device=)."""
        rows = DeviceCommand.objects.filter(event=self.get_object()).order_by("device_id", "sequence")
        rows = _filtered(request, rows, ("status", "device"))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(s.DeviceCommandSerializer(page, many=True).data)


class StormWatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Storm watches: a zone's (or pricing nodes') devices stay home with full batteries over a window, leaving the
    events that overlap it (dispatch.resilience). Operators declare and cancel them."""

    queryset = StormWatch.objects.select_related("market")
    serializer_class = s.StormWatchSerializer
    filterset_fields = ["zone"]

    @extend_schema(request=s.StormWatchCreateSerializer, responses={201: s.StormWatchSerializer})
    def create(self, request):
        params = s.StormWatchCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        market = Market.objects.filter(code__iexact=data["market"]).first()
        if market is None:
            raise ValidationError({"market": ["No such market."]}, code="does_not_exist")
        watch = resilience.declare(
            market=market,
            zone=data["zone"],
            pricing_nodes=data["pricing_nodes"],
            start=data["start"],
            end=data["end"],
            reason=data["reason"],
            by=request.user,
        )
        return Response(s.StormWatchSerializer(watch).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.StormWatchSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """End the watch now: its devices may serve events again."""
        return Response(s.StormWatchSerializer(resilience.cancel(watch=self.get_object())).data)
