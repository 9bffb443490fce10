from django import template
from django.utils.safestring import SafeString

from annotator.rendering import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    """Render untrusted markdown (model output, guidelines) to sanitised HTML."""
    return render_markdown(text or "")
