"""Markdown for untrusted model output: rendered, highlighted, and never able to run or inject HTML.

markdown-it runs with raw HTML off (a `<script>` in a response becomes text), code fences are highlighted
by Pygments, and nh3 (ammonia) sanitises the result against an allow-list as a second line of defence.
"""

from functools import lru_cache

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "span", "div", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"class"},
    "div": {"class"},
    "code": {"class"},
    "pre": {"class", "data-lang"},
    "ol": {"start"},
}
# A table column's alignment, as a class: the Content-Security-Policy refuses style attributes.
ALIGNMENTS = {"left", "center", "right"}
ALLOWED_CLASSES = {tag: {f"align-{side}" for side in ALIGNMENTS} for tag in ("th", "td")}
_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, language: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(language.strip().split()[0]) if language.strip() else None
    except ClassNotFound:
        lexer = None
    body = highlight(code, lexer, _FORMATTER) if lexer else escape(code)
    label = escape(language.strip().split()[0]) if language.strip() else ""
    return f'<pre class="code highlight" data-lang="{label}"><code>{body}</code></pre>'


def _alignment_as_class(state: StateCore) -> None:
    """markdown-it writes an aligned column's cells with style="text-align:right"; make it class="align-right"."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open") and "style" in token.attrs:
            side = str(token.attrs.pop("style")).removeprefix("text-align:")
            if side in ALIGNMENTS:
                token.attrs["class"] = f"align-{side}"


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    md.core.ruler.push("alignment_as_class", _alignment_as_class)
    return md


def render_markdown(text: str) -> SafeString:
    html = _markdown().render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        allowed_classes=ALLOWED_CLASSES,
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 - sanitised by nh3 just above
