"""Line charts of a run's metrics over steps, as inline SVG drawn on the server (no JavaScript, no CDN).

`line_chart` maps each series' (step, value) points into a fixed viewBox: a polyline per series (plus a dot
per point when there are few, as for evaluations), a dashed reference line where one helps (accuracy 0.5,
margin 0), min/max ticks on both axes and a legend. Every text is escaped.
"""

import math
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 520, 230
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 34
DOTS_UP_TO = 40  # draw a dot on each point of a series with at most this many points
COLOURS = {"train": "#2f5bea", "eval": "#d97706"}  # the app's accent; an orange that reads apart from it
TEXT = 'font-size="11" fill="#667085" font-family="system-ui, sans-serif"'


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]
    split: str  # "train" or "eval": picks the colour


def _ticks(low: float, high: float) -> list[float]:
    if high == low:
        return [low]
    return [low + (high - low) * i / 4 for i in range(5)]


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.1e}"
    return f"{value:.3g}"


def line_chart(title: str, series: list[Series], *, reference: float | None = None) -> SafeString:
    """An SVG chart of `series` (steps on x), or a short note when there is nothing to draw yet."""
    series = [Series(s.name, [(x, y) for x, y in s.points if math.isfinite(y)], s.split) for s in series]
    series = [s for s in series if s.points]
    if not series:
        return mark_safe(f'<p class="muted">{escape(title)}: no data yet.</p>')  # noqa: S308 (escaped)
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + ([reference] if reference is not None else [])
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = min(ys), max(ys)
    if y_high == y_low:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    pad = (y_high - y_low) * 0.05
    y_low, y_high = y_low - pad, y_high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (plot_w * (x - x_low) / (x_high - x_low) if x_high > x_low else plot_w / 2)

    def sy(y: float) -> float:
        return TOP + plot_h * (1 - (y - y_low) / (y_high - y_low))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" style="max-width:{WIDTH}px" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="600" fill="#1d2430" font-family="system-ui, sans-serif">'
        f"{escape(title)}</text>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#dde1e7"/>',
    ]
    for tick in _ticks(y_low + pad, y_high - pad):
        y = sy(tick)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f3"/>')
        parts.append(f'<text {TEXT} x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    for tick in sorted({x_low, x_high}):
        parts.append(
            f'<text {TEXT} x="{sx(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{_label(tick)}</text>'
        )
    parts.append(f'<text {TEXT} x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle">step</text>')
    if reference is not None:
        y = sy(reference)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#98a2b3" stroke-dasharray="4 3"/>'
        )
    for i, s in enumerate(series):
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(s.points))
        colour = COLOURS.get(s.split, "#1d2430")
        if len(s.points) > 1:
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        if len(s.points) <= DOTS_UP_TO:
            for x, y in s.points:
                parts.append(
                    f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}">'
                    f"<title>{escape(s.name)} at step {_label(x)}: {y:.4g}</title></circle>"
                )
        legend_x = LEFT + plot_w - 150 + 80 * i
        parts.append(f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text {TEXT} x="{legend_x + 14}" y="17">{escape(s.name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every text above is escaped)
