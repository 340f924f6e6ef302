"""What the market reads from the platform (under /api/outbound/v1/, market tokens): real-time telemetry."""

from django.urls import path

from aggregator.market.api import telemetry_views

urlpatterns: list = [
    path("telemetry", telemetry_views.OutboundTelemetryView.as_view(), name="outbound-telemetry"),
]
