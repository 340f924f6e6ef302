"""The VTN at /openadr3/<version>/ (the specification's base paths), without trailing slashes as its clients call it.

`patterns(version)` is each version's URLs over the same views: 3.0.1 here, 3.1 in urls_310.
"""

from django.urls import path, re_path

from dispatch.openadr import auth, views
from dispatch.openadr.models import V301

app_name = "openadr"


def patterns(version: str) -> list:
    def view(cls):
        return cls.as_view(version=version)

    resources = (
        [
            path("vens/<str:ven_id>/resources", view(views.ResourcesView), name="resources"),
            path("vens/<str:ven_id>/resources/<str:object_id>", view(views.ResourceView), name="resource"),
        ]
        if version == V301
        else [
            path("resources", view(views.TopResourcesView), name="resources"),
            path("resources/<str:object_id>", view(views.TopResourceView), name="resource"),
            path("notifiers", view(views.NotifiersView), name="notifiers"),
        ]
    )
    return [
        path("auth/token", auth.token, {"version": version}, name="token"),
        path("auth/server", auth.discovery, {"version": version}, name="discovery"),
        path("programs", view(views.ProgramsView), name="programs"),
        path("programs/<str:object_id>", view(views.ProgramView), name="program"),
        path("events", view(views.EventsView), name="events"),
        path("events/<str:object_id>", view(views.EventView), name="event"),
        path("reports", view(views.ReportsView), name="reports"),
        path("reports/<str:object_id>", view(views.ReportView), name="report"),
        path("subscriptions", view(views.SubscriptionsView), name="subscriptions"),
        path("subscriptions/<str:object_id>", view(views.SubscriptionView), name="subscription"),
        path("vens", view(views.VensView), name="vens"),
        path("vens/<str:object_id>", view(views.VenView), name="ven"),
        *resources,
        re_path(r"^.*$", views.not_found),  # last: any other path under the base path
    ]


urlpatterns = patterns(V301)
