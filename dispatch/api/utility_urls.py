"""The distribution utility's API (under /api/utility/v1/): overrides of dispatch in its areas."""

from rest_framework.routers import SimpleRouter

from dispatch.api.utility import UtilityOverrideViewSet

router = SimpleRouter()
router.register("overrides", UtilityOverrideViewSet, basename="utility-override")

urlpatterns = router.urls
