"""The shared SVG charts: what they draw, what they say when there is nothing to draw, and that text is escaped."""

from datetime import date

from core.charts import Bar, Series, bar_chart, line_chart


def test_a_line_chart_draws_each_series_with_tooltips_a_legend_and_a_reference_line():
    svg = line_chart(
        "Loss <per step>",
        [Series("train", [(1, 0.7), (2, 0.6), (3, 0.5)]), Series("validation", [(3, 0.55)], colour="#d97706")],
        reference=0.5,
        x_name="step",
    )
    assert svg.startswith('<svg class="chart"') and 'aria-label="Loss &lt;per step&gt;"' in svg
    assert svg.count("<polyline") == 1, "one line for the series with several points"
    assert "validation at step 3: 0.55" in svg and 'fill="#d97706"' in svg
    assert 'stroke-dasharray="4 3"' in svg
    assert ">step</text>" in svg


def test_a_line_chart_without_finite_points_is_a_short_note():
    assert line_chart("Reward", [Series("train", [(1, float("nan"))])]) == '<p class="muted">Reward: no data yet.</p>'
    assert line_chart("<b>Empty</b>", []) == '<p class="muted">&lt;b&gt;Empty&lt;/b&gt;: no data yet.</p>'


def test_a_line_chart_writes_x_with_the_given_labels_on_a_fixed_y_range():
    days = [(date(2026, 12, 1).toordinal(), 0.5), (date(2026, 12, 3).toordinal(), 1.0)]
    svg = line_chart(
        "Agreement",
        [Series("agreement", days)],
        x_label=lambda x: date.fromordinal(round(x)).isoformat(),
        y_range=(0, 1),
    )
    assert "agreement at 2026-12-03: 1" in svg and ">2026-12-01</text>" in svg
    assert ">0</text>" in svg and ">0.25</text>" in svg and ">1</text>" in svg


def test_a_bar_chart_draws_bars_with_intervals_and_says_when_a_bar_has_no_data():
    svg = bar_chart([Bar("lefty & co", 0.75, 0.6, 0.9, "n=12"), Bar("new", None)], reference=0.5, title="Left wins")
    assert 'aria-label="Left wins"' in svg and "lefty &amp; co: 75.0% n=12" in svg
    assert ">75%</text>" in svg and ">no data</text>" in svg
