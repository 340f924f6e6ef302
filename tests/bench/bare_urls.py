"""The platform's URLs and Django's bare view: a static string through the same middleware, on the same server."""

from django.http import HttpResponse
from django.urls import path

from aggregator.urls import urlpatterns as platform


def bare(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("bench/bare/", bare), *platform]
