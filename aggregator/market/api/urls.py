"""The market side's operator API (under /api/v1/market/)."""

from rest_framework.routers import SimpleRouter

from aggregator.market.api.forecast_views import ForecastViewSet

router = SimpleRouter()
router.register("forecasts", ForecastViewSet)

urlpatterns = router.urls
