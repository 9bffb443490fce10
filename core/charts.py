"""Small server-side SVG charts (no JavaScript, no CDN): lines over a numeric x, and bars with 95% intervals.

`line_chart` maps each series' (x, y) points into a fixed viewBox: a polyline per series (plus a dot per
point when there are few, each with a tooltip), a dashed reference line where one helps (accuracy 0.5,
margin 0), ticks on both axes and a legend. `bar_chart` draws horizontal bars on a 0..1 scale with
interval whiskers. Every text is escaped; a line chart with nothing to draw is a short note instead.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

ACCENT = "#2f5bea"  # the app's blue
INK = "#1d2430"
MUTED = "#667085"
TEXT = f'font-size="11" fill="{MUTED}"'


def _svg(title: str, width: int, height: int, parts: list[str]) -> SafeString:
    """The chart's elements in an <svg> that names itself to screen readers; app.css scales it down to its
    container (no style attribute: the Content-Security-Policy forbids inline styles)."""
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" font-size="12" '
        'font-family="system-ui, sans-serif">'
    )
    return mark_safe(head + "".join(parts) + "</svg>")  # noqa: S308 - every text in parts is escaped by its maker


# ---------------------------------------------------------------------------------------------------------
# Lines

LINE_WIDTH, LINE_HEIGHT = 520, 230
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 34
DOTS_UP_TO = 40  # draw a dot on each point of a series with at most this many points


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]  # (x, y)
    colour: str = ACCENT


def number_label(value: float) -> str:
    """A tick or tooltip number: 0, three significant digits, or scientific notation when very large or small."""
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.1e}"
    return f"{value:.3g}"


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    reference: float | None = None,
    x_name: str = "",
    x_label: Callable[[float], str] = number_label,
    y_range: tuple[float, float] | None = None,
) -> SafeString:
    """An SVG chart of `series`, or a short note when there is nothing to draw yet.

    `x_name` ("step") is written under the x axis and in each point's tooltip ("validation at step 3: 0.675");
    `x_label` writes an x value (a number by default; a date from its ordinal, say). The y axis spans the
    data and the reference line, or `y_range` when given (0..1 for a rate), with a 5% margin.
    """
    series = [Series(s.name, [(x, y) for x, y in s.points if math.isfinite(y)], s.colour) for s in series]
    series = [s for s in series if s.points]
    if not series:
        return mark_safe(f'<p class="muted">{escape(title)}: no data yet.</p>')  # noqa: S308 (escaped)
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + ([reference] if reference is not None else [])
    x_low, x_high = min(xs), max(xs)
    low, high = y_range or (min(ys), max(ys))
    if high == low:
        low, high = low - 0.5, high + 0.5
    pad = (high - low) * 0.05
    y_low, y_high = low - pad, high + pad
    plot_w, plot_h = LINE_WIDTH - LEFT - RIGHT, LINE_HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (plot_w * (x - x_low) / (x_high - x_low) if x_high > x_low else plot_w / 2)

    def sy(y: float) -> float:
        return TOP + plot_h * (1 - (y - y_low) / (y_high - y_low))

    parts = [
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="600" fill="{INK}">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#dde1e7"/>',
    ]
    for tick in (low + (high - low) * i / 4 for i in range(5)):
        y = sy(tick)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f3"/>')
        parts.append(f'<text {TEXT} x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{number_label(tick)}</text>')
    for tick in sorted({x_low, x_high}):
        anchor = "end" if x_low < tick == x_high else "middle"  # the last label ends at the plot's edge
        parts.append(
            f'<text {TEXT} x="{sx(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="{anchor}">'
            f"{escape(x_label(tick))}</text>"
        )
    if x_name:
        parts.append(
            f'<text {TEXT} x="{LEFT + plot_w / 2}" y="{LINE_HEIGHT - 4}" text-anchor="middle">{escape(x_name)}</text>'
        )
    if reference is not None:
        y = sy(reference)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#98a2b3" stroke-dasharray="4 3"/>'
        )
    at = f"{x_name} " if x_name else ""
    for i, s in enumerate(series):
        colour = escape(s.colour)
        if len(s.points) > 1:
            points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(s.points))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        if len(s.points) <= DOTS_UP_TO:
            for x, y in s.points:
                parts.append(
                    f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}">'
                    f"<title>{escape(s.name)} at {escape(at + x_label(x))}: {y:.4g}</title></circle>"
                )
        legend_x = LEFT + plot_w - 150 + 80 * i
        parts.append(f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text {TEXT} x="{legend_x + 14}" y="17">{escape(s.name)}</text>')
    return _svg(title, LINE_WIDTH, LINE_HEIGHT, parts)


# ---------------------------------------------------------------------------------------------------------
# Bars

BAR_WIDTH, ROW, PAD_LEFT, PAD_RIGHT = 640, 26, 150, 60


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    note: str = ""


def bar_chart(bars: Sequence[Bar], *, reference: float | None = None, title: str = "") -> SafeString:
    """Horizontal bars on a 0..1 scale, with interval whiskers and an optional reference line."""
    height = ROW * len(bars) + 30
    span = BAR_WIDTH - PAD_LEFT - PAD_RIGHT

    def x(value: float) -> float:
        return PAD_LEFT + span * max(0.0, min(1.0, value))

    parts = []
    for i, bar in enumerate(bars):
        y = 10 + i * ROW
        parts.append(f'<text x="{PAD_LEFT - 8}" y="{y + 13}" text-anchor="end">{escape(bar.label[:22])}</text>')
        if bar.value is None:
            parts.append(f'<text x="{PAD_LEFT}" y="{y + 13}" fill="{MUTED}">no data</text>')
            continue
        parts.append(
            f'<rect x="{PAD_LEFT}" y="{y + 3}" width="{x(bar.value) - PAD_LEFT:.1f}" height="14" fill="{ACCENT}" '
            f'opacity="0.8"><title>{escape(bar.label)}: {bar.value:.1%} {escape(bar.note)}</title></rect>'
        )
        if bar.low is not None and bar.high is not None:
            parts.append(
                f'<line x1="{x(bar.low):.1f}" x2="{x(bar.high):.1f}" y1="{y + 10}" y2="{y + 10}" stroke="#111827" '
                f'stroke-width="1.5"/>'
            )
        parts.append(f'<text x="{BAR_WIDTH - PAD_RIGHT + 6}" y="{y + 13}">{bar.value:.0%}</text>')
    axis_y = 10 + len(bars) * ROW
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<text x="{x(tick):.1f}" y="{axis_y + 14}" text-anchor="middle" fill="{MUTED}">{tick:.0%}</text>')
    if reference is not None:
        parts.append(
            f'<line x1="{x(reference):.1f}" x2="{x(reference):.1f}" y1="6" y2="{axis_y}" stroke="#b42318" '
            f'stroke-dasharray="4 3"/>'
        )
    return _svg(title, BAR_WIDTH, height, parts)
