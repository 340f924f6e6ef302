from rest_framework import serializers

from aggregator.core.api.fields import AwareDateTimeField
from dispatch.models import (
    Allocation,
    AllocationRound,
    DeviceCommand,
    DispatchEvent,
    EventInterval,
    EventTransition,
    StormWatch,
)
from dispatch.selectors import target_vs_delivered


class IntervalInputSerializer(serializers.Serializer):
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    target_kw = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=0)


class EventCreateSerializer(serializers.Serializer):
    resource = serializers.IntegerField()
    source = serializers.ChoiceField(choices=DispatchEvent.Source.choices, default=DispatchEvent.Source.OPERATOR_TEST)
    target_kind = serializers.ChoiceField(
        choices=DispatchEvent.TargetKind.choices, default=DispatchEvent.TargetKind.REDUCTION
    )
    notify_at = AwareDateTimeField(required=False, help_text="Default: now (or start, if sooner).")
    start = AwareDateTimeField(help_text="ISO 8601 with offset; now for a real-time event.")
    end = AwareDateTimeField()
    target_kw = serializers.DecimalField(
        max_digits=12,
        decimal_places=3,
        min_value=0,
        required=False,
        help_text="A flat target (hourly intervals); or give intervals.",
    )
    intervals = IntervalInputSerializer(many=True, required=False)
    ramp_seconds = serializers.IntegerField(min_value=0, max_value=3600, default=0)
    over_commit_pct = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=0, max_value=100, required=False
    )
    external_ref = serializers.CharField(max_length=100, required=False, default="")
    replaces = serializers.IntegerField(
        required=False, help_text="An open event of the same resource this one replaces."
    )


class EventModifySerializer(serializers.Serializer):
    reason = serializers.CharField()
    end = AwareDateTimeField(required=False)
    target_kw = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=0, required=False)
    intervals = IntervalInputSerializer(many=True, required=False)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()


class EventIntervalSerializer(serializers.ModelSerializer):
    class Meta:
        model = EventInterval
        fields = ["start", "end", "target_kw"]


class EventTransitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = EventTransition
        fields = ["action", "from_state", "to_state", "at", "actor_label", "reason"]


class AllocationRoundSerializer(serializers.ModelSerializer):
    class Meta:
        model = AllocationRound
        fields = ["number", "reason", "created_at", "first_interval", "target_kw", "allocated_kw", "devices", "seconds"]


class DispatchEventSerializer(serializers.ModelSerializer):
    intervals = EventIntervalSerializer(many=True, read_only=True)

    class Meta:
        model = DispatchEvent
        fields = [
            "id",
            "resource",
            "source",
            "external_ref",
            "target_kind",
            "notify_at",
            "start",
            "end",
            "ramp_seconds",
            "over_commit_pct",
            "state",
            "replaces",
            "warnings",
            "allocation_round",
            "commands_issued_round",
            "created_at",
            "created_by_label",
            "intervals",
        ]
        read_only_fields = fields


class PerformanceSerializer(serializers.Serializer):
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    target_kw = serializers.FloatField()
    allocated_kw = serializers.FloatField()
    delivered_kw = serializers.FloatField(allow_null=True)
    reporting_devices = serializers.IntegerField()


class DispatchEventDetailSerializer(DispatchEventSerializer):
    transitions = EventTransitionSerializer(many=True, read_only=True)
    rounds = AllocationRoundSerializer(many=True, read_only=True)
    performance = serializers.SerializerMethodField()
    commands = serializers.SerializerMethodField()

    class Meta(DispatchEventSerializer.Meta):
        fields = [*DispatchEventSerializer.Meta.fields, "transitions", "rounds", "performance", "commands"]
        read_only_fields = fields

    def get_performance(self, event) -> list[dict]:

        return PerformanceSerializer(target_vs_delivered(event=event), many=True).data

    def get_commands(self, event) -> dict[str, int]:
        from django.db.models import Count

        return dict(event.commands.values_list("status").annotate(n=Count("id")).order_by())


class AllocationSerializer(serializers.ModelSerializer):
    explanation = serializers.CharField(read_only=True)

    class Meta:
        model = Allocation
        fields = [
            "device",
            "customer_id",
            "round",
            "kw",
            "available_kw",
            "reason",
            "rank",
            "customer_events",
            "customer_hours",
            "explanation",
        ]


class DeviceCommandSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeviceCommand
        fields = [
            "id",
            "event",
            "device",
            "sequence",
            "round",
            "kind",
            "schedule",
            "ramp_seconds",
            "not_before",
            "expires_at",
            "status",
            "created_at",
            "delivered_at",
            "acknowledged_at",
            "reason",
        ]


class StormWatchSerializer(serializers.ModelSerializer):
    market = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = StormWatch
        fields = [
            "id",
            "market",
            "zone",
            "pricing_nodes",
            "start",
            "end",
            "reason",
            "devices",
            "events",
            "created_by_label",
            "created_at",
            "cancelled_at",
        ]
        read_only_fields = fields


class StormWatchCreateSerializer(serializers.Serializer):
    market = serializers.CharField(help_text="The market's code, e.g. PJM.")
    zone = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
    pricing_nodes = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=500
    )
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    reason = serializers.CharField(max_length=200)


class CustomerCostSerializer(serializers.Serializer):
    site = serializers.IntegerField()
    device = serializers.IntegerField()
    kwh = serializers.FloatField()
    cost_per_kwh = serializers.FloatField(help_text="What a kWh taken costs the site's bill (its battery plan).")
    cost = serializers.FloatField()


class EventPreviewSerializer(serializers.Serializer):
    target_kw = serializers.ListField(child=serializers.FloatField(), help_text="Per interval, with the margin.")
    allocated_kw = serializers.ListField(child=serializers.FloatField())
    devices = serializers.IntegerField()
    warnings = serializers.ListField(child=serializers.DictField())
    customer_costs = CustomerCostSerializer(many=True)
    customer_cost_total = serializers.FloatField()
