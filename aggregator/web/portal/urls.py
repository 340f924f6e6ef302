from django.contrib.auth import views as auth
from django.urls import path

from aggregator.web.portal import views

app_name = "portal"
urlpatterns = [
    path(
        "login/",
        auth.LoginView.as_view(
            template_name="portal/login.html", redirect_authenticated_user=False, next_page="portal:home"
        ),
        name="login",
    ),
    path("logout/", auth.LogoutView.as_view(next_page="portal:login"), name="logout"),
    path("", views.home, name="home"),
    path("commands/<uuid:command_id>/opt-out/", views.opt_out, name="opt-out"),
    path("devices/<int:device_id>/reserve/", views.reserve, name="reserve"),
    path("devices/<int:device_id>/charging/", views.charging, name="charging"),
]
