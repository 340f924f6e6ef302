"""Settlement's part of the device API (under /api/device/v1/): interval readings in and out."""

from django.urls import path

from settlement.api.views import DeviceReadingsView

urlpatterns = [
    path("readings", DeviceReadingsView.as_view(), name="device-readings"),
]
