"""The operator API's root, included at /api/v1/ after the apps' own URLs."""

from django.urls import path

from aggregator.core.api.root import APIRootView

urlpatterns = [
    path("", APIRootView.as_view(), name="api-root"),
]
