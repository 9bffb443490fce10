"""What the export does with richer judgments: annotators' edits, and the pairs derived from rankings."""

import itertools

import pytest

from annotator.models import Choice, Side
from annotator.ranking import ranking_candidates, ranking_submit
from annotator.services import (
    assignment_next,
    campaign_create,
    candidate_create,
    comparison_create,
    judgment_submit,
    prompt_get_or_create,
)
from exports.services import dataset_export_create, dataset_export_run
from tests.exports.helpers import read_rows
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def run_export(campaign, out_dir, **options):
    export = dataset_export_create(campaign=campaign, options={"val_fraction": 0, **options}, out_dir=out_dir)
    export = dataset_export_run(export=export)
    assert export.status == "succeeded", export.error
    return export


def pick_a(campaign, user, **options):
    """The user takes the next pair and picks candidate a; returns the judgment result."""
    assignment = assignment_next(campaign=campaign, annotator=user)
    choice = Choice.LEFT if assignment.shown_left == Side.A else Choice.RIGHT
    return judgment_submit(comparison=assignment.comparison, annotator=user, choice=choice, **options)


def test_an_edit_pair_is_left_out_unless_asked_and_the_card_counts_it(tmp_path):
    campaign = campaign_create(name="Edits export", allow_edits=True, compare_edits=True)
    prompt, _ = prompt_get_or_create(campaign=campaign, prompt="Name a prime.")
    a, b = candidate_create(prompt=prompt, text="Nine."), candidate_create(prompt=prompt, text="Four.")
    original = comparison_create(candidate_a=a, candidate_b=b)
    editor, judge = make_user("editor"), make_user("judge")
    result = pick_a(campaign, editor, edited_text="Two.")
    assert pick_a(campaign, judge).judgment.comparison_id != original.pk  # the judge got the edit's pair
    default = run_export(campaign, tmp_path / "default")
    assert [row["comparison_id"] for row in read_rows(tmp_path / "default")] == [original.pk]
    card = (tmp_path / "default" / "README.md").read_text()
    assert (
        "pairs of an annotator's edit against the response it came from (not the model's own samples), left out | 1"
        in card
    )
    run_export(campaign, tmp_path / "with", include_edits=True)
    rows = {row["comparison_id"]: row for row in read_rows(tmp_path / "with")}
    edit_pair = next(pk for pk in rows if pk != original.pk)
    assert rows[edit_pair]["chosen_candidate_id"] == result.edit.pk
    assert (rows[edit_pair]["chosen_edited_from"], rows[edit_pair]["rejected_edited_from"]) == (a.pk, None)
    assert rows[original.pk]["chosen_edited_from"] is None
    assert default.options["include_edits"] is False


def test_ranking_pairs_all_or_best_against_worst(tmp_path):
    campaign = campaign_create(name="Ranks export", rank_candidates=True)
    prompt, _ = prompt_get_or_create(campaign=campaign, prompt="Order these.")
    three = [candidate_create(prompt=prompt, text=f"Answer {i}") for i in range(3)]
    for x, y in itertools.combinations(three, 2):
        comparison_create(candidate_a=x, candidate_b=y)
    user = make_user("ranker")
    assignment = assignment_next(campaign=campaign, annotator=user)
    best, middle, worst = [c.pk for c in ranking_candidates(prompt_id=prompt.pk)][::-1]  # the last is the best
    ranking = ranking_submit(comparison=assignment.comparison, annotator=user, order=[best, middle, worst]).ranking

    run_export(campaign, tmp_path / "all")
    rows = read_rows(tmp_path / "all")
    assert sorted((r["chosen_candidate_id"], r["rejected_candidate_id"]) for r in rows) == sorted(
        [(best, middle), (best, worst), (middle, worst)]
    )
    run_export(campaign, tmp_path / "bw", ranking_pairs="best_worst")
    rows = read_rows(tmp_path / "bw")
    assert [(r["chosen_candidate_id"], r["rejected_candidate_id"]) for r in rows] == [(best, worst)]
    assert rows[0]["ranking_ids"] == [ranking.pk], "each derived vote is traced to its ranking"
    card = (tmp_path / "bw" / "README.md").read_text()
    assert (
        "pairs with votes from rankings of three responses or more (ranking_pairs: best against worst only) | 3" in card
    )


def test_a_bad_ranking_pairs_value_is_refused_with_the_choices(tmp_path):
    from core.errors import InputError

    campaign = campaign_create(name="Bad option")
    with pytest.raises(InputError, match="ranking_pairs"):
        dataset_export_create(campaign=campaign, options={"ranking_pairs": "top3"}, out_dir=tmp_path)


def test_the_strength_of_each_vote_and_the_pairs_margin_are_exported(tmp_path):
    campaign = campaign_create(name="Strength export", overlap=3, ask_strength=True)
    prompt, _ = prompt_get_or_create(campaign=campaign, prompt="Capital of France?")
    a, b = candidate_create(prompt=prompt, text="Paris."), candidate_create(prompt=prompt, text="Lyon.")
    comparison_create(candidate_a=a, candidate_b=b)
    pick_a(campaign, make_user("u1"), strength="clearly")
    pick_a(campaign, make_user("u2"), strength="slightly")
    assignment = assignment_next(campaign=campaign, annotator=make_user("u3"))
    choice = Choice.RIGHT if assignment.shown_left == Side.A else Choice.LEFT  # u3 prefers b, no strength
    judgment_submit(comparison=assignment.comparison, annotator=assignment.annotator, choice=choice)
    run_export(campaign, tmp_path)
    (row,) = read_rows(tmp_path)
    assert row["chosen_candidate_id"] == a.pk
    assert row["annotator_votes"] == ["chosen", "chosen", "rejected"]
    assert row["strength"] == ["clearly", "slightly", ""]
    assert row["margin"] == pytest.approx((1 + 0.5 - 1) / 3)
