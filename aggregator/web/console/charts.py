"""Charts with hover values and zoom: the server-rendered SVG (aggregator.core.charts) stays as the page's figure
for readers without scripts, and charts.js draws the same series with uPlot (vendored) over it, in the market's
clock. Drag across the chart to zoom into a stretch of a long series; double-click to see all of it again."""

import orjson
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe


def interactive(svg: SafeString, rows: list[dict], series, *, zone, title: str, unit: str = "kW") -> SafeString:
    """The SVG inside a figure that carries its series as data for charts.js; series are (key, label, colour, dash)."""
    if not rows:
        return svg
    data = {
        "title": title,
        "unit": unit,
        "zone": zone.key,
        "t": [int(r["start"].timestamp()) for r in rows],
        "series": [
            {
                "label": label,
                "color": colour,
                "dash": [int(x) for x in dash.split()] if dash else [],
                "values": [None if r[key] is None else float(r[key]) for r in rows],
            }
            for key, label, colour, dash in series
        ],
    }
    return mark_safe(
        f'<figure class="chart" data-chart="{escape(orjson.dumps(data).decode())}">'
        f'<div class="chart-live" role="img" aria-label="{escape(title)}" hidden></div>{svg}</figure>'
    )
