"""The market side's operator API (under /api/v1/market/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from aggregator.market.api import telemetry_views
from aggregator.market.api.award_views import AwardViewSet, RefusedAwardViewSet
from aggregator.market.api.forecast_views import ForecastViewSet
from aggregator.market.api.offer_views import OfferViewSet

router = SimpleRouter(use_regex_path=False)  # path routes: the root lists them as market/<name>
router.register("forecasts", ForecastViewSet)
router.register("offers", OfferViewSet, basename="offer")
router.register("awards", AwardViewSet, basename="market-award")
router.register("refused-awards", RefusedAwardViewSet, basename="market-refused-award")

urlpatterns = router.urls
urlpatterns += [
    path("telemetry", telemetry_views.OperatorTelemetryView.as_view(), name="market-telemetry"),
]
