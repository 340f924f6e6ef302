from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from aggregator.aggregation import capability, services
from aggregator.aggregation.api import serializers as s
from aggregator.aggregation.filtersets import VirtualResourceFilter
from aggregator.aggregation.models import AggregationProposal, VirtualResource
from aggregator.aggregation.selectors import capability_of, load_fleet
from aggregator.core.api.renderers import CSVRenderer
from enrollment.models import Device


def _event_hours(request, resource) -> float:
    raw = request.query_params.get("event_hours")
    if raw is None:
        return services.event_hours_for(resource)
    try:
        value = float(raw)
    except ValueError:
        value = 0
    if not 0 < value <= 24:
        raise ValidationError({"event_hours": ["A number of hours above 0 and at most 24."]}, code="out_of_range")
    return value


class VirtualResourceViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Virtual resources (DER aggregations). State changes only through their actions."""

    queryset = VirtualResource.objects.select_related("market", "program").annotate(
        member_count=Count("memberships", filter=Q(memberships__left_at__isnull=True))
    )
    serializer_class = s.VirtualResourceSerializer
    filterset_class = VirtualResourceFilter
    search_fields = ["name", "scope", "market_resource_id"]

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.create_resource(
            market=data["market"],
            program=data["program"],
            name=data["name"],
            scope_kind=data.get("scope_kind", "pricing_node"),
            scope=data["scope"],
            max_kw=data.get("max_kw"),
            participation_model=data.get("participation_model"),
            by=self.request.user,
        )

    @extend_schema(request=s.ResourceUpdateSerializer)
    def update(self, request, *args, **kwargs):
        params = s.ResourceUpdateSerializer(data=request.data, partial=kwargs.get("partial", False))
        params.is_valid(raise_exception=True)
        resource = services.update_resource(resource=self.get_object(), **params.validated_data)
        return Response(s.VirtualResourceSerializer(self.get_queryset().get(pk=resource.pk)).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("event_hours", float, description="Event length; the program's typical length by default")
        ],
        responses=s.CapabilitySerializer,
    )
    @action(detail=True, methods=["get"])
    def capability(self, request, pk=None):
        """Dispatchable kW now and by hour for the next 48 hours."""
        resource = self.get_object()
        hours = _event_hours(request, resource)
        figures = capability_of(resource_ids=[resource.pk], now=timezone.now(), hours=48, event_hours=hours)[
            resource.pk
        ]
        minimum = float(resource.market.min_aggregation_kw)
        return Response(
            {
                "resource": resource.pk,
                "event_hours": hours,
                "minimum_kw": minimum,
                "shortfall_kw": round(max(0.0, minimum - figures["now_kw"]), 3),
                **figures,
            }
        )

    @extend_schema(responses=s.MemberSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def members(self, request, pk=None):
        """Current members with what each contributes now, and why."""
        resource = self.get_object()
        fleet, (joined,) = load_fleet(
            where="m.resource_id = %s",
            params=[resource.pk],
            joins="JOIN aggregator_resourcemembership m ON m.device_id = d.id AND m.left_at IS NULL",
            extra=("m.joined_at",),
        )
        now = timezone.now()
        kw = capability.available_kw(fleet, now=now, instants=[now], event_hours=_event_hours(request, resource))[:, 0]
        return Response(
            [
                {
                    "device": int(fleet.device_id[i]),
                    "device_type": capability.TYPES[fleet.type_code[i]],
                    "rated_kw": float(fleet.rated_kw[i]),
                    "available_kw": round(float(kw[i]), 3),
                    "explanation": capability.explain(fleet, kw, i),
                    "joined_at": joined[i],
                }
                for i in range(len(fleet))
            ]
        )

    def _member_change(self, request, change):
        params = s.MemberChangeSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        device = get_object_or_404(Device, pk=params.validated_data["device"])
        change(resource=self.get_object(), device=device, by=request.user, reason=params.validated_data["reason"])
        return Response(s.VirtualResourceSerializer(self.get_queryset().get(pk=pk_of(self))).data)

    @extend_schema(request=s.MemberChangeSerializer, responses=s.VirtualResourceSerializer)
    @action(detail=True, methods=["post"], url_path="add-member")
    def add_member(self, request, pk=None):
        return self._member_change(request, services.add_member)

    @extend_schema(request=s.MemberChangeSerializer, responses=s.VirtualResourceSerializer)
    @action(detail=True, methods=["post"], url_path="remove-member")
    def remove_member(self, request, pk=None):
        return self._member_change(request, services.remove_member)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """Lifecycle transitions and modifications (members added or removed, with capability effect)."""
        resource = self.get_object()
        return Response(
            {
                "transitions": list(
                    resource.transitions.values("action", "from_state", "to_state", "at", "actor_label", "reason")
                ),
                "modifications": [
                    {
                        "kind": m.kind,
                        "device": m.device_id,
                        "at": m.at,
                        "capability_before_kw": m.capability_before_kw,
                        "capability_after_kw": m.capability_after_kw,
                        "capability_change_kw": m.capability_change_kw,
                        "actor_label": m.actor_label,
                        "reason": m.reason,
                        "reported_at": m.reported_at,
                    }
                    for m in resource.modifications.all()
                ],
            }
        )

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["json", "csv"])], responses={200: dict})
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CSVRenderer])
    def registration(self, request, pk=None):
        """The registration export a market needs: the resource and each member's site, meter, type, kW and location."""
        resource = self.get_object()
        columns, rows = registration_export(resource)
        head = {
            "resource": resource.name,
            "market": resource.market.code,
            "market_resource_id": resource.market_resource_id,
            "participation_model": resource.participation_model,
            "scope_kind": resource.scope_kind,
            "scope": resource.scope,
            "registered_capability_kw": resource.registered_capability_kw,
            "members": rows,
        }
        response = Response(head)
        if getattr(request, "accepted_renderer", None) and request.accepted_renderer.format == "csv":
            response["Content-Disposition"] = (
                f'attachment; filename="{resource.market.code}-{resource.name}-registration.csv"'
            )
            response.csv_header = columns  # type: ignore[attr-defined]  # read by CSVRenderer when there are no members
        return response

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"], url_path="utility-sharing")
    def utility_sharing(self, request, pk=None):
        """The list each distribution utility receives: its DERs in this resource, with sizes and locations."""
        resource = self.get_object()
        by_utility: dict[str, list] = {}
        for row in registration_rows(resource):
            by_utility.setdefault(row["utility"], []).append(row)
        return Response(
            {
                "resource": resource.name,
                "market": resource.market.code,
                "utilities": [
                    {
                        "utility": u,
                        "ders": len(r),
                        "total_rated_kw": round(sum(x["rated_kw"] for x in r), 3),
                        "members": r,
                    }
                    for u, r in sorted(by_utility.items())
                ],
            }
        )


