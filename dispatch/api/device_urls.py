"""Dispatch's part of the device API (under /api/device/v1/): commands and replies, schedules, opt-outs, push."""

from django.urls import path

from dispatch.api import device_views as views

urlpatterns = [
    path("commands", views.CommandsView.as_view(), name="device-commands"),
    path("commands/<uuid:command_id>/ack", views.CommandAckView.as_view(), name="device-command-ack"),
    path("commands/<uuid:command_id>/opt-out", views.CommandOptOutView.as_view(), name="device-command-opt-out"),
    path("commands/<uuid:command_id>/reports", views.CommandReportView.as_view(), name="device-command-reports"),
    path("schedule", views.ScheduleView.as_view(), name="device-schedule"),
    path("opt-outs", views.OptOutView.as_view(), name="device-opt-outs"),
    path("push", views.PushEndpointView.as_view(), name="device-push"),
]
