"""Baseline vs actual as an inline SVG: no script, no external asset, readable in print and saved HTML."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

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


def baseline_vs_actual_rows(intervals: list[dict]) -> list[dict]:
    """`settlement.selectors.interval_totals` rows with where the target put the load (baseline - target)."""
    return [
        {
            **r,
            "target_load_kw": (r["baseline_kw"] - r["target_kw"])
            if r["baseline_kw"] is not None and r["target_kw"] is not None
            else None,
        }
        for r in intervals
    ]


def baseline_vs_actual(intervals: list[dict], *, zone: tzinfo, title: str) -> SafeString:
    """A step chart of the resource's summed baseline and actual kW per interval (and where the target put the load).

    `intervals` are `settlement.selectors.interval_totals` rows. The chart carries a text
    title and description for screen readers; the table under it on the page has the figures.
    """
    return step_chart(
        baseline_vs_actual_rows(intervals),
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


# --- charts on a time axis, and a price-quantity curve ------------------------------------------------------------

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class Steps:
    """A series drawn as steps: (start, end, value) pieces, None for a gap."""

    key: str
    label: str
    colour: str
    dash: str
    pieces: list[tuple[datetime, datetime, float | None]]


@dataclass(frozen=True)
class Band:
    """A shaded range per piece: (start, end, low, high); a piece with None is not drawn."""

    key: str
    label: str
    colour: str
    pieces: list[tuple[datetime, datetime, float | None, float | None]]


@dataclass(frozen=True)
class Marks:
    """Spans flagged along the foot of the plot (e.g. telemetry of poor quality)."""

    key: str
    label: str
    colour: str
    spans: list[Span]


def _floor_of(value: float) -> float:
    return 0.0 if value >= 0 else -_nice_ceiling(-value)


def _svg_head(chart_id: str, title: str, description: str, css: str) -> list[str]:
    return [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" class="{css}" id="{chart_id}">'
        ),
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]


def _y_axis(parts: list[str], *, low: float, high: float, unit: str, y: Callable[[float], float]) -> None:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d0d7de"/>')
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        value = low + (high - low) * fraction
        level = y(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{level:.1f}" y2="{level:.1f}" stroke="#eaeef2"/>'
            f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" font-size="11">{value:g}</text>'
        )
    if low < 0:
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#8c959f"/>')
    parts.append(
        f'<text x="14" y="{TOP + plot_h / 2:.0f}" font-size="11" transform="rotate(-90 14 {TOP + plot_h / 2:.0f})" '
        f'text-anchor="middle">{escape(unit)}</text>'
    )


def _legend(parts: list[str], n: int, label: str, colour: str, *, dash: str = "", swatch: bool = False) -> None:
    x = LEFT + n * 160
    if swatch:
        parts.append(f'<rect x="{x}" y="{HEIGHT - 16}" width="24" height="12" fill="{colour}" fill-opacity="0.3"/>')
    else:
        parts.append(
            f'<line x1="{x}" x2="{x + 24}" y1="{HEIGHT - 8}" y2="{HEIGHT - 8}" stroke="{colour}" stroke-width="2" '
            f'stroke-dasharray="{dash}"/>'
        )
    parts.append(f'<text x="{x + 30}" y="{HEIGHT - 4}" font-size="11">{escape(label)}</text>')


def time_chart(
    *,
    start: datetime,
    end: datetime,
    zone: tzinfo,
    title: str,
    description: str,
    steps: Sequence[Steps] = (),
    bands: Sequence[Band] = (),
    marks: Sequence[Marks] = (),
    unit: str = "kW",
    chart_id: str = "time-chart",
) -> SafeString:
    """Bands, steps and marks over [start, end) on a time axis in elapsed time (a 25-hour day is 25 hours wide),
    labelled in `zone`'s clock. Values may be negative (the axis then runs below 0)."""
    values = [v for s in steps for *_, v in s.pieces if v is not None]
    values += [v for b in bands for _, _, lo, hi in b.pieces for v in (lo, hi) if v is not None]
    if not values:
        return mark_safe("<p>Nothing to chart.</p>")
    high, low = _nice_ceiling(max(values)), _floor_of(min(values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    seconds = (end - start).total_seconds()

    def x(at: datetime) -> float:
        return LEFT + min(max((at - start).total_seconds() / seconds, 0.0), 1.0) * plot_w

    def y(value: float) -> float:
        return TOP + plot_h - (value - low) / (high - low) * plot_h

    local = start.astimezone(zone)
    parts = _svg_head(
        chart_id,
        title,
        f"{description}, {local:%Y-%m-%d %H:%M %Z} to {end.astimezone(zone):%Y-%m-%d %H:%M %Z}.",
        css="time-chart",
    )
    _y_axis(parts, low=low, high=high, unit=unit, y=y)
    hours = int(seconds // 3600)
    every = 3 if hours > 12 else 1
    for h in range(0, hours + 1, every):
        at = start + timedelta(hours=h)
        if at >= end and h:
            break
        parts.append(f'<text x="{x(at):.1f}" y="{TOP + plot_h + 16}" font-size="11">{at.astimezone(zone):%H:%M}</text>')
    parts.append(
        f'<text x="{LEFT + plot_w}" y="{TOP + plot_h + 32}" font-size="11" text-anchor="end">'
        f"{escape(getattr(zone, 'key', str(zone)))}</text>"
    )
    n = 0
    for band in bands:
        for p_start, p_end, lo, hi in band.pieces:
            if lo is None or hi is None:
                continue
            parts.append(
                f'<rect class="band-{band.key}" x="{x(p_start):.1f}" y="{y(hi):.1f}" width="{x(p_end) - x(p_start):.1f}" '
                f'height="{max(y(lo) - y(hi), 0.5):.1f}" fill="{band.colour}" fill-opacity="0.3"/>'
            )
        _legend(parts, n, band.label, band.colour, swatch=True)
        n += 1
    for series in steps:
        runs: list[list[str]] = [[]]
        for p_start, p_end, value in series.pieces:
            if value is None:
                runs.append([])
                continue
            runs[-1].append(f"{x(p_start):.1f},{y(value):.1f} {x(p_end):.1f},{y(value):.1f}")
        for run in runs:
            if run:
                parts.append(
                    f'<polyline class="series-{series.key}" fill="none" stroke="{series.colour}" stroke-width="2" '
                    f'stroke-dasharray="{series.dash}" points="{" ".join(run)}"/>'
                )
        _legend(parts, n, series.label, series.colour, dash=series.dash)
        n += 1
    for mark in marks:
        for m_start, m_end in mark.spans:
            parts.append(
                f'<rect class="mark-{mark.key}" x="{x(m_start):.1f}" y="{TOP + plot_h - 6}" '
                f'width="{max(x(m_end) - x(m_start), 1):.1f}" height="6" fill="{mark.colour}"/>'
            )
        if mark.spans:
            _legend(parts, n, mark.label, mark.colour, swatch=True)
            n += 1
    parts.append("</svg>")
    return mark_safe("".join(parts))


def curve_chart(
    segments: list[list[float]],
    *,
    title: str,
    description: str,
    marker: tuple[float, float] | None = None,
    chart_id: str = "curve-chart",
) -> SafeString:
    """An offer curve as steps: price ($/MWh) against cumulative kW, each segment a flat step at its price; `marker`
    (kW, price) draws dashed lines at an awarded quantity and its clearing price."""
    if not segments:
        return mark_safe("<p>No segments to chart.</p>")
    total = sum(kw for kw, _ in segments)
    prices = [price for _, price in segments] + ([marker[1]] if marker else [])
    right = _nice_ceiling(max(total, marker[0] if marker else 0))
    high, low = _nice_ceiling(max(prices)), _floor_of(min(prices))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(kw: float) -> float:
        return LEFT + kw / right * plot_w

    def y(price: float) -> float:
        return TOP + plot_h - (price - low) / (high - low) * plot_h

    parts = _svg_head(chart_id, title, description, css="curve-chart")
    _y_axis(parts, low=low, high=high, unit="$/MWh", y=y)
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<text x="{x(right * fraction):.1f}" y="{TOP + plot_h + 16}" font-size="11" text-anchor="middle">'
            f"{right * fraction:g}</text>"
        )
    parts.append(
        f'<text x="{LEFT + plot_w}" y="{TOP + plot_h + 32}" font-size="11" text-anchor="end">cumulative kW</text>'
    )
    points, at = [], 0.0
    for kw, price in segments:
        points.append(f"{x(at):.1f},{y(price):.1f} {x(at + kw):.1f},{y(price):.1f}")
        at += kw
    parts.append(
        f'<polyline class="series-curve" fill="none" stroke="#1f6feb" stroke-width="2" points="{" ".join(points)}"/>'
    )
    _legend(parts, 0, "Offered (price per cumulative kW)", "#1f6feb")
    if marker is not None:
        kw, price = marker
        parts.append(
            f'<line class="series-awarded" x1="{x(kw):.1f}" x2="{x(kw):.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
            f'stroke="#c2410c" stroke-width="2" stroke-dasharray="6 4"/>'
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(price):.1f}" y2="{y(price):.1f}" stroke="#c2410c" '
            f'stroke-dasharray="2 3"/>'
        )
        _legend(parts, 2, "Awarded kW at the clearing price", "#c2410c", dash="6 4")
    parts.append("</svg>")
    return mark_safe("".join(parts))
