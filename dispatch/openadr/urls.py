"""The VTN at /openadr3/3.0.1/ (the specification's base path), without trailing slashes as its clients call it."""

from django.urls import path, re_path

from dispatch.openadr import auth, views

app_name = "openadr"

urlpatterns = [
    path("auth/token", auth.token, name="token"),
    path("auth/server", auth.discovery, name="discovery"),
    path("programs", views.ProgramsView.as_view(), name="programs"),
    path("programs/<str:object_id>", views.ProgramView.as_view(), name="program"),
    path("events", views.EventsView.as_view(), name="events"),
    path("events/<str:object_id>", views.EventView.as_view(), name="event"),
    path("reports", views.ReportsView.as_view(), name="reports"),
    path("reports/<str:object_id>", views.ReportView.as_view(), name="report"),
    path("subscriptions", views.SubscriptionsView.as_view(), name="subscriptions"),
    path("subscriptions/<str:object_id>", views.SubscriptionView.as_view(), name="subscription"),
    path("vens", views.VensView.as_view(), name="vens"),
    path("vens/<str:object_id>", views.VenView.as_view(), name="ven"),
    path("vens/<str:ven_id>/resources", views.ResourcesView.as_view(), name="resources"),
    path("vens/<str:ven_id>/resources/<str:object_id>", views.ResourceView.as_view(), name="resource"),
    re_path(r"^.*$", views.not_found),  # last: any other path under the base path
]
