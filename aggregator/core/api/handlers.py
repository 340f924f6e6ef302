"""Django's error views for requests no API view answers (no URL matched): under /api/, the one error body.

A path such as /api/v1/devices/abc/ never reaches DRF, so its 404 would otherwise be Django's HTML page;
an API client must get the same machine-readable body as for any other refusal.
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from aggregator.core.api.errors import body

API_PREFIX = "/api/"


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse(body("not_found", "Not found.", 404, []), status=404)
    return defaults.page_not_found(request, exception)
