from collections import Counter

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.models import Judgment
from annotator.services import candidate_create, comparison_create, prompt_get_or_create
from quality.report import campaign_quality_report as sql_report
from quality.stats import fleiss_kappa, krippendorff_alpha_nominal
from tests.factories import make_campaign, make_user
from tests.quality.reference_report import assert_same_figures, reference_quality_report

pytestmark = pytest.mark.django_db


def campaign_quality_report(*, campaign):
    """The report, checked against the implementation it replaced (every vote in Python) on each fixture."""
    report = sql_report(campaign=campaign)
    assert_same_figures(report, reference_quality_report(campaign=campaign))
    return report


def pair(campaign, i, text_a="short", text_b="a much longer answer", model_a="", model_b=""):
    prompt, _ = prompt_get_or_create(campaign=campaign, prompt=f"Q{i}")
    # Like generate_pairs --model A --model-b B: each candidate records which side it came from.
    a = candidate_create(prompt=prompt, text=f"{text_a} {i}", model_name=model_a, metadata={"model": "a"})
    b = candidate_create(prompt=prompt, text=f"{text_b} {i}", model_name=model_b, metadata={"model": "b"})
    return comparison_create(candidate_a=a, candidate_b=b)


def vote(comparison, user, verdict, shown_left="a", duration_ms=10_000, source="human", details=None):
    return Judgment.objects.create(
        comparison=comparison,
        annotator=user,
        verdict=verdict,
        shown_left=shown_left,
        duration_ms=duration_ms,
        source=source,
        details=details or {},
    )


def test_agreement_figures_follow_the_votes():
    campaign = make_campaign("Agree", pairs=0, overlap=3)
    users = [make_user(f"u{i}") for i in range(3)]
    table = [["a", "a", "a"], ["a", "a", "b"], ["b", "b", "b"], ["tie", "a", "a"], ["b", "a", "b"]]
    for i, verdicts in enumerate(table):
        comparison = pair(campaign, i)
        for user, verdict in zip(users, verdicts, strict=True):
            vote(comparison, user, verdict)
    vote(pair(campaign, 99), users[0], "skip")
    report = campaign_quality_report(campaign=campaign)
    agreement = report["agreement"]
    assert agreement["items_with_2_or_more_votes"] == 5
    assert agreement["percent_agreement"] == pytest.approx((1 + 1 / 3 + 1 + 1 / 3 + 1 / 3) / 5)
    tallies = [(Counter(verdicts), 1) for verdicts in table]
    assert agreement["krippendorff_alpha"] == pytest.approx(krippendorff_alpha_nominal(tallies))
    assert agreement["fleiss_kappa"] == pytest.approx(fleiss_kappa(tallies))
    assert report["progress"] == {"comparisons": 6, "complete": 5, "human_judgments": 15, "skips": 1, "ai_judgments": 0}


def test_position_bias_is_measured_and_a_left_clicker_is_flagged():
    campaign = make_campaign("Position", pairs=0)
    lefty, fair = make_user("lefty"), make_user("fair")
    for i in range(12):
        comparison = pair(campaign, i)
        shown_left = "a" if i % 2 else "b"
        vote(comparison, lefty, shown_left, shown_left=shown_left)  # always the left one
        other = pair(campaign, 100 + i)
        vote(other, fair, "a", shown_left=shown_left)  # always candidate a, wherever it was
    report = campaign_quality_report(campaign=campaign)
    assert report["position_bias"]["successes"] == 12 + 6
    assert report["position_bias"]["n"] == 24
    rows = {row["username"]: row for row in report["annotators"]}
    assert rows["lefty"]["left_wins"]["rate"] == 1.0
    assert any("picks the left side 100%" in flag for flag in rows["lefty"]["flags"])
    assert rows["fair"]["left_wins"]["rate"] == 0.5 and rows["fair"]["flags"] == []


def test_length_bias_counts_how_often_the_longer_response_wins():
    campaign = make_campaign("Length", pairs=0)
    user = make_user("u")
    for i, verdict in enumerate(["b", "b", "b", "a", "tie"]):
        vote(pair(campaign, i), user, verdict)  # b is the longer text
    length = campaign_quality_report(campaign=campaign)["length_bias"]
    assert (length["successes"], length["n"], length["rate"]) == (3, 4, 0.75)


def test_per_annotator_agreement_with_majority_and_speed_flags():
    campaign = make_campaign("People", pairs=0, overlap=3)
    a, b, c = make_user("a"), make_user("b"), make_user("contrarian")
    for i in range(12):
        comparison = pair(campaign, i)
        vote(comparison, a, "a", duration_ms=20_000)
        vote(comparison, b, "a", duration_ms=22_000)
        vote(comparison, c, "b", duration_ms=1_000)
    rows = {row["username"]: row for row in campaign_quality_report(campaign=campaign)["annotators"]}
    # Leave-one-out: a and b each agree with the majority of the other two only when it exists.
    assert rows["contrarian"]["agreement_with_majority"]["rate"] == 0.0
    assert rows["a"]["agreement_with_majority"]["n"] == 0  # the others (b, contrarian) split: no majority
    assert rows["contrarian"]["median_seconds"] == 1.0
    assert any("very fast" in flag for flag in rows["contrarian"]["flags"])


