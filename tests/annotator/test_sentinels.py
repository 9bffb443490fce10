"""Sentinel pairs: degradations with a known better side, kept in a campaign of their own."""

import random

import pytest
from django.core.management import CommandError, call_command

from annotator import degrade
from annotator.models import Campaign, Comparison, Judgment, Side, Verdict
from annotator.sentinels import sentinels_create
from core.errors import InputError
from quality.selectors import campaign_sentinel_scores
from tests.factories import add_pair, make_campaign, make_user

pytestmark = pytest.mark.django_db

PROSE = (
    "Paris is the capital of France. It lies on the Seine, in the north of the country. "
    "About two million people live in the city itself. Its metropolitan area is far larger."
)


def test_truncated_stops_mid_sentence_between_a_third_and_two_thirds():
    for seed in range(20):
        cut = degrade.truncated(PROSE, random.Random(seed))
        assert PROSE.startswith(cut)
        assert 0.3 * len(PROSE) <= len(cut) <= 0.65 * len(PROSE)
        assert cut[-1] not in ".!?,;: "


def test_shuffled_keeps_every_sentence_in_another_order():
    for seed in range(20):
        mixed = degrade.shuffled(PROSE, random.Random(seed))
        assert sorted(degrade.sentences(mixed)) == sorted(degrade.sentences(PROSE))
        assert degrade.sentences(mixed)[0] != degrade.sentences(PROSE)[0]


def test_responses_that_cannot_be_degraded_visibly_are_refused():
    rng = random.Random(0)
    assert degrade.truncated("Too short.", rng) is None
    assert degrade.shuffled("One sentence only, but long enough to pass the length check of the shuffler.", rng) is None
    code = "Use this. It works well.\n```python\nx = 1\nprint(x)\n```\nThen run it. Done now, really."
    assert degrade.shuffled(code, rng) is None


@pytest.fixture
def campaign_with_prose(db):
    campaign = make_campaign("Prose", pairs=0)
    for i in range(4):
        add_pair(campaign, f"Tell me about city {i}.", PROSE.replace("Paris", f"City{i}"), f"Short answer {i}.")
    return campaign


def test_sentinels_are_made_in_a_campaign_of_their_own_with_the_original_as_a(campaign_with_prose):
    result = sentinels_create(campaign=campaign_with_prose, count=6, seed=1)
    shadow = result.sentinel_campaign
    assert (shadow.sentinel_of, shadow.is_active) == (campaign_with_prose, False)
    assert sum(result.created.values()) == result.total == 6
    assert set(result.created) == set(degrade.KINDS)
    for pair in Comparison.objects.filter(prompt__campaign=shadow).select_related("candidate_a", "candidate_b"):
        source_id = pair.metadata["source_candidate"]
        source = campaign_with_prose.prompts.get(candidates__pk=source_id).candidates.get(pk=source_id)
        assert pair.candidate_a.text == source.text
        assert pair.candidate_b.text != source.text
        assert pair.prompt.messages == source.prompt.messages
        assert (pair.candidate_b.model_name, pair.candidate_b.finish_reason) == (
            source.model_name,
            source.finish_reason,
        )
        assert pair.metadata["better"] == Verdict.A
    assert Comparison.objects.filter(prompt__campaign=campaign_with_prose).count() == 4, "the campaign is untouched"


def test_a_rerun_makes_new_sentinels_and_never_repeats_one(campaign_with_prose):
    sentinels_create(campaign=campaign_with_prose, count=4, seed=1)
    again = sentinels_create(campaign=campaign_with_prose, count=4, seed=2)
    assert again.total == 8
    keys = [
        (p.metadata["source_candidate"], p.metadata["sentinel"])
        for p in Comparison.objects.filter(prompt__campaign=again.sentinel_campaign)
    ]
    assert len(keys) == len(set(keys))


def test_bad_requests_are_refused_with_what_to_do(campaign_with_prose):
    with pytest.raises(InputError, match="Unknown sentinel kinds \\['blurred'\\]"):
        sentinels_create(campaign=campaign_with_prose, count=2, kinds=["blurred"])
    with pytest.raises(InputError, match="has no responses to make sentinels from: add pairs first"):
        sentinels_create(campaign=make_campaign("Empty", pairs=0), count=2)
    shadow = sentinels_create(campaign=campaign_with_prose, count=1).sentinel_campaign
    with pytest.raises(InputError, match="holds sentinels itself"):
        sentinels_create(campaign=shadow, count=1)


