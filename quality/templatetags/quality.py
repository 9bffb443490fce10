from django import template

register = template.Library()


@register.filter
def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


@register.filter
def number(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


@register.filter
def interval(value: tuple[float, float] | None) -> str:
    return "–" if not value else f"{value[0]:.0%}–{value[1]:.0%}"
