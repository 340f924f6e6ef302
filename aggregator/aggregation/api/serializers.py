from rest_framework import serializers

from aggregator.aggregation import services
from aggregator.aggregation.models import ScopeKind
from aggregator.core import state_machine
from aggregator.core.api.serializers import ModelSerializer
from aggregator.reference.models import Market, Program


class MarketSerializer(ModelSerializer):
    class Meta:
        model = Market
        fields = [
            "id",
            "code",
            "name",
            "time_zone",
            "min_aggregation_kw",
            "multi_node_allowed",
            "utility_review_days",
            "review_lapse_approves",
            "settlement_interval_minutes",
            "baseline_methods",
        ]


class ProgramSerializer(ModelSerializer):
    review_days = serializers.IntegerField(read_only=True)

    class Meta:
        model = Program
        fields = [
            "id",
            "market",
            "code",
            "name",
            "service",
            "terms_version",
            "utility_review_days",
            "review_days",
            "excluded_retail_programs",
            "is_open",
            "typical_event_hours",
        ]


class VirtualResourceSerializer(ModelSerializer):
    allowed_actions = serializers.SerializerMethodField()
    member_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        from aggregator.aggregation.models import VirtualResource

        model = VirtualResource
        fields = [
            "id",
            "name",
            "market",
            "program",
            "participation_model",
            "scope_kind",
            "scope",
            "max_kw",
            "state",
            "allowed_actions",
            "registered_capability_kw",
            "market_resource_id",
            "member_count",
            "submitted_at",
            "registered_at",
            "activated_at",
            "retired_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["market_resource_id"]
        extra_kwargs = {"participation_model": {"required": False}}
        validators = []  # services.create_resource checks names, scope and market rules together

    def get_allowed_actions(self, obj) -> list[str]:

        return state_machine.allowed_actions(services.TRANSITIONS, obj.state)


class ResourceUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    max_kw = serializers.DecimalField(max_digits=12, decimal_places=3, required=False, allow_null=True, min_value=0)


class ResourceActionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    market_resource_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)


class MemberChangeSerializer(serializers.Serializer):
    device = serializers.IntegerField()
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class MemberSerializer(serializers.Serializer):
    device = serializers.IntegerField()
    device_type = serializers.CharField()
    rated_kw = serializers.FloatField()
    available_kw = serializers.FloatField()
    explanation = serializers.CharField()
    joined_at = serializers.DateTimeField()


class ForecastPointSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    kw = serializers.FloatField()


class CapabilitySerializer(serializers.Serializer):
    resource = serializers.IntegerField()
    event_hours = serializers.FloatField()
    minimum_kw = serializers.FloatField()
    now_kw = serializers.FloatField()
    shortfall_kw = serializers.FloatField()
    members = serializers.IntegerField()
    by_type_kw = serializers.DictField(child=serializers.FloatField())
    forecast = ForecastPointSerializer(many=True)


class ProposalRequestSerializer(serializers.Serializer):
    market = serializers.PrimaryKeyRelatedField(queryset=Market.objects.all())
    program = serializers.PrimaryKeyRelatedField(queryset=Program.objects.all())
    scope_kind = serializers.ChoiceField(choices=ScopeKind.choices, required=False)
    max_kw = serializers.DecimalField(max_digits=12, decimal_places=3, required=False, allow_null=True, min_value=0)


class ProposalSerializer(ModelSerializer):
    resources = serializers.SerializerMethodField()

    class Meta:
        from aggregator.aggregation.models import AggregationProposal

        model = AggregationProposal
        fields = [
            "id",
            "market",
            "program",
            "scope_kind",
            "max_kw",
            "event_hours",
            "state",
            "resources",
            "unplaced",
            "ineligible",
            "created_at",
            "created_by",
            "decided_at",
            "seconds",
        ]

    def get_resources(self, obj) -> list[dict]:
        # Device ids can run to the hundred thousand; the list view shows the summary.
        full = self.context.get("full", False)
        return [r if full else {k: v for k, v in r.items() if k != "device_ids"} for r in obj.resources]
