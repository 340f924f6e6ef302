from django.contrib import admin

from aggregator.models import Market, OperatorToken, Program


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "time_zone", "min_aggregation_kw", "multi_node_allowed", "utility_review_days", "settlement_interval_minutes"]
    search_fields = ["code", "name"]


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "market", "service", "terms_version", "is_open"]
    list_filter = ["market", "service", "is_open"]
    search_fields = ["code", "name"]


@admin.register(OperatorToken)
class OperatorTokenAdmin(admin.ModelAdmin):
    list_display = ["key_id", "user", "label", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["key_id", "user", "created_at", "last_used_at"]
    exclude = ["digest"]
    search_fields = ["key_id", "user__username"]

    def has_add_permission(self, request):
        return False  # issued with `manage.py issue_operator_token`, which shows the token once
