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
from enrollment.models import SiteCell, SiteState
from enrollment.selectors import latest_fleet_count

# A site's state from its devices: all online, some, none (or never seen), or no devices at all.
STATES = dict(SiteState.State.choices)
# Zoomed out, sites are summed per grid cell, pricing node and state (the cell's size follows the zoom), so that
# a fleet of a million sites arrives as a few hundred points; from DETAIL_ZOOM on, each site is its own point.
DETAIL_ZOOM = 14
CACHE_SECONDS = 30  # the map may be this far behind the fleet's last count; the lists are not

# Sites' figures come from SiteState and, up to SiteCell.ZOOM, from its grid cells' sums (SiteCell), both refreshed
# by beat every minute with the fleet's count (enrollment.services.refresh_site_states): grouping a million devices
# per site on each request took seconds, and summing 750,000 sites per zoomed-out request most of a second.
_SITES = """
SELECT avg(s.latitude), avg(s.longitude), s.pricing_node, s.state, count(*), sum(s.devices)::int, sum(s.online)::int
FROM enrollment_sitestate s
WHERE {where}
GROUP BY {cell}, s.pricing_node, s.state
"""
_CELLS = """
SELECT sum(s.latitude_sum) / sum(s.sites), sum(s.longitude_sum) / sum(s.sites), s.pricing_node, s.state,
       sum(s.sites)::int, sum(s.devices)::int, sum(s.online)::int
FROM enrollment_sitecell s
WHERE {where}
GROUP BY s.row >> {shift}, s.col >> {shift}, s.pricing_node, s.state
"""


def _bbox(raw: str) -> tuple[float, float, float, float] | None:
    try:
        south, west, north, east = (float(v) for v in raw.split(","))
    except ValueError:
        return None
    return south, west, north, east


def site_points(*, market: str = "", node: str = "", state: str = "", zoom: int = 4, bbox=None) -> list[list]:
    """[latitude, longitude, pricing node, state, sites, devices, devices online] per point: a site, or (zoomed
    out) the sites of one grid cell, pricing node and state, at their mean position. Up to SiteCell.ZOOM a bounding
    box takes the cells it touches, so a point may lie just outside it."""
    cells = zoom <= SiteCell.ZOOM
    where, params = ["true"], []
    if market:
        where.append("s.market_id IN (SELECT id FROM aggregator_market WHERE upper(code) = upper(%s))")
        params.append(market)
    if node:
        where.append("s.pricing_node = %s")
        params.append(node)
    if state in STATES:
        where.append("s.state = %s")
        params.append(state)
    if bbox is not None and cells:
        size = SiteCell.SIZE
        where.append(
            "s.row BETWEEN floor(%s / %s) AND floor(%s / %s) AND s.col BETWEEN floor(%s / %s) AND floor(%s / %s)"
        )
        params += [bbox[0], size, bbox[2], size, bbox[1], size, bbox[3], size]
    elif bbox is not None:
        where.append("s.latitude BETWEEN %s AND %s AND s.longitude BETWEEN %s AND %s")
        params += [bbox[0], bbox[2], bbox[1], bbox[3]]
    if cells:
        sql = _CELLS.format(where=" AND ".join(where), shift=max(0, SiteCell.ZOOM - zoom))
    elif zoom >= DETAIL_ZOOM:
        sql = _SITES.format(where=" AND ".join(where), cell="s.site_id")
    else:
        size = 360.0 / 2 ** (zoom + 3)  # about a sixteenth of the screen's width
        sql = _SITES.format(
            where=" AND ".join(where), cell=f"floor(s.latitude / {size!r}), floor(s.longitude / {size!r})"
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")  # a city's 50,000 sites grouped in memory, not sorted on disk
        cursor.execute(sql, params)
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
            "counted": latest_fleet_count(),
            "section": "map",
        },
    )
