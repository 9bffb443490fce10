"""Rank more than two: one ranking judgment per prompt, the pairs' judgments derived from it."""

import itertools

import pytest
from django.urls import reverse

from annotator.models import Assignment, Comparison, Judgment, Ranking, Verdict, WithdrawnJudgment
from annotator.ranking import ranking_candidates, ranking_shown_order, ranking_submit
from annotator.services import (
    assignment_next,
    campaign_create,
    candidate_create,
    comparison_create,
    judgment_undo,
    prompt_get_or_create,
)
from core.errors import ConflictError, InputError
from tests.factories import make_user

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def ranked_campaign(*, prompts=1, n=3, overlap=1, all_pairs=True):
    campaign = campaign_create(name="Ranks", overlap=overlap, rank_candidates=True)
    for p in range(prompts):
        prompt, _ = prompt_get_or_create(campaign=campaign, prompt=f"Question {p}?")
        candidates = [candidate_create(prompt=prompt, text=f"Answer {p}.{i}", model_name=f"m{i}") for i in range(n)]
        pairs = list(itertools.combinations(candidates, 2))
        for a, b in pairs if all_pairs else pairs[:1]:
            comparison_create(candidate_a=a, candidate_b=b)
    return campaign


def test_the_queue_hands_out_one_task_per_prompt(db):
    campaign = ranked_campaign(prompts=2)
    user = make_user("ranker")
    first = assignment_next(campaign=campaign, annotator=user)
    anchors = {c.prompt_id: c.pk for c in Comparison.objects.order_by("-id")}  # the lowest id per prompt wins
    assert first.comparison_id == anchors[first.comparison.prompt_id]


def test_a_ranking_derives_every_pair_with_its_ranks(db):
    campaign = ranked_campaign()
    user = make_user("ranker")
    assignment = assignment_next(campaign=campaign, annotator=user)
    ids = [c.pk for c in ranking_candidates(prompt_id=assignment.comparison.prompt_id)]
    order = [ids[2], ids[0], ids[1]]  # best first
    result = ranking_submit(comparison=assignment.comparison, annotator=user, order=order)
    assert result.created and result.ranking.order == order
    shown = [
        c.pk
        for c in ranking_shown_order(
            assignment=assignment, candidates=ranking_candidates(prompt_id=assignment.comparison.prompt_id)
        )
    ]
    assert result.ranking.shown == shown and sorted(shown) == ids
    verdicts = {}
    for judgment in Judgment.objects.filter(ranking=result.ranking).select_related("comparison"):
        pair = judgment.comparison
        winner = pair.candidate_a_id if judgment.verdict == Verdict.A else pair.candidate_b_id
        verdicts[frozenset((pair.candidate_a_id, pair.candidate_b_id))] = winner
        assert judgment.details["of"] == 3
    rank = {pk: i for i, pk in enumerate(order)}
    assert len(verdicts) == 3
    for pair, winner in verdicts.items():
        assert winner == min(pair, key=rank.get)
    assert set(Comparison.objects.values_list("human_votes", flat=True)) == {1}
    assert not Assignment.objects.exists()
    assert assignment_next(campaign=campaign, annotator=user) is None, "the prompt is done for them"


def test_only_candidates_in_some_pair_are_ranked(db):
    campaign = ranked_campaign(all_pairs=False)  # three candidates, one pair
    assignment = assignment_next(campaign=campaign, annotator=make_user("ranker"))
    assert len(ranking_candidates(prompt_id=assignment.comparison.prompt_id)) == 2


def test_a_pair_missing_from_the_campaign_is_created_from_the_ranking(db):
    campaign = ranked_campaign()
    user = make_user("ranker")
    anchor = Comparison.objects.order_by("id").first()
    Comparison.objects.order_by("id").last().delete()  # two pairs of three candidates left: all three ranked
    assignment_next(campaign=campaign, annotator=user)
    ids = [c.pk for c in ranking_candidates(prompt_id=anchor.prompt_id)]
    assert len(ids) == 3
    result = ranking_submit(comparison=anchor, annotator=user, order=ids)
    made = Comparison.objects.get(metadata__from_ranking=result.ranking.pk)
    assert {made.candidate_a_id, made.candidate_b_id} == {ids[1], ids[2]}
    assert len(result.judgments) == 3


def test_a_bad_order_is_refused_and_nothing_is_written(db):
    campaign = ranked_campaign()
    user = make_user("ranker")
    assignment = assignment_next(campaign=campaign, annotator=user)
    ids = [c.pk for c in ranking_candidates(prompt_id=assignment.comparison.prompt_id)]
    with pytest.raises(InputError, match=f"missing {ids[2]}; repeated {ids[0]}"):
        ranking_submit(comparison=assignment.comparison, annotator=user, order=[ids[0], ids[0], ids[1]])
    with pytest.raises(InputError, match="not of this prompt 999999"):
        ranking_submit(comparison=assignment.comparison, annotator=user, order=[*ids, 999999])
    assert not Ranking.objects.exists() and not Judgment.objects.exists()


def test_a_ranking_needs_the_lease_and_a_repeat_changes_nothing(db):
    campaign = ranked_campaign()
    user = make_user("ranker")
    anchor = Comparison.objects.order_by("id").first()
    ids = [c.pk for c in ranking_candidates(prompt_id=anchor.prompt_id)]
    with pytest.raises(ConflictError, match="were not handed to you"):
        ranking_submit(comparison=anchor, annotator=user, order=ids)
    assignment_next(campaign=campaign, annotator=user)
    first = ranking_submit(comparison=anchor, annotator=user, order=ids)
    again = ranking_submit(comparison=anchor, annotator=user, order=list(reversed(ids)))
    assert not again.created and again.ranking == first.ranking
    assert Judgment.objects.count() == 3


