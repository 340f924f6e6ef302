from django.urls import path

from aggregator.console import views

app_name = "console"
urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("resources/", views.resources, name="resources"),
    path("resources/<int:pk>/", views.resource, name="resource"),
    path("events/", views.events, name="events"),
    path("events/<int:pk>/", views.event, name="event"),
    path("settlement/", views.settlement, name="settlement"),
    path("health/", views.health, name="health"),
]
