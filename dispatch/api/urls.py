"""Dispatch's operator API (under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from dispatch.api.views import DispatchEventViewSet, StormWatchViewSet

router = SimpleRouter()
router.register("dispatch-events", DispatchEventViewSet)
router.register("storm-watches", StormWatchViewSet)

urlpatterns = router.urls