def test_tuned_model_win_rate_counts_ties_as_half_with_an_interval():
    campaign = make_campaign("Tuned vs base", pairs=0)
    user = make_user("judge")
    outcomes = ["a", "a", "a", "a", "tie", "b", "both_bad", "a"]
    for i, verdict in enumerate(outcomes):
        comparison = pair(campaign, i, model_a="tuned", model_b="base")
        vote(comparison, user, verdict)
    (row,) = campaign_quality_report(campaign=campaign)["model_win_rates"]
    assert (row["model"], row["opponent"], row["comparisons"]) == ("tuned", "base", 8)
    assert (row["wins"], row["ties"], row["losses"]) == (5, 2, 1)
    assert row["win_rate"] == pytest.approx((5 + 1) / 8)
    low, high = row["ci95"]
    assert low < row["win_rate"] < high


def test_judge_agreement_and_consistency_against_humans():
    campaign = make_campaign("Judge", pairs=0, overlap=1)
    human, bot = make_user("human"), make_user("ai-judge")
    human_verdicts = ["a", "b", "a", "b", "a", "b"]
    judge_verdicts = ["a", "b", "a", "a", "tie", "b"]
    for i, (h, j) in enumerate(zip(human_verdicts, judge_verdicts, strict=True)):
        comparison = pair(campaign, i)
        vote(comparison, human, h)
        vote(comparison, bot, j, source="ai", details={"consistent": j != "tie", "unparseable": int(i == 4)})
    judge = campaign_quality_report(campaign=campaign)["judge"]
    assert judge["pairs_judged"] == 6 and judge["pairs_with_human_majority"] == 6
    assert judge["agreement_with_humans"] == pytest.approx(4 / 6)
    assert judge["consistency_rate"] == pytest.approx(5 / 6)
    assert judge["unparseable"] == 1
    assert judge["kappa_with_humans"] is not None


def test_quality_page_permissions_and_content(client, annotator_client, staff_client):
    campaign = make_campaign("Visible", pairs=1)
    url = reverse("quality:campaign_quality", args=[campaign.pk])
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and anonymous.url.startswith(reverse("login"))
    forbidden = annotator_client.get(url)
    assert forbidden.status_code == 403
    assert "This is for staff (admins) only. Ask an admin if you need access." in forbidden.content.decode()
    page = staff_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Visible: data quality" in html and "Position bias" in html and "<svg" in html


def test_quality_page_draws_agreement_by_day_and_left_wins_per_annotator(staff_client):
    campaign = make_campaign("Charted", pairs=0, overlap=2)
    users = [make_user(f"rater{i}") for i in range(2)]
    for i in range(3):
        comparison = pair(campaign, i)
        for user in users:
            vote(comparison, user, "a")
    html = staff_client.get(reverse("quality:campaign_quality", args=[campaign.pk])).content.decode()
    today = campaign_quality_report(campaign=campaign)["agreement_over_time"][0]["date"]
    assert 'aria-label="Agreement with the others, by day"' in html
    assert f"agreement at {today}: 1</title>" in html
    assert 'aria-label="Left response wins"' in html and "rater1: 100.0% n=3" in html


def test_quality_api_permissions_and_json(annotator, staff):
    campaign = make_campaign("API", pairs=1)
    url = reverse("api-campaign-quality", args=[campaign.pk])
    assert APIClient().get(url).status_code == 401
    client = APIClient()
    client.force_authenticate(annotator)
    assert client.get(url).status_code == 403
    client.force_authenticate(staff)
    body = client.get(url).json()
    assert body["campaign"]["name"] == "API"
    assert set(body) >= {"agreement", "position_bias", "length_bias", "annotators", "model_win_rates", "judge"}


def test_tuned_vs_base_from_generate_pairs_is_told_from_the_tuned_side_whichever_candidate_it_is(tmp_path):
    from annotator.services import assignment_next, judgment_submit
    from generation.run_config import RunConfig
    from generation.services import generation_run_create, generation_run_execute
    from tests.factories import TINY_MODEL
    from tests.generation.conftest import FakeBackend, write_jsonl

    campaign = make_campaign("Tuned vs base, generated", pairs=0)
    prompts = [f"Once upon a time, there was a cat number {i}" for i in range(8)]
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": p} for p in prompts])
    config = RunConfig(model=str(TINY_MODEL), model_b=str(TINY_MODEL), prompts_file=str(path))
    run = generation_run_create(campaign_name=campaign.name, config=config)
    backends = {"a": FakeBackend(model_name="tuned"), "b": FakeBackend(model_name="base")}
    generation_run_execute(run=run, backends=backends)
    # A judge who always prefers the tuned model's story, wherever it is shown.
    human = make_user("rater")
    while (assignment := assignment_next(campaign=campaign, annotator=human)) is not None:
        comparison = assignment.comparison
        tuned_is_a = comparison.candidate_a.model_name == "tuned"
        tuned_left = tuned_is_a == (assignment.shown_left == "a")
        judgment_submit(comparison=comparison, annotator=human, choice="left" if tuned_left else "right")
    (row,) = campaign_quality_report(campaign=campaign)["model_win_rates"]
    assert (row["model"], row["opponent"], row["comparisons"], row["win_rate"]) == ("tuned", "base", 8, 1.0)


