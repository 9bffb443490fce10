import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from annotator.models import Candidate, Judgment, Side, Verdict, WithdrawnJudgment
from annotator.services import assignment_next
from tests.factories import add_pair, make_campaign, make_user

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def shown_comparison(response) -> int:
    return response.context["comparison"].pk


def test_anonymous_users_are_sent_to_login(client, campaign):
    for url in (
        reverse("annotator:campaign_list"),
        reverse("annotator:annotate", args=[campaign.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))
    response = client.post(reverse("annotator:judge", args=[campaign.pk]), {"choice": "left"})
    assert response.status_code == 302
    assert Judgment.objects.count() == 0


def test_campaign_list_shows_progress_for_the_annotator(annotator_client, campaign):
    response = annotator_client.get(reverse("annotator:campaign_list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Helpfulness" in html
    assert re.search(r"<td>0</td>\s*<td>3</td>\s*<td>3</td>", html), "done / total / remaining"


def test_campaign_list_hides_campaigns_the_user_is_not_part_of(annotator_client, other_annotator):
    private = make_campaign("Private", pairs=1)
    private.annotators.add(other_annotator)
    response = annotator_client.get(reverse("annotator:campaign_list"))
    assert "Private" not in response.content.decode()
    assert annotator_client.get(reverse("annotator:annotate", args=[private.pk])).status_code == 404


def test_annotate_page_shows_prompt_and_both_responses_side_by_side(annotator_client, campaign):
    response = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    comparison = response.context["comparison"]
    assert comparison.prompt.messages[0]["content"] in html
    assert comparison.candidate_a.text in html and comparison.candidate_b.text in html
    assert 'id="response-left"' in html and 'id="response-right"' in html
    for label in ("Left is better", "Right is better", "Tie", "Both bad", "Skip", "Undo last"):
        assert label in html
    assert "htmx" in html and 'hx-headers=\'{"x-csrftoken"' in html


def test_a_response_cut_off_at_its_token_limit_is_marked_and_one_that_ended_is_not(annotator_client):
    campaign = make_campaign("Cut", pairs=0)
    pair = add_pair(campaign, "Tell a story", "Once upon a time there was a", "The end.")
    Candidate.objects.filter(pk=pair.candidate_a_id).update(finish_reason="length")
    Candidate.objects.filter(pk=pair.candidate_b_id).update(finish_reason="stop")
    response = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    html = response.content.decode()
    marker = "Cut off: this response hit the token limit and never finished."
    assert html.count(marker) == 1
    cut_side = "left" if response.context["left"].pk == pair.candidate_a_id else "right"
    card = html[html.index(f'id="response-{cut_side}"') :].split("</article>")[0]
    assert "Once upon a time there was a" in card and marker in card


def test_htmx_request_gets_only_the_pair_fragment(annotator_client, campaign):
    response = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]), **HX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="pair"')
    assert "<html" not in html


def test_plain_post_records_judgment_and_redirects_to_the_next_pair(annotator_client, annotator, campaign):
    first = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    comparison_id = shown_comparison(first)
    left_candidate = first.context["left"]
    response = annotator_client.post(
        reverse("annotator:judge", args=[campaign.pk]),
        {"comparison": comparison_id, "choice": "left", "rationale": "More accurate.", "duration_ms": "4200"},
    )
    assert response.status_code == 302
    assert response.url == reverse("annotator:annotate", args=[campaign.pk])
    judgment = Judgment.objects.get(annotator=annotator)
    expected = Verdict.A if left_candidate.pk == judgment.comparison.candidate_a_id else Verdict.B
    assert (judgment.comparison_id, judgment.verdict, judgment.rationale, judgment.duration_ms) == (
        comparison_id,
        expected,
        "More accurate.",
        4200,
    )
    follow = annotator_client.get(response.url)
    assert "Recorded: left is better." in follow.content.decode()
    assert shown_comparison(follow) != comparison_id


def test_htmx_post_returns_the_next_pair_fragment_with_a_confirmation(annotator_client, campaign):
    first = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    response = annotator_client.post(
        reverse("annotator:judge", args=[campaign.pk]), {"comparison": shown_comparison(first), "choice": "tie"}, **HX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="pair"')
    assert "Recorded: tie." in html
    assert shown_comparison(response) != shown_comparison(first)


def test_time_on_task_is_measured_on_the_server_without_javascript(annotator_client, annotator, campaign):
    first = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    annotator_client.post(
        reverse("annotator:judge", args=[campaign.pk]), {"comparison": shown_comparison(first), "choice": "right"}
    )
    assert Judgment.objects.get(annotator=annotator).duration_ms >= 0


def test_double_submit_records_one_judgment(annotator_client, annotator, campaign):
    first = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    data = {"comparison": shown_comparison(first), "choice": "left"}
    url = reverse("annotator:judge", args=[campaign.pk])
    annotator_client.post(url, data, **HX)
    annotator_client.post(url, data, **HX)
    assert Judgment.objects.filter(annotator=annotator).count() == 1


def test_invalid_choice_is_reported_and_nothing_recorded(annotator_client, campaign):
    first = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    response = annotator_client.post(
        reverse("annotator:judge", args=[campaign.pk]),
        {"comparison": shown_comparison(first), "choice": "middle"},
        **HX,
    )
    assert "That choice could not be recorded" in response.content.decode()
    assert Judgment.objects.count() == 0


def test_disabled_options_are_not_offered(annotator_client):
    campaign = make_campaign("Strict", pairs=1, allow_tie=False, allow_both_bad=False)
    html = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk])).content.decode()
    assert 'value="tie"' not in html and 'value="both_bad"' not in html
    assert 'value="left"' in html and 'value="skip"' in html


