"""Settlement on the operator API: runs (read, and a new one queued), their evidence, and statements for a period."""

from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregator.aggregation.models import VirtualResource
from aggregator.core.api.renderers import CSVRenderer
from dispatch.models import DispatchEvent
from enrollment.models import Customer
from settlement import reconciliation, selectors, services
from settlement.filtersets import SettlementRunFilter
from settlement.models import CustomerPayout, SettlementRun
from settlement.tasks import settle_event

MAX_PERIOD = timedelta(days=366)


class PayoutSerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomerPayout
        fields = ["customer", "delivered_kwh", "gross", "fee", "net"]


class SettlementRunSerializer(serializers.ModelSerializer):
    resource = serializers.IntegerField(source="event.resource_id", read_only=True)

    class Meta:
        model = SettlementRun
        fields = [
            "id",
            "event",
            "resource",
            "version",
            "kind",
            "created_at",
            "created_by",
            "method",
            "sites",
            "committed_kwh",
            "delivered_kwh",
            "performance_factor",
            "energy",
            "capacity",
            "penalty",
            "net",
            "rules",
            "difference",
        ]


class SettlementRunDetailSerializer(SettlementRunSerializer):
    payouts = PayoutSerializer(many=True, read_only=True)

    class Meta(SettlementRunSerializer.Meta):
        fields = [*SettlementRunSerializer.Meta.fields, "payouts"]


class SettleRequestSerializer(serializers.Serializer):
    event = serializers.IntegerField(help_text="An ended event of a program with settlement terms.")


def _exact(value):
    """Money and energy stay exact on the wire: a Decimal travels as its string, not as a float."""
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    return str(value) if isinstance(value, Decimal) else value


def _lines(header: list[str], rows: list[list]) -> list[dict]:
    return [{name: _exact(cell) for name, cell in zip(header, row)} for row in rows]


def _csv_download(request, response: Response, filename: str, header: list[str]) -> Response:
    if getattr(request, "accepted_renderer", None) and request.accepted_renderer.format == "csv":
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response.csv_header = header  # type: ignore[attr-defined]  # read by CSVRenderer when there are no lines
    return response


class SettlementRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Settlement runs: immutable versions per event. The hourly job makes them; an operator can queue one."""

    queryset = SettlementRun.objects.select_related("event").order_by("-created_at", "-id")
    serializer_class = SettlementRunSerializer
    filterset_class = SettlementRunFilter
    ordering_fields = ["created_at", "version", "net"]

    def get_queryset(self):
        if self.action == "retrieve":
            return super().get_queryset().prefetch_related("payouts")
        return super().get_queryset()

    def get_serializer_class(self):
        return SettlementRunDetailSerializer if self.action == "retrieve" else SettlementRunSerializer

    @extend_schema(request=SettleRequestSerializer, responses={202: dict})
    def create(self, request):
        """Queue a settlement of an event now (a resettlement if it has runs): refused at once if it cannot be settled."""
        params = SettleRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        event = (
            DispatchEvent.objects.select_related("resource__program").filter(pk=params.validated_data["event"]).first()
        )
        if event is None:
            raise ValidationError({"event": ["No such event."]}, code="does_not_exist")
        services.check_settleable(event, now=timezone.now())

        # Nothing reads the task's result: without ignore_result the result backend's subscription retries for
        # seconds when Redis is away. A broker that is away is a 503 (the error handler's outages).
        transaction.on_commit(lambda: settle_event.apply_async((event.pk,), ignore_result=True))
        return Response(
            {"event": event.pk, "queued": True, "runs": f"/api/v1/settlement-runs/?event={event.pk}"},
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def intervals(self, request, pk=None):
        """The resource's summed baseline, actual and target kW per interval in this run: what the event chart draws."""
        run = self.get_object()
        return Response(
            {
                "run": run.pk,
                "event": run.event_id,
                "version": run.version,
                "intervals": [{k: _exact(v) for k, v in i.items()} for i in selectors.interval_totals(run=run)],
            }
        )

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["json", "csv"])], responses={200: dict})
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CSVRenderer])
    def statement(self, request, pk=None):
        """The run's evidence: per site and interval the baseline, actual, reduction, price and the baseline days used."""
        run = self.get_object()
        header, rows = selectors.statement_rows(run=run)
        body = {"run": run.pk, "event": run.event_id, "version": run.version, "lines": _lines(header, rows)}
        if request.accepted_renderer.format != "csv":
            # The market's figures beside ours, once its statement is imported (manage.py import_market_statement).
            body["market"] = [_exact(reconciliation.line_dict(line)) for line in reconciliation.for_run(run)]
        response = Response(body)
        return _csv_download(request, response, f"settlement-event{run.event_id}-v{run.version}.csv", header)


