"""Small server-side SVG charts (no JavaScript, no CDN): bars with 95% intervals, and a line over time."""

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, ROW, PAD_LEFT, PAD_RIGHT = 640, 26, 150, 60


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
    span = WIDTH - PAD_LEFT - PAD_RIGHT

    def x(value: float) -> float:
        return PAD_LEFT + span * max(0.0, min(1.0, value))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="system-ui, sans-serif">'
    ]
    for i, bar in enumerate(bars):
        y = 10 + i * ROW
        parts.append(f'<text x="{PAD_LEFT - 8}" y="{y + 13}" text-anchor="end">{escape(bar.label[:22])}</text>')
        if bar.value is None:
            parts.append(f'<text x="{PAD_LEFT}" y="{y + 13}" fill="#667085">no data</text>')
            continue
        parts.append(
            f'<rect x="{PAD_LEFT}" y="{y + 3}" width="{x(bar.value) - PAD_LEFT:.1f}" height="14" fill="#2f5bea" '
            f'opacity="0.8"><title>{escape(bar.label)}: {bar.value:.1%} {escape(bar.note)}</title></rect>'
        )
        if bar.low is not None and bar.high is not None:
            parts.append(
                f'<line x1="{x(bar.low):.1f}" x2="{x(bar.high):.1f}" y1="{y + 10}" y2="{y + 10}" stroke="#111827" '
                f'stroke-width="1.5"/>'
            )
        parts.append(f'<text x="{WIDTH - PAD_RIGHT + 6}" y="{y + 13}">{bar.value:.0%}</text>')
    axis_y = 10 + len(bars) * ROW
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<text x="{x(tick):.1f}" y="{axis_y + 14}" text-anchor="middle" fill="#667085">{tick:.0%}</text>')
    if reference is not None:
        parts.append(
            f'<line x1="{x(reference):.1f}" x2="{x(reference):.1f}" y1="6" y2="{axis_y}" stroke="#b42318" '
            f'stroke-dasharray="4 3"/>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label is escaped above


def line_chart(
    points: Sequence[tuple[str, float]], *, title: str = "", height: int = 180, y_min: float = 0.0, y_max: float = 1.0
) -> SafeString:
    """A line over labelled x positions (dates, steps), y scaled between y_min and y_max."""
    left, right, top, bottom = 50, 20, 10, 30
    span_x, span_y = WIDTH - left - right, height - top - bottom
    if not points:
        return mark_safe(f'<p class="muted">No data yet for {escape(title)}.</p>')  # noqa: S308
    n = len(points)

    def px(i: int) -> float:
        return left + (span_x * i / (n - 1) if n > 1 else span_x / 2)

    def py(value: float) -> float:
        scaled = (value - y_min) / (y_max - y_min) if y_max > y_min else 0.5
        return top + span_y * (1 - max(0.0, min(1.0, scaled)))

    path = " ".join(f"{'M' if i == 0 else 'L'}{px(i):.1f},{py(v):.1f}" for i, (_, v) in enumerate(points))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="system-ui, sans-serif">',
        f'<line x1="{left}" x2="{WIDTH - right}" y1="{top + span_y}" y2="{top + span_y}" stroke="#dde1e7"/>',
    ]
    for fraction in (0, 0.5, 1):
        value = y_min + (y_max - y_min) * fraction
        parts.append(
            f'<text x="{left - 6}" y="{py(value) + 4:.1f}" text-anchor="end" fill="#667085">{value:.2g}</text>'
        )
    parts.append(f'<path d="{path}" fill="none" stroke="#2f5bea" stroke-width="2"/>')
    for i, (label, value) in enumerate(points):
        parts.append(
            f'<circle cx="{px(i):.1f}" cy="{py(value):.1f}" r="3" fill="#2f5bea"><title>{escape(label)}: '
            f"{value:.3g}</title></circle>"
        )
    for i in sorted({0, n // 2, n - 1}):
        parts.append(
            f'<text x="{px(i):.1f}" y="{height - 8}" text-anchor="middle" fill="#667085">{escape(points[i][0])}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label is escaped above