def undo_offered(response) -> str | None:
    """The judgment id the page's undo form sends, None when it offers no undo (button disabled)."""
    form = re.search(r'<form[^>]*action="[^"]*/undo/".*?</form>', response.content.decode(), re.S).group(0)
    found = re.search(r'name="judgment" value="(\d+)"', form)
    assert (found is None) == ('id="undo" class="link" disabled' in form)
    return found and found.group(1)


def test_undo_brings_back_the_last_pair(annotator_client, annotator, campaign):
    first = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    assert undo_offered(first) is None
    judged = annotator_client.post(
        reverse("annotator:judge", args=[campaign.pk]), {"comparison": shown_comparison(first), "choice": "left"}, **HX
    )
    judgment = Judgment.objects.get(annotator=annotator)
    assert undo_offered(judged) == str(judgment.pk)
    response = annotator_client.post(reverse("annotator:undo", args=[campaign.pk]), {"judgment": judgment.pk}, **HX)
    assert "Undone: that pair is back" in response.content.decode()
    assert shown_comparison(response) == shown_comparison(first)
    assert Judgment.objects.filter(annotator=annotator).count() == 0
    assert WithdrawnJudgment.objects.get().pk == judgment.pk
    assert undo_offered(response) is None


def test_a_double_clicked_undo_takes_back_one_judgment(annotator_client, annotator, campaign):
    for _ in range(2):
        page = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
        annotator_client.post(
            reverse("annotator:judge", args=[campaign.pk]), {"comparison": shown_comparison(page), "choice": "right"}
        )
    offered = undo_offered(annotator_client.get(reverse("annotator:annotate", args=[campaign.pk])))
    for _ in range(2):
        annotator_client.post(reverse("annotator:undo", args=[campaign.pk]), {"judgment": offered})
    assert Judgment.objects.filter(annotator=annotator).count() == 1
    assert list(WithdrawnJudgment.objects.values_list("pk", flat=True)) == [int(offered)]


def test_a_refused_undo_says_why_on_the_page(annotator_client, annotator, campaign, settings):
    page = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    annotator_client.post(
        reverse("annotator:judge", args=[campaign.pk]), {"comparison": shown_comparison(page), "choice": "left"}
    )
    judgment = Judgment.objects.get(annotator=annotator)
    offered = undo_offered(annotator_client.get(reverse("annotator:annotate", args=[campaign.pk])))
    settings.ANNOTATION_UNDO_SECONDS = 60
    Judgment.objects.filter(pk=judgment.pk).update(created_at=judgment.created_at - timedelta(seconds=61))
    response = annotator_client.post(reverse("annotator:undo", args=[campaign.pk]), {"judgment": offered}, **HX)
    assert (
        f"Judgment {judgment.pk} was recorded more than 1 minute ago: a judgment can be undone only within 1 minute "
        "of recording it; nothing was undone."
    ) in response.content.decode()
    assert undo_offered(response) is None, "past its window, the page no longer offers the undo"
    assert Judgment.objects.filter(pk=judgment.pk).exists()


