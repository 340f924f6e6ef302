"""Settlement's operator API (under /api/v1/): runs, statements, bills and meter readings."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from aggregator.reference.models import MeterKind
from settlement.api.billing import SiteBillView
from settlement.api.runs import PeriodStatementView, SettlementRunViewSet
from settlement.api.views import OperatorReadingsView

router = SimpleRouter()
router.register("settlement-runs", SettlementRunViewSet)

urlpatterns = [
    *router.urls,
    path("sites/<int:pk>/bill/", SiteBillView.as_view(), name="site-bill"),
    path("sites/<int:pk>/readings/", OperatorReadingsView.as_view(meter_kind=MeterKind.SITE), name="site-readings"),
    path(
        "devices/<int:pk>/readings/",
        OperatorReadingsView.as_view(meter_kind=MeterKind.DEVICE),
        name="device-readings-operator",
    ),
    path("settlement-statements/", PeriodStatementView.as_view(), name="settlement-statements"),
]