def test_the_ai_verdict_counts_where_humans_only_skipped():
    campaign = make_campaign("Skipped by people", pairs=0)
    comparison = pair(campaign, 0, model_a="tuned", model_b="base")
    vote(comparison, make_user("person"), "skip")
    vote(comparison, make_user("ai-judge"), "a", source="ai")
    (row,) = campaign_quality_report(campaign=campaign)["model_win_rates"]
    assert (row["comparisons"], row["wins"]) == (1, 1)


def test_under_adaptive_overlap_agreement_reads_each_pairs_first_votes_and_settled_pairs_are_complete():
    from annotator.models import Choice
    from annotator.services import assignment_next, judgment_submit

    campaign = make_campaign("Adaptive report", pairs=0, overlap=3, min_votes=2)
    for i in range(3):
        pair(campaign, i)
    users = [make_user(f"u{i}") for i in range(3)]
    wanted = {0: ["a", "a"], 1: ["a", "b", "a"], 2: ["b", "b"]}  # pair index -> votes in order
    index = {pk: i for i, pk in enumerate(campaign.prompts.order_by("id").values_list("comparisons", flat=True))}
    for user in users:
        while (assignment := assignment_next(campaign=campaign, annotator=user)) is not None:
            votes = wanted[index[assignment.comparison_id]]
            side = votes[assignment.comparison.human_votes]
            choice = Choice.LEFT if assignment.shown_left == side else Choice.RIGHT
            judgment_submit(comparison=assignment.comparison, annotator=user, choice=choice)
    report = sql_report(campaign=campaign)
    assert report["progress"]["complete"] == 3
    assert report["progress"]["human_judgments"] == 7
    first_two = [(Counter(votes[:2]), 1) for votes in wanted.values()]
    agreement = report["agreement"]
    assert agreement["items_with_2_or_more_votes"] == 3
    assert agreement["percent_agreement"] == pytest.approx((1 + 0 + 1) / 3)
    assert agreement["krippendorff_alpha"] == pytest.approx(krippendorff_alpha_nominal(first_two))
    assert agreement["fleiss_kappa"] == pytest.approx(fleiss_kappa(first_two))


def test_the_report_adds_up_strength_edits_and_rankings_where_the_campaign_asks_for_them(staff_client):
    import itertools

    from annotator.models import Choice, Side
    from annotator.ranking import ranking_candidates, ranking_submit
    from annotator.services import assignment_next, judgment_submit

    campaign = make_campaign(
        "Richer", pairs=0, overlap=2, ask_strength=True, allow_edits=True, compare_edits=True, rank_candidates=True
    )
    pair(campaign, 1)  # two candidates: judged as a pair
    prompt, _ = prompt_get_or_create(campaign=campaign, prompt="Rank these")
    three = [candidate_create(prompt=prompt, text=f"Option {i}") for i in range(3)]
    for a, b in itertools.combinations(three, 2):
        comparison_create(candidate_a=a, candidate_b=b)
    first, second = make_user("first"), make_user("second")
    for user, strength, edited in ((first, "clearly", "Better, by first."), (second, "", "")):
        while (assignment := assignment_next(campaign=campaign, annotator=user)) is not None:
            comparison = assignment.comparison
            if comparison.prompt_id == prompt.pk and comparison.candidate_a.edited_from_id is None:
                ids = [c.pk for c in ranking_candidates(prompt_id=prompt.pk)]
                ranking_submit(comparison=comparison, annotator=user, order=ids)
                continue
            is_edit_pair = comparison.candidate_a.edited_from_id is not None
            choice = Choice.LEFT if assignment.shown_left == Side.A else Choice.RIGHT  # candidate a
            options = {} if is_edit_pair else {"strength": strength, "edited_text": edited}
            judgment_submit(comparison=comparison, annotator=user, choice=choice, **options)
    report = campaign_quality_report(campaign=campaign)  # and the oracle agrees
    richer = report["richer"]
    assert richer["strength"]["clearly"] >= 1 and richer["strength"]["not_said"] >= 1
    assert richer["edits"]["edits"] == 1
    assert richer["edits"]["edit_preferred"] == 2, "both judged the edit pair, picking the edit (candidate a)"
    assert richer["rankings"] == {"rankings": 2, "derived_judgments": 6}
    page = staff_client.get(reverse("quality:campaign_quality", args=[campaign.pk])).content.decode()
    assert "Richer judgments" in page and "Rankings: 2, from which 6 pair judgments were derived." in page


def test_no_richer_section_when_the_campaign_asks_for_none():
    campaign = make_campaign("Plain", pairs=1)
    assert campaign_quality_report(campaign=campaign)["richer"] is None