def test_undo_withdraws_the_whole_ranking_and_gives_the_prompt_back_in_the_same_order(db):
    campaign = ranked_campaign()
    user = make_user("ranker")
    assignment = assignment_next(campaign=campaign, annotator=user)
    candidates = ranking_candidates(prompt_id=assignment.comparison.prompt_id)
    shown = ranking_shown_order(assignment=assignment, candidates=candidates)
    result = ranking_submit(comparison=assignment.comparison, annotator=user, order=[c.pk for c in candidates])
    latest = max(result.judgments, key=lambda j: j.pk)
    judgment_undo(campaign=campaign, annotator=user, judgment_id=latest.pk)
    assert not Judgment.objects.exists()
    assert WithdrawnJudgment.objects.filter(ranking=result.ranking).count() == 3
    result.ranking.refresh_from_db()
    assert result.ranking.withdrawn_at is not None
    assert set(Comparison.objects.values_list("human_votes", flat=True)) == {0}
    back = assignment_next(campaign=campaign, annotator=user)
    assert back.comparison_id == assignment.comparison_id
    assert ranking_shown_order(assignment=back, candidates=candidates) == shown
    again = ranking_submit(comparison=back.comparison, annotator=user, order=[c.pk for c in reversed(candidates)])
    assert again.created


def test_a_ranking_never_puts_a_pair_over_its_overlap(db):
    campaign = ranked_campaign(overlap=1)
    first, second = make_user("first"), make_user("second")
    anchor = Comparison.objects.order_by("id").first()
    other = Comparison.objects.exclude(pk=anchor.pk).first()
    Comparison.objects.filter(pk=other.pk).update(human_votes=1)  # full already (judged while pairwise)
    assignment_next(campaign=campaign, annotator=first)
    ids = [c.pk for c in ranking_candidates(prompt_id=anchor.prompt_id)]
    result = ranking_submit(comparison=anchor, annotator=first, order=ids)
    assert other.pk not in {j.comparison_id for j in result.judgments}
    assert assignment_next(campaign=campaign, annotator=second) is None


def test_a_campaign_that_does_not_rank_refuses_a_ranking(db):
    campaign = campaign_create(name="Pairs")
    prompt, _ = prompt_get_or_create(campaign=campaign, prompt="Q?")
    a, b = (candidate_create(prompt=prompt, text=t) for t in ("x", "y"))
    pair = comparison_create(candidate_a=a, candidate_b=b)
    with pytest.raises(InputError, match="does not ask for rankings"):
        ranking_submit(comparison=pair, annotator=make_user("u"), order=[a.pk, b.pk])


def test_the_page_shows_every_response_to_rank_and_records_the_ranks_given(annotator_client, annotator):
    campaign = ranked_campaign()
    page = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    html = page.content.decode()
    assert 'id="rank-form"' in html and 'id="judge-form"' not in html
    shown = page.context["ranked"]
    assert [f"Answer 0.{i}" in html for i in range(3)] == [True] * 3
    data = {"comparison": page.context["comparison"].pk}
    ranks = {shown[0].pk: 3, shown[1].pk: 1, shown[2].pk: 2}
    data.update({f"rank_{pk}": rank for pk, rank in ranks.items()})
    response = annotator_client.post(reverse("annotator:rank", args=[campaign.pk]), data, **HX)
    assert "Recorded: your ranking of 3 responses." in response.content.decode()
    ranking = Ranking.objects.get(annotator=annotator)
    assert ranking.order == [shown[1].pk, shown[2].pk, shown[0].pk]


def test_ranks_given_twice_are_refused_on_the_page(annotator_client):
    campaign = ranked_campaign()
    page = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
    data = {"comparison": page.context["comparison"].pk}
    data.update({f"rank_{c.pk}": 1 for c in page.context["ranked"]})
    response = annotator_client.post(reverse("annotator:rank", args=[campaign.pk]), data, **HX)
    assert "Give each of the 3 responses its own rank, 1 (best) to 3: rank 1 was given twice." in (
        response.content.decode()
    )
    assert not Ranking.objects.exists()


def test_a_prompt_with_two_candidates_is_judged_as_a_pair_in_a_ranking_campaign(annotator_client):
    campaign = ranked_campaign(n=2)
    html = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk])).content.decode()
    assert 'id="judge-form"' in html and 'id="rank-form"' not in html


def test_the_api_hands_out_a_ranking_task_and_takes_its_order(db):
    from rest_framework.test import APIClient

    campaign = ranked_campaign()
    user = make_user("api-ranker")
    client = APIClient()
    client.force_authenticate(user)
    task = client.get(f"/api/campaigns/{campaign.pk}/next/").json()
    shown = [side["id"] for side in task["rank"]]
    assert len(shown) == 3 and {task["left"]["id"], task["right"]["id"]} <= set(shown)
    order = list(reversed(shown))
    response = client.post(f"/api/comparisons/{task['id']}/ranking/", {"order": order}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["order"], body["shown"], len(body["judgments"])) == (order, shown, 3)
    again = client.post(f"/api/comparisons/{task['id']}/ranking/", {"order": shown}, format="json")
    assert again.status_code == 200 and again.json()["order"] == order, "a repeat changes nothing"
    bad = client.post(f"/api/comparisons/{task['id']}/ranking/", {"order": [1, 2]}, format="json")
    assert bad.status_code == 400
    assert client.get(f"/api/campaigns/{campaign.pk}/next/").status_code == 204
