"""The wholesale side in the admin: connections are edited here; forecasts, offers, awards and telemetry are
records, changed only through the market's services (the console's Market page and the API)."""

from django.contrib import admin

from aggregator.market.models import (
    Award,
    Forecast,
    MarketConnection,
    Offer,
    RefusedAward,
    TelemetrySample,
    TelemetryScan,
)


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(MarketConnection)
class MarketConnectionAdmin(admin.ModelAdmin):
    list_display = ["market", "adapter", "enabled", "telemetry_push_url"]


@admin.register(Forecast)
class ForecastAdmin(ReadOnly):
    list_display = ["resource", "kind", "model", "issued_at", "start", "interval_minutes"]
    list_filter = ["kind", "model"]


@admin.register(Offer)
class OfferAdmin(ReadOnly):
    list_display = ["resource", "market_kind", "window_start", "version", "state", "deadline", "submitted_at"]
    list_filter = ["market_kind", "state"]


@admin.register(Award)
class AwardAdmin(ReadOnly):
    list_display = ["award_ref", "offer", "market_kind", "received_at", "event"]


@admin.register(TelemetrySample)
class TelemetrySampleAdmin(ReadOnly):
    list_display = ["resource", "at", "kw", "devices_reporting", "devices_expected", "quality"]
    list_filter = ["quality"]


@admin.register(TelemetryScan)
class TelemetryScanAdmin(ReadOnly):
    """Each scan of a market and what became of its push (a failed push's error is here)."""

    list_display = ["market", "at", "samples", "push_state", "push_attempts", "pushed_at", "push_error"]
    list_filter = ["market", "push_state"]


@admin.register(RefusedAward)
class RefusedAwardAdmin(ReadOnly):
    list_display = ["award_ref", "offer_ref", "market", "times_seen", "last_seen_at"]
    list_filter = ["market"]
