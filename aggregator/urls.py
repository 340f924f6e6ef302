"""The project's URLs: each app owns its own (its api/urls.py and friends); this module only includes them."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("aggregator.web.urls")),
    path("admin/", admin.site.urls),
    # The operator API: session or operator token, roles admin / operator / analyst.
    path("api/v1/", include("aggregator.aggregation.api.urls")),
    path("api/v1/", include("enrollment.api.urls")),
    path("api/v1/", include("dispatch.api.urls")),
    path("api/v1/", include("settlement.api.urls")),
    path("api/v1/market/", include("aggregator.market.api.urls")),
    path("api/v1/", include("aggregator.core.api.root_urls")),
    # The device API: device or gateway token, each sees only its own devices.
    path("api/device/v1/", include("enrollment.api.device_urls")),
    path("api/device/v1/", include("dispatch.api.device_urls")),
    path("api/device/v1/", include("settlement.api.device_urls")),
    # The market and utility side: market tokens, and the OpenADR 3 VTN.
    path("api/inbound/v1/", include("dispatch.api.inbound_urls")),
    path("api/inbound/v1/", include("aggregator.market.api.inbound_urls")),
    path("api/outbound/v1/", include("aggregator.market.api.outbound_urls")),
    # The distribution utility's side: utility tokens, its overrides of dispatch in its areas.
    path("api/utility/v1/", include("dispatch.api.utility_urls")),
    path("openadr3/3.0.1/", include("dispatch.openadr.urls")),
    path("openadr3/3.1.0/", include("dispatch.openadr.urls_310")),
    path("api/", include("aggregator.core.api.urls")),
]

# A path under /api/ that matches no URL answers the API's error body, not an HTML page.
handler404 = "aggregator.core.api.handlers.not_found"
