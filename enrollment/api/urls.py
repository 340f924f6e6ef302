"""Enrollment's operator API (under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from enrollment.api import views

router = SimpleRouter()
router.register("customers", views.CustomerViewSet)
router.register("consents", views.ConsentViewSet)
router.register("sites", views.SiteViewSet)
router.register("retail-programs", views.RetailProgramParticipationViewSet)
router.register("gateways", views.GatewayViewSet)
router.register("devices", views.DeviceViewSet)
router.register("credentials", views.CredentialViewSet)
router.register("enrollments", views.EnrollmentViewSet)
router.register("fleet-imports", views.FleetImportViewSet, basename="fleet-import")

urlpatterns = router.urls