def test_scores_count_each_annotators_sentinel_judgments_and_flag_the_careless(campaign_with_prose):
    campaign_with_prose.sentinel_min_accuracy = 0.8
    campaign_with_prose.save()
    shadow = sentinels_create(campaign=campaign_with_prose, count=6, seed=3).sentinel_campaign
    careful, careless = make_user("careful"), make_user("careless")
    for i, pair in enumerate(Comparison.objects.filter(prompt__campaign=shadow)):
        Judgment.objects.create(comparison=pair, annotator=careful, verdict=Verdict.A, shown_left=Side.A)
        wrong = Verdict.B if i % 2 else Verdict.A
        Judgment.objects.create(comparison=pair, annotator=careless, verdict=wrong, shown_left=Side.B)
    scores = {s.username: s for s in campaign_sentinel_scores(campaign=campaign_with_prose)}
    assert (scores["careful"].judged, scores["careful"].correct, scores["careful"].flagged) == (6, 6, False)
    assert (scores["careless"].judged, scores["careless"].correct, scores["careless"].flagged) == (6, 3, True)
    low, high = scores["careless"].ci95
    assert low < 0.5 < high


def test_make_sentinels_command_makes_them_and_sets_the_rate(campaign_with_prose, capsys):
    call_command("make_sentinels", campaign="Prose", count=3, rate=0.1)
    out = capsys.readouterr().out
    assert "Made 3 sentinel pair(s) for 'Prose'" in out and "it has 3 in all" in out
    assert Campaign.objects.get(name="Prose").sentinel_rate == 0.1
    with pytest.raises(CommandError, match="No campaign named 'Nope'"):
        call_command("make_sentinels", campaign="Nope")
    with pytest.raises(
        CommandError, match=r"The sentinel rate is 0\.9: give a share of each annotator's pairs, 0 to 0\.5"
    ):
        call_command("make_sentinels", campaign="Prose", count=1, rate=0.9)


def test_the_command_says_annotators_get_none_until_the_rate_is_set(campaign_with_prose, capsys):
    call_command("make_sentinels", campaign="Prose", count=1)
    assert "Annotators get none until the campaign's sentinel rate is set" in capsys.readouterr().out


def test_sentinel_campaigns_are_in_no_staff_list_and_no_leaderboard(campaign_with_prose):
    from leaderboard.selectors import leaderboard_campaigns, leaderboard_pairs

    shadow = sentinels_create(campaign=campaign_with_prose, count=3).sentinel_campaign
    assert shadow not in Campaign.objects.real()
    assert shadow not in leaderboard_campaigns()
    assert len(leaderboard_pairs(campaign=None, judges="humans")) == 4


def work_through(campaign, user, *, pick_a=True):
    """`user` judges whatever the queue hands them until nothing is left, always picking candidate a (or b)."""
    from annotator.models import Choice
    from annotator.services import assignment_next, judgment_submit

    handed = []
    while (assignment := assignment_next(campaign=campaign, annotator=user)) is not None:
        handed.append(assignment.comparison)
        side = Side.A if pick_a else Side.B
        choice = Choice.LEFT if assignment.shown_left == side else Choice.RIGHT
        judgment_submit(comparison=assignment.comparison, annotator=user, choice=choice)
    return handed


def test_sentinels_are_mixed_into_the_queue_among_the_real_pairs_and_kept_out_of_them(campaign_with_prose, monkeypatch):
    from annotator import services

    shadow = sentinels_create(campaign=campaign_with_prose, count=3, seed=4).sentinel_campaign
    campaign_with_prose.sentinel_rate = 0.5
    campaign_with_prose.save()
    draws = iter([0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9])  # due, not, due, not, ...
    monkeypatch.setattr(services.random, "random", lambda: next(draws))
    handed = work_through(campaign_with_prose, make_user("ann"))
    kinds = ["sentinel" if c.prompt.campaign_id == shadow.pk else "real" for c in handed]
    assert kinds == ["sentinel", "real", "sentinel", "real", "sentinel", "real", "real"]
    real = Judgment.objects.filter(comparison__prompt__campaign=campaign_with_prose)
    assert real.count() == 4, "the real pairs are all judged, and only they count in the campaign"
    assert Judgment.objects.filter(comparison__prompt__campaign=shadow).count() == 3