def period(query) -> tuple[date, date]:
    """`from` and `to` (inclusive calendar days, in each event's market time) from the query string."""
    days = {}
    for name in ("from", "to"):
        raw = query.get(name)
        if not raw:
            raise ValidationError({name: ["Required: a date, YYYY-MM-DD."]}, code="required")
        try:
            days[name] = date.fromisoformat(raw)
        except ValueError:
            raise ValidationError({name: ["A date, YYYY-MM-DD."]}, code="invalid") from None
    if days["to"] < days["from"]:
        raise ValidationError({"to": ["to must not be before from."]}, code="out_of_range")
    if days["to"] - days["from"] > MAX_PERIOD:
        raise ValidationError({"to": [f"At most {MAX_PERIOD.days} days per statement."]}, code="out_of_range")
    return days["from"], days["to"]


def _subject(query, name: str, model):
    raw = query.get(name)
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationError({name: [f"A {name} id."]}, code="invalid")
    subject = model.objects.filter(pk=int(raw)).first()
    if subject is None:
        raise ValidationError({name: [f"No such {name}."]}, code="does_not_exist")
    return subject


def _totals(totals: dict) -> dict:
    return {k: _exact(v) for k, v in totals.items()}


_PERIOD_PARAMETERS = [
    OpenApiParameter("resource", int, description="A virtual resource: its events' lines. Give resource or customer."),
    OpenApiParameter("customer", int, description="A customer: its payouts per event."),
    OpenApiParameter("from", date, required=True, description="First day (market time of each event)."),
    OpenApiParameter("to", date, required=True, description="Last day, inclusive."),
    OpenApiParameter(
        "detail",
        str,
        enum=["events", "intervals"],
        description="For a customer: `intervals` lists each site's intervals and baseline days instead.",
    ),
    OpenApiParameter("format", str, enum=["json", "csv"]),
]


class PeriodStatementView(APIView):
    """A statement for a period: per resource (its settled events) or per customer (its payouts), latest versions."""

    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(parameters=_PERIOD_PARAMETERS, responses={200: dict})
    def get(self, request):
        first, last = period(request.query_params)
        resource = _subject(request.query_params, "resource", VirtualResource)
        customer = _subject(request.query_params, "customer", Customer)
        if (resource is None) == (customer is None):
            raise ValidationError({"resource": ["Give either resource or customer."]}, code="required")
        detail = request.query_params.get("detail") or "events"
        if detail not in ("events", "intervals") or (detail == "intervals" and customer is None):
            raise ValidationError({"detail": ["events, or intervals for a customer."]}, code="invalid")
        head = {"from": first, "to": last}
        if resource is not None:
            header, rows, totals = selectors.resource_statement(resource=resource, first=first, last=last)
            body, name = (
                {"resource": resource.pk, "name": str(resource), **head, "totals": _totals(totals)},
                f"resource{resource.pk}",
            )
        elif detail == "intervals":
            header, rows = selectors.customer_intervals(customer=customer, first=first, last=last)
            body, name = {"customer": customer.pk, **head}, f"customer{customer.pk}-intervals"
        else:
            header, rows, totals = selectors.customer_statement(customer=customer, first=first, last=last)
            body, name = (
                {"customer": customer.pk, "name": customer.name, **head, "totals": _totals(totals)},
                f"customer{customer.pk}",
            )
        response = Response({**body, "lines": _lines(header, rows)})
        return _csv_download(request, response, f"statement-{name}-{first}-{last}.csv", header)
