"""Baseline vs actual as an inline SVG: no script, no external asset, readable in print and saved HTML."""

from datetime import tzinfo

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 48
SERIES = [
    ("baseline_kw", "Baseline", "#1f6feb", "6 4"),
    ("actual_kw", "Actual", "#c2410c", ""),
    ("target_load_kw", "Baseline − target", "#6b7280", "2 3"),
]


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** (len(str(int(value))) - 1)
    return float(((int(value) // step) + 1) * step)


def baseline_vs_actual(intervals: list[dict], *, zone: tzinfo, title: str) -> SafeString:
    """A step chart of the resource's summed baseline and actual kW per interval (and where the target put the load).

    `intervals` are `settlement.selectors.interval_totals` rows. The chart carries a text
    title and description for screen readers; the table under it on the page has the figures.
    """
    rows = [
        {
            **r,
            "target_load_kw": (r["baseline_kw"] - r["target_kw"])
            if r["baseline_kw"] is not None and r["target_kw"] is not None
            else None,
        }
        for r in intervals
    ]
    return step_chart(
        rows,
        SERIES,
        zone=zone,
        title=title,
        description="Summed baseline and actual kW of the measured meters per interval",
    )


def step_chart(
    rows: list[dict],
    series: list[tuple[str, str, str, str]],
    *,
    zone: tzinfo,
    title: str,
    description: str,
    unit: str = "kW",
) -> SafeString:
    """Rows with a "start" and a value per series key, drawn as steps; series are (key, label, colour, dash)."""
    if not rows:
        return mark_safe("<p>No intervals to show.</p>")
    top = _nice_ceiling(max((r[key] or 0) for r in rows for key, *_ in series))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(rows)

    def y(value: float) -> float:
        return TOP + plot_h - max(value, 0) / top * plot_h

    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img" aria-labelledby="chart-title chart-desc" class="step-chart">'
        ),
        f'<title id="chart-title">{escape(title)}</title>',
        (
            f'<desc id="chart-desc">{escape(description)}, from {rows[0]["start"].astimezone(zone):%Y-%m-%d %H:%M %Z}, '
            f"{len(rows)} intervals.</desc>"
        ),
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d0d7de"/>',
    ]
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        value, level = top * fraction, y(top * fraction)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{level:.1f}" y2="{level:.1f}" stroke="#eaeef2"/>'
            f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" font-size="11">{value:g}</text>'
        )
    parts.append(
        f'<text x="14" y="{TOP + plot_h / 2:.0f}" font-size="11" transform="rotate(-90 14 {TOP + plot_h / 2:.0f})" '
        f'text-anchor="middle">{escape(unit)}</text>'
    )
    label_every = max(1, len(rows) // 8)
    for i, row in enumerate(rows):
        if i % label_every == 0:
            parts.append(
                f'<text x="{LEFT + i * step:.1f}" y="{TOP + plot_h + 16}" font-size="11">'
                f"{row['start'].astimezone(zone):%H:%M}</text>"
            )
    parts.append(
        f'<text x="{LEFT + plot_w}" y="{TOP + plot_h + 32}" font-size="11" text-anchor="end">'
        f"{escape(getattr(zone, 'key', str(zone)))}</text>"
    )
    for n, (key, label, colour, dash) in enumerate(series):
        points = []
        for i, row in enumerate(rows):
            if row[key] is None:
                continue
            points.append(f"{LEFT + i * step:.1f},{y(row[key]):.1f} {LEFT + (i + 1) * step:.1f},{y(row[key]):.1f}")
        if points:
            parts.append(
                f'<polyline class="series-{key}" fill="none" stroke="{colour}" stroke-width="2" '
                f'stroke-dasharray="{dash}" points="{" ".join(points)}"/>'
            )
        legend_x = LEFT + n * 170
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 24}" y1="{HEIGHT - 8}" y2="{HEIGHT - 8}" stroke="{colour}" '
            f'stroke-width="2" stroke-dasharray="{dash}"/><text x="{legend_x + 30}" y="{HEIGHT - 4}" '
            f'font-size="11">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bar_chart(*, labels: list[str], series: list[tuple[str, str, list[float]]], unit: str, title: str) -> SafeString:
    """Grouped bars per label (e.g. a month), one bar per series (label, colour, values); negative values sit at 0."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_ceiling(max([v for _, _, values in series for v in values] + [0]))
    group = plot_w / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img" aria-labelledby="bars-title bars-desc" class="bar-chart">'
        ),
        f'<title id="bars-title">{escape(title)}</title>',
        (
            f'<desc id="bars-desc">{escape(", ".join(name for name, _, _ in series))} in {escape(unit)} for '
            f"{escape(labels[0] if labels else '')} to {escape(labels[-1] if labels else '')}; the table below has the figures.</desc>"
        ),
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d0d7de"/>',
    ]
    for fraction in (0, 0.5, 1):
        level = TOP + plot_h - fraction * plot_h
        parts.append(
            f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" font-size="11">{top * fraction:g}</text>'
        )
    for i, label in enumerate(labels):
        parts.append(
            f'<text x="{LEFT + i * group + group / 2:.1f}" y="{TOP + plot_h + 16}" font-size="10" '
            f'text-anchor="middle">{escape(label[2:])}</text>'
        )
        for n, (_, colour, values) in enumerate(series):
            height = max(values[i], 0) / top * plot_h
            parts.append(
                f'<rect x="{LEFT + i * group + group * 0.1 + n * bar:.1f}" y="{TOP + plot_h - height:.1f}" '
                f'width="{bar:.1f}" height="{height:.1f}" fill="{colour}"/>'
            )
    for n, (name, colour, _) in enumerate(series):
        parts.append(
            f'<rect x="{LEFT + n * 200}" y="{HEIGHT - 16}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{LEFT + n * 200 + 18}" y="{HEIGHT - 6}" font-size="11">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
