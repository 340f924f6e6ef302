"""Flexibility forecasts on the operator API: GET /api/v1/market/forecasts (the latest per resource, kind and model
by default) and GET /api/v1/market/forecasts/<id> with its intervals."""

import django_filters
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets

from aggregator.core.api.filters import FilterSet
from aggregator.market.forecasting.selectors import intervals
from aggregator.market.models import Forecast


class ForecastFilter(FilterSet):
    latest = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_latest",
        label="Only the latest forecast per resource, kind and model (default true; false: every one, newest first).",
    )

    class Meta:
        model = Forecast
        fields = {"resource": ["exact"], "kind": ["exact"], "model": ["exact"], "issued_at": ["gte", "lt"]}

    def filter_latest(self, queryset, name, value):
        return queryset  # applied in the view, after the other filters

    @property
    def qs(self):
        rows = super().qs
        if self.form.cleaned_data.get("latest") == "false":
            return rows.order_by("-issued_at", "resource_id", "kind", "model")
        latest = (
            rows.order_by("resource_id", "kind", "model", "-issued_at", "-id")
            .distinct("resource_id", "kind", "model")
            .values("id")
        )
        return Forecast.objects.filter(id__in=latest).order_by("resource_id", "kind", "model")


class ForecastSerializer(serializers.ModelSerializer):
    class Meta:
        model = Forecast
        fields = ["id", "resource", "kind", "model", "issued_at", "start", "interval_minutes"]


class ForecastIntervalSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    expected_kw = serializers.FloatField()
    p10_kw = serializers.FloatField()
    p50_kw = serializers.FloatField()
    p90_kw = serializers.FloatField()


class ForecastDetailSerializer(ForecastSerializer):
    intervals = serializers.SerializerMethodField()

    class Meta(ForecastSerializer.Meta):
        fields = [*ForecastSerializer.Meta.fields, "inputs", "intervals"]

    @extend_schema_field(ForecastIntervalSerializer(many=True))
    def get_intervals(self, forecast):
        return ForecastIntervalSerializer(intervals(forecast), many=True).data


class ForecastViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """What each resource can deliver per interval: expected kW and its P10/P50/P90 (learned, and the persistence
    and nameplate baselines). Written by the forecast's beat tasks; read-only here."""

    queryset = Forecast.objects.all()
    filterset_class = ForecastFilter
    lookup_value_converter = "int"

    def get_serializer_class(self):
        return ForecastDetailSerializer if self.action == "retrieve" else ForecastSerializer
