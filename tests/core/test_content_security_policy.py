"""The Content-Security-Policy: on every response, strict (the app's own files only, nothing inline), and the
app's pages really run under it: Chromium reports no violation on any of them, markdown tables, charts, htmx
swaps and the admin included."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from core.models import JobStatus
from exports.services import dataset_export_create, dataset_export_run
from tests.annotator.test_browser import browser, log_in  # noqa: F401 - browser is a fixture
from tests.exports.helpers import judge_all
from tests.factories import add_pair, make_campaign, make_user
from training.models import TrainingRun

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


# What the policy would refuse in a template: a style element or attribute, an inline script, an event handler.
INLINE = re.compile(r"""<style\b|\sstyle=|<script(?![^>]*\ssrc=)[^>]*>|\son[a-z]+=|\shx-on""", re.IGNORECASE)


@pytest.mark.django_db
def test_every_response_carries_the_policy(client, annotator_client):
    for response in (
        client.get(reverse("login")),
        annotator_client.get(reverse("annotator:campaign_list")),
        annotator_client.get(reverse("api-campaign-list")),
        annotator_client.get(reverse("annotator:annotate", args=[12345])),  # a 404
    ):
        assert directives(response["Content-Security-Policy"]) == POLICY


def test_no_template_has_what_the_policy_refuses():
    offenders = [
        f"{path.relative_to(settings.BASE_DIR)}: {match.group(0).strip()}"
        for path in sorted(Path(settings.BASE_DIR, "templates").rglob("*.html"))
        for match in INLINE.finditer(path.read_text())
    ]
    assert offenders == []


def make_pages_data() -> dict[str, str]:
    """A campaign whose pairs render a markdown table and code, judged (the quality charts), exported, and a
    training run with metrics (its charts); the URL of each page a user may open."""
    staff = make_user("boss", staff=True)
    make_user("ann")
    guidelines = "Prefer **tables**:\n\n| a | b |\n|:-|-:|\n| 1 | 2 |"
    campaign = make_campaign("Styled", pairs=0, overlap=2, guidelines=guidelines)
    for i in range(12):
        table = f"| left | centre | right |\n|:--|:-:|--:|\n| {i} | x | y |"
        add_pair(campaign, f"Question {i}?", f"{table}\n\n```python\nprint({i})\n```", f"Answer **{i}**")
    judge_all(campaign, staff, lambda comparison: "a" if comparison.pk % 3 else "b")
    export = dataset_export_run(export=dataset_export_create(campaign=campaign, options={"val_fraction": 0.3}))
    run = TrainingRun.objects.create(
        status=JobStatus.SUCCEEDED, dataset_path="/data/x", base_model="tiny", output_dir="/out", global_step=3
    )
    for step in (1, 2, 3):
        run.metrics.create(split="train", step=step, values={"loss": 0.7 / step, "rewards/accuracies": step / 3})
    return {
        "annotate": reverse("annotator:annotate", args=[campaign.pk]),
        "charts": [
            reverse("quality:campaign_quality", args=[campaign.pk]),
            reverse("training:run_detail", args=[run.pk]),
        ],
        "pages": [
            reverse("annotator:campaign_list"),
            reverse("quality:campaign_list"),
            reverse("exports:list"),
            reverse("exports:create"),
            reverse("exports:detail", args=[export.pk]),
            reverse("training:run_list"),
            reverse("training:run_create"),
            reverse("generation:run_list"),
            reverse("rounds:series_index"),
            reverse("leaderboard:leaderboard"),
            reverse("leaderboard:leaderboard") + f"?campaign={campaign.pk}",
            "/admin/",
            "/admin/annotator/campaign/",
            f"/admin/annotator/campaign/{campaign.pk}/change/",
            "/admin/axes/accessattempt/",
        ],
    }


# Collects what Chromium reports: the `securitypolicyviolation` events of each document (the script runs before
# the page's own, outside its policy) and the console's "Refused to ..." errors.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(
  e.violatedDirective + " " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber));
"""


@pytest.mark.slow
@pytest.mark.browser
def test_the_pages_run_under_the_policy_without_a_single_violation(live_server, browser, settings, tmp_path):  # noqa: F811
    settings.DATA_DIR = tmp_path
    data = make_pages_data()
    context = browser.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if "Refused to" in message.text else None)
    seen: dict[str, list[str]] = {}

    def visit(url: str) -> None:
        response = page.goto(live_server.url + url)
        assert response.status == 200, url
        assert directives(response.headers["content-security-policy"]) == POLICY, url
        page.wait_for_load_state("load")
        seen[url] = page.evaluate("window.cspViolations")

    visit(reverse("login"))
    log_in(page, live_server, "ann")
    visit(data["annotate"])
    assert page.locator(".responses td.align-right").count() == 1, "the table renders, aligned by class"
    assert page.locator("progress.bar").count() == 1
    page.wait_for_function("() => document.querySelector('#pair').dataset.ready === '1'")
    first = page.get_attribute("#pair", "data-comparison")
    page.keyboard.press("1")  # an htmx swap: the pair is replaced without a page load
    page.wait_for_function(
        "first => { const pair = document.querySelector('#pair');"
        " return pair.dataset.comparison !== first && pair.dataset.ready === '1'; }",
        arg=first,
    )
    seen["after an htmx swap"] = page.evaluate("window.cspViolations")
    page.keyboard.press("g")
    assert page.locator("#guidelines").evaluate("el => el.open")

    page.goto(live_server.url + reverse("login"))
    log_in(page, live_server, "boss")
    for url in data["charts"]:
        visit(url)
        assert page.locator("svg.chart").count() >= 1, f"{url} draws its charts"
    for url in data["pages"]:
        visit(url)
    context.close()
    assert {url: found for url, found in seen.items() if found} == {}
    assert refused == []
