"""The aggregator app's operator API (under /api/v1/): markets, programs, virtual resources, proposals."""

from rest_framework.routers import SimpleRouter

from aggregator.aggregation.api.resource_views import AggregationProposalViewSet, VirtualResourceViewSet
from aggregator.aggregation.api.views import MarketViewSet, ProgramViewSet

router = SimpleRouter()
router.register("markets", MarketViewSet)
router.register("programs", ProgramViewSet)
router.register("virtual-resources", VirtualResourceViewSet)
router.register("aggregation-proposals", AggregationProposalViewSet)

urlpatterns = router.urls