def pk_of(view) -> int:
    return int(view.kwargs["pk"])


def registration_rows(resource) -> list[dict]:
    return registration_export(resource)[1]


def registration_export(resource) -> tuple[list[str], list[dict]]:
    """(columns, a row per member) of a resource's registration export."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT d.id, d.device_type, d.manufacturer, d.model, d.serial, d.rated_kw::float8, d.energy_kwh::float8,
                   s.utility, s.meter_id, s.pricing_node, s.zone, s.address, s.city, s.region, s.postal_code,
                   s.latitude::float8, s.longitude::float8, m.joined_at
            FROM aggregator_resourcemembership m
            JOIN enrollment_device d ON d.id = m.device_id JOIN enrollment_site s ON s.id = d.site_id
            WHERE m.resource_id = %s AND m.left_at IS NULL ORDER BY s.utility, s.meter_id, d.id
            """,
            [resource.pk],
        )
        names = [c.name for c in cursor.description]
        names[0] = "device"
        return names, [dict(zip(names, row)) for row in cursor.fetchall()]


def _resource_action(name):
    @extend_schema(request=s.ResourceActionSerializer, responses=s.VirtualResourceSerializer)
    def handler(self, request, pk=None):
        params = s.ResourceActionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        services.transition(resource=self.get_object(), action=name, by=request.user, **params.validated_data)
        return Response(s.VirtualResourceSerializer(self.get_queryset().get(pk=pk_of(self))).data)

    handler.__name__ = name
    return action(detail=True, methods=["post"], url_path=name.replace("_", "-"))(handler)


for _name in services.OPERATOR_ACTIONS:
    setattr(VirtualResourceViewSet, _name, _resource_action(_name))


class AggregationProposalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The aggregation builder: propose resources from eligible unassigned devices, review, accept."""

    queryset = AggregationProposal.objects.all()
    serializer_class = s.ProposalSerializer
    filterset_fields = ["market", "program", "state"]

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "full": self.action == "retrieve"}

    @extend_schema(request=s.ProposalRequestSerializer, responses={201: s.ProposalSerializer})
    def create(self, request):
        params = s.ProposalRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        proposal = services.build_proposal(by=request.user, **params.validated_data)
        return Response(s.ProposalSerializer(proposal).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: s.VirtualResourceSerializer(many=True)})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        resources = services.accept_proposal(proposal=self.get_object(), by=request.user)
        return Response(s.VirtualResourceSerializer(resources, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.ProposalSerializer)
    @action(detail=True, methods=["post"])
    def discard(self, request, pk=None):
        return Response(s.ProposalSerializer(services.discard_proposal(proposal=self.get_object())).data)
