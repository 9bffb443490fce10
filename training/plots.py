"""A training run's metric plots: steps on x, the train curve in the app's blue and the validation curve in
orange, drawn by the shared SVG line chart (core/charts.py)."""

from dataclasses import dataclass

from django.utils.safestring import SafeString

from core import charts

COLOURS = {"train": charts.ACCENT, "eval": "#d97706"}  # the app's accent; an orange that reads apart from it


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]
    split: str  # "train" or "eval": picks the colour


def line_chart(title: str, series: list[Series], *, reference: float | None = None) -> SafeString:
    """An SVG chart of a metric's `series` (steps on x), or a short note when there is nothing to draw yet."""
    lines = [charts.Series(s.name, s.points, COLOURS.get(s.split, charts.INK)) for s in series]
    return charts.line_chart(title, lines, reference=reference, x_name="step")
