from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from aggregator.aggregation.api.resource_views import AggregationProposalViewSet, VirtualResourceViewSet
from aggregator.aggregation.api.views import MarketViewSet, ProgramViewSet
from aggregator.reference.models import MeterKind
from aggregator.web.health import healthz
from dispatch.api import device_views as dispatch_device
from dispatch.api.inbound import InstructionView
from dispatch.api.views import DispatchEventViewSet, StormWatchViewSet
from enrollment.api import device_views
from enrollment.api import views as enrollment
from settlement.api.billing import SiteBillView
from settlement.api.runs import PeriodStatementView, SettlementRunViewSet
from settlement.api.views import DeviceReadingsView, OperatorReadingsView

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
router.register("dispatch-events", DispatchEventViewSet)
router.register("storm-watches", StormWatchViewSet)
router.register("settlement-runs", SettlementRunViewSet)

device_router = DefaultRouter()
device_router.include_root_view = False
device_router.register("devices", device_views.OwnDeviceViewSet, basename="device-self")

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:fleet", permanent=False)),
    path("console/", include("aggregator.web.console.urls")),
    path("portal/", include("aggregator.web.portal.urls")),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(router.urls)),
    path("api/device/v1/", include(device_router.urls)),
    path("api/device/v1/status", device_views.HeartbeatView.as_view(), name="device-status"),
    path("api/device/v1/readings", DeviceReadingsView.as_view(), name="device-readings"),
    path("api/device/v1/commands", dispatch_device.CommandsView.as_view(), name="device-commands"),
    path(
        "api/device/v1/commands/<uuid:command_id>/ack",
        dispatch_device.CommandAckView.as_view(),
        name="device-command-ack",
    ),
    path(
        "api/device/v1/commands/<uuid:command_id>/opt-out",
        dispatch_device.CommandOptOutView.as_view(),
        name="device-command-opt-out",
    ),
    path(
        "api/device/v1/commands/<uuid:command_id>/reports",
        dispatch_device.CommandReportView.as_view(),
        name="device-command-reports",
    ),
    path("api/device/v1/schedule", dispatch_device.ScheduleView.as_view(), name="device-schedule"),
    path("api/device/v1/opt-outs", dispatch_device.OptOutView.as_view(), name="device-opt-outs"),
    path("api/device/v1/push", dispatch_device.PushEndpointView.as_view(), name="device-push"),
    path("openadr3/3.0.1/", include("dispatch.openadr.urls")),
    path("api/inbound/v1/instructions", InstructionView.as_view(), name="inbound-instructions"),
    path("api/v1/sites/<int:pk>/bill/", SiteBillView.as_view(), name="site-bill"),
    path(
        "api/v1/sites/<int:pk>/readings/", OperatorReadingsView.as_view(meter_kind=MeterKind.SITE), name="site-readings"
    ),
    path(
        "api/v1/devices/<int:pk>/readings/",
        OperatorReadingsView.as_view(meter_kind=MeterKind.DEVICE),
        name="device-readings-operator",
    ),
    path("api/v1/settlement-statements/", PeriodStatementView.as_view(), name="settlement-statements"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]
