from rest_framework import serializers

from aggregator.models import Market, Program


class MarketSerializer(serializers.ModelSerializer):
    class Meta:
        model = Market
        fields = [
            "id", "code", "name", "time_zone", "min_aggregation_kw", "multi_node_allowed", "utility_review_days",
            "review_lapse_approves", "settlement_interval_minutes", "baseline_methods",
        ]


class ProgramSerializer(serializers.ModelSerializer):
    review_days = serializers.IntegerField(read_only=True)

    class Meta:
        model = Program
        fields = [
            "id", "market", "code", "name", "service", "terms_version", "utility_review_days", "review_days",
            "excluded_retail_programs", "is_open",
        ]
