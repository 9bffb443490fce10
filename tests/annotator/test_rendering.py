import pytest

from annotator.rendering import render_markdown


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<iframe src='https://evil.example'></iframe>",
        "[link](javascript:alert(1))",
        "<a href='javascript:alert(1)'>x</a>",
        "<svg onload=alert(1)>",
        "```\n</code></pre><script>alert(1)</script>\n```",
        "`<script>alert(1)</script>`",
        '<div style="background:url(javascript:alert(1))">x</div>',
    ],
)
def test_untrusted_html_never_survives_as_markup(attack):
    html = render_markdown(attack)
    for forbidden in ("<script", "<img", "<iframe", "<svg", 'href="javascript', "<div style"):
        assert forbidden not in html.lower()


def test_markdown_features_render():
    html = render_markdown(
        "# Title\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ **new** [site](https://x.org)"
    )
    assert "<h1>Title</h1>" in html
    assert "<li>one</li>" in html
    assert "<table>" in html and "<td>1</td>" in html
    assert "<s>old</s>" in html and "<strong>new</strong>" in html
    assert '<a href="https://x.org" rel="noopener noreferrer nofollow">site</a>' in html


def test_code_fences_are_highlighted_and_unknown_languages_are_escaped():
    assert '<span class="k">SELECT</span>' in render_markdown("```sql\nSELECT 1\n```")
    plain = render_markdown("```klingon\n<b>qapla'</b>\n```")
    assert "&lt;b&gt;" in plain and "<b>" not in plain


def test_table_alignment_is_a_class_not_a_style_attribute_the_csp_would_refuse():
    html = render_markdown("| a | b | c | d |\n|:--|:-:|--:|---|\n| 1 | 2 | 3 | 4 |")
    assert '<th class="align-left">a</th>' in html and '<td class="align-center">2</td>' in html
    assert '<td class="align-right">3</td>' in html and "<td>4</td>" in html
    assert "style" not in html
