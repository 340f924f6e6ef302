"""Awards on the API: the inbound form (aggregator.market.wire.AwardWire) and what operators read."""

from rest_framework import serializers

from aggregator.core.api.fields import AwareDateTimeField
from aggregator.market import awards
from aggregator.market.models import Award, AwardInterval, MarketKind, RefusedAward


class AwardIntervalInputSerializer(serializers.Serializer):
    start = AwareDateTimeField(help_text="One of the offer's interval starts.")
    end = AwareDateTimeField(help_text="One interval of the offer later.")
    kw = serializers.DecimalField(
        max_digits=12, decimal_places=3, min_value=0, coerce_to_string=False, help_text="At most the offered kW."
    )
    price_per_mwh = serializers.DecimalField(
        max_digits=12,
        decimal_places=4,
        coerce_to_string=False,
        help_text="The clearing price: at or above the offer curve's price at kw.",
    )


class AwardInputSerializer(serializers.Serializer):
    award_id = serializers.CharField(max_length=100, help_text="The market's id of the award; a resend is the same.")
    offer_id = serializers.CharField(
        max_length=100, help_text='The offer version it answers, as submitted ("<id>-v<n>").'
    )
    resource = serializers.CharField(max_length=64, help_text="The market's id of the registered resource.")
    market_kind = serializers.ChoiceField(choices=MarketKind.choices)
    intervals = AwardIntervalInputSerializer(many=True, allow_empty=False, max_length=awards.MAX_INTERVALS)

    def wire(self) -> dict:
        """The validated award in its JSON form, as the market and the adapters send it."""
        data = self.validated_data
        return {
            "award_id": data["award_id"],
            "offer_id": data["offer_id"],
            "resource": data["resource"],
            "market_kind": data["market_kind"],
            "intervals": [
                {
                    "start": i["start"].isoformat(),
                    "end": i["end"].isoformat(),
                    "kw": float(i["kw"]),
                    "price_per_mwh": float(i["price_per_mwh"]),
                }
                for i in data["intervals"]
            ],
        }


class AwardIntervalSerializer(serializers.ModelSerializer):
    class Meta:
        model = AwardInterval
        fields = ["start", "end", "kw", "price_per_mwh"]
        read_only_fields = fields


class AwardSerializer(serializers.ModelSerializer):
    offer_ref = serializers.SerializerMethodField(help_text='The offer version it answers ("<id>-v<n>").')
    resource = serializers.IntegerField(source="offer.resource_id", read_only=True)
    market = serializers.CharField(source="offer.resource.market.code", read_only=True)
    event_state = serializers.CharField(source="event.state", read_only=True, allow_null=True, default=None)
    intervals = AwardIntervalSerializer(many=True, read_only=True)

    class Meta:
        model = Award
        fields = [
            "id",
            "award_ref",
            "offer",
            "offer_ref",
            "resource",
            "market",
            "market_kind",
            "source",
            "received_at",
            "event",
            "event_state",
            "intervals",
        ]
        read_only_fields = fields

    def get_offer_ref(self, award: Award) -> str:
        return awards.ref_of(award)


class AwardDetailSerializer(AwardSerializer):
    class Meta(AwardSerializer.Meta):
        fields = [*AwardSerializer.Meta.fields, "content"]
        read_only_fields = fields


class RefusedAwardSerializer(serializers.ModelSerializer):
    market = serializers.CharField(source="market.code", read_only=True)

    class Meta:
        model = RefusedAward
        fields = [
            "id",
            "market",
            "award_ref",
            "offer_ref",
            "resource_ref",
            "first_seen_at",
            "last_seen_at",
            "times_seen",
            "problems",
            "content",
        ]
        read_only_fields = fields