def test_undo_without_javascript_redirects(annotator_client, campaign):
    response = annotator_client.post(reverse("annotator:undo", args=[campaign.pk]))
    assert response.status_code == 302
    assert "Nothing to undo." in annotator_client.get(response.url).content.decode()


def test_a_page_with_only_pairs_others_hold_says_so_and_checks_back(annotator_client):
    campaign = make_campaign("Held", pairs=1, overlap=1)
    assignment_next(campaign=campaign, annotator=make_user("holder"))
    page = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk])).content.decode()
    assert "Nothing open right now" in page and "1 pair still needs a judgment" in page
    assert 'hx-trigger="every 30s"' in page and "All done here" not in page


def test_finished_campaign_says_so(annotator_client):
    campaign = make_campaign("Tiny", pairs=1)
    first = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    response = annotator_client.post(
        reverse("annotator:judge", args=[campaign.pk]), {"comparison": shown_comparison(first), "choice": "skip"}, **HX
    )
    assert "All done here" in response.content.decode()


def test_multi_turn_prompt_renders_as_a_conversation_with_system_message(annotator_client):
    campaign = make_campaign("Chat", pairs=0)
    add_pair(
        campaign,
        [
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": "First answer"},
            {"role": "user", "content": "Follow-up question"},
        ],
        "Reply one",
        "Reply two",
        system="You are terse.",
    )
    html = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk])).content.decode()
    assert html.count('class="turn user"') == 2
    assert html.count('class="turn assistant"') == 1
    assert "System message" in html and "You are terse." in html


def test_html_in_model_output_is_shown_as_text_and_never_injected(annotator_client):
    campaign = make_campaign("XSS", pairs=0)
    add_pair(
        campaign,
        "Say hi",
        "<script>alert('pwned')</script> and <img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))\n\n```html\n<b onmouseover=alert(1)>x</b>\n```",
    )
    html = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk])).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html or "&lt;script&gt;" in html
    assert "<img" not in html
    assert 'href="javascript' not in html
    assert "<b onmouseover" not in html
    assert "onerror=alert(1)" in html  # shown as text


def test_markdown_and_code_are_rendered_with_highlighting(annotator_client):
    campaign = make_campaign("Code", pairs=0)
    add_pair(campaign, "Code please", "**Bold** answer", "```python\ndef f(x):\n    return x\n```")
    html = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk])).content.decode()
    assert "<strong>Bold</strong>" in html
    assert '<pre class="code highlight" data-lang="python">' in html
    assert '<span class="k">def</span>' in html


def test_judge_rejects_a_comparison_from_another_campaign(annotator_client, annotator, campaign):
    other = make_campaign("Other", pairs=1)
    foreign = other.prompts.first().comparisons.first()
    response = annotator_client.post(
        reverse("annotator:judge", args=[campaign.pk]), {"comparison": foreign.pk, "choice": "left"}, **HX
    )
    assert "not part of this campaign" in response.content.decode()
    assert Judgment.objects.count() == 0


def test_sides_shown_are_the_sides_stored(db):
    campaign = make_campaign("Sides", pairs=1, overlap=20)
    for i in range(20):
        client = Client()
        user = make_user(f"s{i}")
        client.force_login(user)
        page = client.get(reverse("annotator:annotate", args=[campaign.pk]))
        left = page.context["left"]
        client.post(
            reverse("annotator:judge", args=[campaign.pk]), {"comparison": shown_comparison(page), "choice": "left"}
        )
        judgment = Judgment.objects.get(annotator=user)
        assert judgment.shown_left == (Side.A if left.pk == judgment.comparison.candidate_a_id else Side.B)
        assert judgment.verdict == judgment.shown_left


def test_staff_see_links_to_the_staff_pages_and_annotators_do_not(annotator_client, staff_client, campaign):
    staff_links = ["/generation/", "/quality/", "/exports/", "/training/", "/admin/"]
    staff_html = staff_client.get(reverse("annotator:campaign_list")).content.decode()
    for link in staff_links:
        assert f'href="{link}"' in staff_html
    assert f"/exports/new/?campaign={campaign.pk}" in staff_html
    annotator_html = annotator_client.get(reverse("annotator:campaign_list")).content.decode()
    for link in staff_links:
        assert f'href="{link}"' not in annotator_html
    assert "/exports/new/" not in annotator_html
