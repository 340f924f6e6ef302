"""What the market sends in (under /api/inbound/v1/, market tokens): awards."""

from django.urls import path

from aggregator.market.api.award_views import InboundAwardView

urlpatterns: list = [
    path("awards", InboundAwardView.as_view(), name="inbound-awards"),
]
