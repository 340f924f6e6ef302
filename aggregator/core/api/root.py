"""The operator API's root (GET /api/v1/): a link to every collection that the apps' routers registered.

Each app owns its router; the root is built from the URL resolver at request time, so it lists
whatever the apps include without this module knowing them.
"""

from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView


def _collections(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _collections(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and pattern.name and pattern.name.endswith("-list"):
            route = prefix + str(pattern.pattern)
            if route.startswith("api/v1/"):
                # a router included under a prefix (api/v1/market/) leaves its anchors inside the route
                yield route.removeprefix("api/v1/").replace("^", "").replace("$", "").strip("/"), pattern.name


class APIRootView(APIView):
    """Every collection of the operator API."""

    @extend_schema(exclude=True)  # a directory of links, not part of the API it lists
    def get(self, request, format=None):
        found = dict(sorted(_collections(get_resolver().url_patterns)))
        return Response({prefix: reverse(name, request=request, format=format) for prefix, name in found.items()})
