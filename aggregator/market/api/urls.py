"""The market side's operator API (under /api/v1/market/)."""

from rest_framework.routers import SimpleRouter

from aggregator.market.api.offer_views import OfferViewSet

router = SimpleRouter(use_regex_path=False)  # path routes: the root lists them as market/<name>
router.register("offers", OfferViewSet, basename="offer")

urlpatterns = router.urls
