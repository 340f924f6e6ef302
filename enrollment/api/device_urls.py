"""Enrollment's part of the device API (under /api/device/v1/): the caller's own devices and its heartbeat."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from enrollment.api import device_views

router = SimpleRouter()
router.register("devices", device_views.OwnDeviceViewSet, basename="device-self")

urlpatterns = [
    *router.urls,
    path("status", device_views.HeartbeatView.as_view(), name="device-status"),
]
