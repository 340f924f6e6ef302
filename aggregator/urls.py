from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from aggregator.api.resource_views import AggregationProposalViewSet, VirtualResourceViewSet
from aggregator.api.views import MarketViewSet, ProgramViewSet
from aggregator.health import healthz
from enrollment.api import device_views
from enrollment.api import views as enrollment
from settlement.api.views import DeviceReadingsView, OperatorReadingsView
from settlement.models import MeterKind

router = DefaultRouter()
router.register("markets", MarketViewSet)
router.register("programs", ProgramViewSet)
router.register("customers", enrollment.CustomerViewSet)
router.register("consents", enrollment.ConsentViewSet)
router.register("sites", enrollment.SiteViewSet)
router.register("retail-programs", enrollment.RetailProgramParticipationViewSet)
router.register("gateways", enrollment.GatewayViewSet)
router.register("devices", enrollment.DeviceViewSet)
router.register("credentials", enrollment.CredentialViewSet)
router.register("enrollments", enrollment.EnrollmentViewSet)
router.register("virtual-resources", VirtualResourceViewSet)
router.register("aggregation-proposals", AggregationProposalViewSet)
router.register("fleet-imports", enrollment.FleetImportViewSet, basename="fleet-import")

device_router = DefaultRouter()
device_router.include_root_view = False
device_router.register("devices", device_views.OwnDeviceViewSet, basename="device-self")

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(router.urls)),
    path("api/device/v1/", include(device_router.urls)),
    path("api/device/v1/status", device_views.HeartbeatView.as_view(), name="device-status"),
    path("api/device/v1/readings", DeviceReadingsView.as_view(), name="device-readings"),
    path("api/v1/sites/<int:pk>/readings/", OperatorReadingsView.as_view(meter_kind=MeterKind.SITE), name="site-readings"),
    path("api/v1/devices/<int:pk>/readings/", OperatorReadingsView.as_view(meter_kind=MeterKind.DEVICE), name="device-readings-operator"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]
