"""The market side's operator API (under /api/v1/market/)."""

from rest_framework.routers import SimpleRouter

router = SimpleRouter()

urlpatterns = router.urls
