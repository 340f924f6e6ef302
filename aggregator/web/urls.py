"""The fronts' URLs: / leads to the console; /healthz for load balancers and the run command."""

from django.urls import include, path
from django.views.generic import RedirectView

from aggregator.web.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:fleet", permanent=False)),
    path("console/", include("aggregator.web.console.urls")),
    path("portal/", include("aggregator.web.portal.urls")),
    path("healthz", healthz, name="healthz"),
]