def test_no_sentinel_when_the_rate_is_zero_nor_once_no_real_pair_is_left(campaign_with_prose, monkeypatch):
    from annotator import services

    shadow = sentinels_create(campaign=campaign_with_prose, count=3).sentinel_campaign
    handed = work_through(campaign_with_prose, make_user("ann"))
    assert len(handed) == 4 and all(c.prompt.campaign_id != shadow.pk for c in handed), "rate 0: no sentinel"
    campaign_with_prose.sentinel_rate = 0.5
    campaign_with_prose.save()
    monkeypatch.setattr(services.random, "random", lambda: 0.0)  # a sentinel due on every pair
    assert work_through(campaign_with_prose, make_user("late")) == [], "the real pairs are full: all done"


def test_a_sentinel_is_judged_and_undone_through_the_page_like_any_pair(
    annotator_client, annotator, campaign_with_prose, monkeypatch
):
    from django.urls import reverse

    from annotator import services
    from annotator.services import judgment_undo

    sentinels_create(campaign=campaign_with_prose, count=1)
    campaign_with_prose.sentinel_rate = 0.5
    campaign_with_prose.save()
    monkeypatch.setattr(services.random, "random", lambda: 0.0)  # the coin says "sentinel due": no flaky draw
    page = annotator_client.get(reverse("annotator:annotate", args=[campaign_with_prose.pk]))
    shown = page.context["comparison"]
    assert shown.prompt.campaign.sentinel_of_id == campaign_with_prose.pk, "the page shows the sentinel"
    response = annotator_client.post(
        reverse("annotator:judge", args=[campaign_with_prose.pk]),
        {"comparison": shown.pk, "choice": "left"},
        HTTP_HX_REQUEST="true",
    )
    assert "Recorded: left is better." in response.content.decode()
    judgment = Judgment.objects.get(comparison=shown, annotator=annotator)
    judgment_undo(campaign=campaign_with_prose, annotator=annotator, judgment_id=judgment.pk)
    assert not Judgment.objects.filter(comparison=shown).exists()


def test_the_quality_report_shows_sentinel_accuracy_and_leaves_sentinels_out_of_everything_else(
    campaign_with_prose, monkeypatch, staff_client
):
    from django.urls import reverse

    from annotator import services
    from tests.quality.test_report import campaign_quality_report

    sentinels_create(campaign=campaign_with_prose, count=6, seed=5)
    campaign_with_prose.sentinel_rate, campaign_with_prose.overlap = 0.5, 2
    campaign_with_prose.save()
    monkeypatch.setattr(services.random, "random", lambda: 0.0)
    work_through(campaign_with_prose, make_user("careful"), pick_a=True)
    work_through(campaign_with_prose, make_user("careless"), pick_a=False)
    report = campaign_quality_report(campaign=campaign_with_prose)  # checked against the Python oracle too
    rows = {row["username"]: row for row in report["sentinels"]["annotators"]}
    assert (rows["careful"]["correct"], rows["careless"]["correct"]) == (rows["careful"]["judged"], 0)
    assert rows["careless"]["flagged"] and not rows["careful"]["flagged"]
    assert report["progress"]["comparisons"] == 4
    assert report["progress"]["human_judgments"] == 8, "two annotators, four real pairs: no sentinel counted"
    page = staff_client.get(reverse("quality:campaign_quality", args=[campaign_with_prose.pk])).content.decode()
    assert "Sentinel checks" in page and "below 80% on sentinels" in page


def test_the_api_hands_out_and_takes_a_sentinel_like_any_pair(campaign_with_prose, monkeypatch):
    from rest_framework.test import APIClient

    from annotator import services

    shadow = sentinels_create(campaign=campaign_with_prose, count=1).sentinel_campaign
    campaign_with_prose.sentinel_rate = 0.5
    campaign_with_prose.save()
    monkeypatch.setattr(services.random, "random", lambda: 0.0)
    client = APIClient()
    user = make_user("api")
    client.force_authenticate(user)
    shown = client.get(f"/api/campaigns/{campaign_with_prose.pk}/next/").json()
    assert Comparison.objects.get(pk=shown["id"]).prompt.campaign_id == shadow.pk
    response = client.post(f"/api/comparisons/{shown['id']}/judgments/", {"choice": "left"})
    assert response.status_code == 201, response.content


def test_a_campaign_of_sentinels_is_never_exported(campaign_with_prose):
    from exports.services import dataset_export_create

    shadow = sentinels_create(campaign=campaign_with_prose, count=1).sentinel_campaign
    with pytest.raises(InputError, match="holds the sentinel pairs of 'Prose': their judgments check annotators"):
        dataset_export_create(campaign=shadow, options={})
