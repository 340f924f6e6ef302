"""The fleet map: every site with coordinates, by pricing node and state, clustered in the browser by
Leaflet.markercluster (vendored under static/vendor). The base layer's tile URL is a setting
(CONSOLE_MAP_TILE_URL); unset, the map has no base layer, so it works offline and sends nothing out."""

import orjson
from django.conf import settings
from django.db import connection
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
STATE_SQL = """CASE WHEN count(d.id) = 0 THEN 'empty' WHEN count(d.id) FILTER (WHERE st.online) = count(d.id) THEN 'online'
                    WHEN count(d.id) FILTER (WHERE st.online) > 0 THEN 'partial' ELSE 'offline' END"""


def site_points(*, market: str = "", node: str = "", state: str = "") -> list[list]:
    """[latitude, longitude, market, pricing node, devices, online, state] per site with coordinates."""
    where, params = ["s.latitude IS NOT NULL", "s.longitude IS NOT NULL"], []
    if market:
        where.append("upper(m.code) = upper(%s)")
        params.append(market)
    if node:
        where.append("s.pricing_node = %s")
        params.append(node)
    having = ""
    if state in STATES:
        having = f"HAVING {STATE_SQL} = %s"
        params.append(state)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT s.latitude::float8, s.longitude::float8, m.code, s.pricing_node, count(d.id),
                   count(d.id) FILTER (WHERE st.online), {STATE_SQL}
            FROM enrollment_site s JOIN aggregator_market m ON m.id = s.market_id
            LEFT JOIN enrollment_device d ON d.site_id = s.id
            LEFT JOIN enrollment_devicestatus st ON st.device_id = d.id
            WHERE {" AND ".join(where)}
            GROUP BY s.id, m.code {having}""",
            params,
        )
        return [list(row) for row in cursor.fetchall()]


@operator_page()
def fleet_map(request):
    query = {k: request.GET.get(k, "").strip() for k in ("market", "node", "state")}
    if request.GET.get("format") == "json":
        return HttpResponse(orjson.dumps({"sites": site_points(**query)}), content_type="application/json")
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
