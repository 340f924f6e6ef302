"""The fleet map: every site with coordinates, by pricing node and state, clustered in the browser by
Leaflet.markercluster (vendored under static/vendor). The base layer's tile URL is a setting
(CONSOLE_MAP_TILE_URL); unset, the map has no base layer, so it works offline and sends nothing out."""

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpResponse
from django.shortcuts import render

from aggregator.reference.models import Market
from aggregator.web.console.access import operator_page

# A site's state from its devices: all online, some, none (or never seen), or no devices at all.
STATES = {
    "online": "All devices online",
    "partial": "Some devices online",
    "offline": "No device online",
    "empty": "No devices",
}
# Zoomed out, sites are summed per grid cell, pricing node and state (the cell's size follows the zoom), so that
# a fleet of 100,000 sites arrives as a few hundred points; from DETAIL_ZOOM on, each site is its own point.
DETAIL_ZOOM = 14
CACHE_SECONDS = 30  # the map may be this far behind the fleet; the lists are not

_POINTS = """
SELECT avg(la), avg(lo), node, state, count(*), sum(n)::int, sum(o)::int
FROM (
    SELECT s.id, s.latitude::float8 AS la, s.longitude::float8 AS lo, s.pricing_node AS node, count(d.id) AS n,
           count(d.id) FILTER (WHERE st.online) AS o,
           CASE WHEN count(d.id) = 0 THEN 'empty' WHEN count(d.id) FILTER (WHERE st.online) = count(d.id) THEN 'online'
                WHEN count(d.id) FILTER (WHERE st.online) > 0 THEN 'partial' ELSE 'offline' END AS state
    FROM enrollment_site s JOIN aggregator_market m ON m.id = s.market_id
    LEFT JOIN enrollment_device d ON d.site_id = s.id
    LEFT JOIN enrollment_devicestatus st ON st.device_id = d.id
    WHERE {where}
    GROUP BY s.id
) per_site
{state}
GROUP BY {cell}, node, state
"""


def _bbox(raw: str) -> tuple[float, float, float, float] | None:
    try:
        south, west, north, east = (float(v) for v in raw.split(","))
    except ValueError:
        return None
    return south, west, north, east


def site_points(*, market: str = "", node: str = "", state: str = "", zoom: int = 4, bbox=None) -> list[list]:
    """[latitude, longitude, pricing node, state, sites, devices, devices online] per point: a site, or (zoomed
    out) the sites of one grid cell, pricing node and state, at their mean position."""
    where, params = ["s.latitude IS NOT NULL", "s.longitude IS NOT NULL"], []
    if market:
        where.append("upper(m.code) = upper(%s)")
        params.append(market)
    if node:
        where.append("s.pricing_node = %s")
        params.append(node)
    if bbox is not None:
        where.append("s.latitude BETWEEN %s AND %s AND s.longitude BETWEEN %s AND %s")
        params += [bbox[0], bbox[2], bbox[1], bbox[3]]
    state_sql = ""
    if state in STATES:
        state_sql = "WHERE state = %s"
        params.append(state)
    if zoom >= DETAIL_ZOOM:
        cell = "id"
    else:
        size = 360.0 / 2 ** (zoom + 3)  # about a sixteenth of the screen's width
        cell = f"floor(la / {size!r}), floor(lo / {size!r})"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")  # the per-site grouping stays in memory for 100,000 sites
        cursor.execute(_POINTS.format(where=" AND ".join(where), state=state_sql, cell=cell), params)
        return [[round(la, 5), round(lo, 5), *rest] for la, lo, *rest in cursor.fetchall()]


@operator_page()
def fleet_map(request):
    query = {k: request.GET.get(k, "").strip() for k in ("market", "node", "state")}
    if request.GET.get("format") == "json":
        zoom = int(request.GET["zoom"]) if request.GET.get("zoom", "").isdigit() else 4
        bbox = _bbox(request.GET.get("bbox", ""))
        key = "console:map:" + orjson.dumps([query, min(zoom, DETAIL_ZOOM), bbox]).decode()
        body = cache.get(key)
        if body is None:
            with transaction.atomic():
                points = site_points(**query, zoom=zoom, bbox=bbox)
            body = orjson.dumps({"points": points, "detail": zoom >= DETAIL_ZOOM})
            cache.set(key, body, CACHE_SECONDS)
        return HttpResponse(body, content_type="application/json")
    return render(
        request,
        "console/map.html",
        {
            "query": query,
            "markets": Market.objects.order_by("code").values_list("code", flat=True),
            "states": STATES,
            "tile_url": settings.CONSOLE_MAP_TILE_URL,
            "attribution": settings.CONSOLE_MAP_ATTRIBUTION,
            "section": "map",
        },
    )
