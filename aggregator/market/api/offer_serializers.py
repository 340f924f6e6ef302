"""Offers on the operator API: versions with their intervals, and the body of an edit."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from aggregator.core.api.fields import AwareDateTimeField
from aggregator.core.state_machine import allowed_actions
from aggregator.market.models import Offer, OfferInterval
from aggregator.market.offers import services
from aggregator.market.wire import offer_ref


class OfferIntervalSerializer(serializers.ModelSerializer):
    segments = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="[[kw, price_per_mwh], ...]: each segment's incremental kW at its price, prices non-decreasing.",
    )

    class Meta:
        model = OfferInterval
        fields = [
            "start",
            "min_kw",
            "max_kw",
            "segments",
            "ramp_kw_per_minute",
            "notification_minutes",
            "min_run_minutes",
            "max_run_minutes",
        ]


class OfferSerializer(serializers.ModelSerializer):
    market = serializers.CharField(source="resource.market.code", read_only=True)
    offer_ref = serializers.SerializerMethodField(help_text="The id the version goes to the market under.")
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    allowed_actions = serializers.SerializerMethodField()

    class Meta:
        model = Offer
        fields = [
            "id",
            "offer_ref",
            "resource",
            "market",
            "market_kind",
            "window_start",
            "window_end",
            "interval_minutes",
            "version",
            "state",
            "forecast",
            "quantile",
            "deadline",
            "supersedes",
            "built_at",
            "built_by_label",
            "approved_at",
            "approved_by",
            "submitted_at",
            "submitted_via",
            "submission_ref",
            "warnings",
            "notes",
            "allowed_actions",
        ]
        read_only_fields = fields

    def get_offer_ref(self, offer: Offer) -> str:
        return offer_ref(offer.pk, offer.version)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_allowed_actions(self, offer: Offer) -> list[str]:
        return allowed_actions(services.TRANSITIONS, offer.state)


class OfferDetailSerializer(OfferSerializer):
    intervals = OfferIntervalSerializer(many=True, read_only=True)

    class Meta(OfferSerializer.Meta):
        fields = [*OfferSerializer.Meta.fields, "intervals"]
        read_only_fields = fields


class IntervalEditSerializer(serializers.Serializer):
    """One interval's changes; what is left out stays as it is. Only these fields are editable."""

    start = AwareDateTimeField(help_text="The start of the offer interval to change.")
    segments = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        required=False,
        help_text="[[kw, price_per_mwh], ...]; the interval's max_kw becomes their total.",
    )
    min_kw = serializers.FloatField(required=False, min_value=0)
    ramp_kw_per_minute = serializers.FloatField(required=False, min_value=0)
    notification_minutes = serializers.IntegerField(required=False, min_value=0)
    min_run_minutes = serializers.IntegerField(required=False, min_value=0)
    max_run_minutes = serializers.IntegerField(required=False, min_value=1, allow_null=True)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [serializers.ErrorDetail("Not editable.", "not_editable")] for name in unknown}
                )
        return super().to_internal_value(data)


class OfferEditSerializer(serializers.Serializer):
    intervals = IntervalEditSerializer(many=True, allow_empty=False)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=2000)
