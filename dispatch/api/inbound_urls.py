"""The market and utility side's API (under /api/inbound/v1/): dispatch instructions."""

from django.urls import path

from dispatch.api.inbound import InstructionView

urlpatterns = [
    path("instructions", InstructionView.as_view(), name="inbound-instructions"),
]
