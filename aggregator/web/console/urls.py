from django.contrib.auth import views as auth
from django.urls import path

from aggregator.web.console import fleet_map, history, imports, lists, market, performance, settling, views

app_name = "console"
urlpatterns = [
    path(
        "login/",
        auth.LoginView.as_view(template_name="console/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("", views.fleet, name="fleet"),
    path("resources/", views.resources, name="resources"),
    path("resources/<int:pk>/", views.resource, name="resource"),
    path("events/", views.events, name="events"),
    path("events/<int:pk>/", views.event, name="event"),
    path("settlement/", views.settlement, name="settlement"),
    path("settlement/statements/", views.period, name="period"),
    path("settlement/runs/<int:pk>/", views.statement, name="statement"),
    path("market/", market.market, name="market"),
    path("storm-watches/", views.storm_watches, name="storm-watches"),
    path("health/", views.health, name="health"),
    path("events/<int:pk>/performance/", performance.event_performance, name="event-performance"),
    path("events/<int:pk>/settle/", settling.settle, name="settle"),
    path("events/<int:pk>/settle/<slug:token>/", settling.settle_progress, name="settle-progress"),
    path("season/", performance.season, name="season"),
    path("map/", fleet_map.fleet_map, name="map"),
    path("fleet-imports/", imports.fleet_imports, name="fleet-imports"),
    path("fleet-imports/<int:pk>/", imports.fleet_import_page, name="fleet-import"),
    path("lists/<slug:name>/", lists.object_list, name="list"),
    path("history/<str:model>/<int:pk>/", history.object_history, name="history"),
]
