"""Adaptive overlap through the product's queue: pairs stop collecting votes once settled."""

import pytest

from annotator.models import Choice, Comparison, Side
from annotator.services import (
    assignment_next,
    campaign_overlap_set,
    judgment_submit,
    judgment_undo,
    judgments_delete,
)
from core.errors import InputError
from rounds.options import PEOPLE
from rounds.selectors import label_progress
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db


def vote(campaign, user, verdict):
    """`user` takes the next pair and votes `verdict` (a candidate side, a or b, whatever side it is shown on)."""
    assignment = assignment_next(campaign=campaign, annotator=user)
    assert assignment is not None, f"{user} got no pair"
    choice = Choice.LEFT if assignment.shown_left == verdict else Choice.RIGHT
    return judgment_submit(comparison=assignment.comparison, annotator=user, choice=choice).judgment


@pytest.fixture
def adaptive():
    return make_campaign("Adaptive", pairs=1, overlap=3, min_votes=2)


def test_two_agreeing_votes_settle_a_pair_and_nobody_else_gets_it(adaptive):
    vote(adaptive, make_user("u1"), Side.A)
    vote(adaptive, make_user("u2"), Side.A)
    pair = Comparison.objects.get(prompt__campaign=adaptive)
    assert (pair.human_votes, pair.settled) == (2, True)
    assert assignment_next(campaign=adaptive, annotator=make_user("u3")) is None


def test_a_split_asks_a_third_annotator_and_only_one(adaptive):
    vote(adaptive, make_user("u1"), Side.A)
    vote(adaptive, make_user("u2"), Side.B)
    assert not Comparison.objects.get(prompt__campaign=adaptive).settled
    third = assignment_next(campaign=adaptive, annotator=make_user("u3"))
    assert third is not None
    assert assignment_next(campaign=adaptive, annotator=make_user("u4")) is None  # u3 holds the one extra slot
    judgment_submit(comparison=third.comparison, annotator=third.annotator, choice=Choice.LEFT)
    pair = Comparison.objects.get(prompt__campaign=adaptive)
    assert (pair.human_votes, pair.settled) == (3, True)
    assert assignment_next(campaign=adaptive, annotator=make_user("u5")) is None


def test_only_min_votes_people_hold_a_fresh_pair_at_once(adaptive):
    assert assignment_next(campaign=adaptive, annotator=make_user("u1")) is not None
    assert assignment_next(campaign=adaptive, annotator=make_user("u2")) is not None
    assert assignment_next(campaign=adaptive, annotator=make_user("u3")) is None


def test_a_fixed_overlap_campaign_never_settles_early():
    fixed = make_campaign("Fixed", pairs=1, overlap=3)
    vote(fixed, make_user("u1"), Side.A)
    vote(fixed, make_user("u2"), Side.A)
    assert not Comparison.objects.get(prompt__campaign=fixed).settled
    assert assignment_next(campaign=fixed, annotator=make_user("u3")) is not None


def test_undoing_an_agreeing_vote_unsettles_the_pair(adaptive):
    vote(adaptive, make_user("u1"), Side.A)
    second = make_user("u2")
    judgment = vote(adaptive, second, Side.A)
    judgment_undo(campaign=adaptive, annotator=second, judgment_id=judgment.pk)
    pair = Comparison.objects.get(prompt__campaign=adaptive)
    assert (pair.human_votes, pair.settled) == (1, False)


def test_deleting_judgments_reopens_a_settled_pair(adaptive):
    first = vote(adaptive, make_user("u1"), Side.A)
    vote(adaptive, make_user("u2"), Side.A)
    judgments_delete(judgments=type(first).objects.filter(pk=first.pk), deleted_by=make_user("staff", staff=True))
    assert not Comparison.objects.get(prompt__campaign=adaptive).settled
    assert assignment_next(campaign=adaptive, annotator=make_user("u3")) is not None


def test_changing_the_rule_re_decides_which_pairs_are_settled(adaptive):
    vote(adaptive, make_user("u1"), Side.A)
    vote(adaptive, make_user("u2"), Side.A)
    campaign_overlap_set(campaign=adaptive, overlap=3)  # back to a fixed overlap of 3: the pair wants a third
    assert not Comparison.objects.get(prompt__campaign=adaptive).settled
    assert assignment_next(campaign=adaptive, annotator=make_user("u3")) is not None
    campaign_overlap_set(campaign=adaptive, overlap=3, min_votes=2)
    assert Comparison.objects.get(prompt__campaign=adaptive).settled


def test_a_bad_rule_is_refused_with_what_to_change(adaptive):
    with pytest.raises(InputError, match=r"min_votes is 4: it must be 1 to overlap \(3\)"):
        campaign_overlap_set(campaign=adaptive, overlap=3, min_votes=4)
    with pytest.raises(InputError, match="min_votes is 5"):
        make_campaign("Bad", pairs=0, overlap=2, min_votes=5)
    adaptive.refresh_from_db()
    assert (adaptive.overlap, adaptive.min_votes) == (3, 2)


def test_a_round_counts_settled_pairs_as_judged_by_people(adaptive):
    vote(adaptive, make_user("u1"), Side.A)
    assert label_progress(campaign=adaptive, labeller=PEOPLE).by_people == 0
    vote(adaptive, make_user("u2"), Side.A)
    assert label_progress(campaign=adaptive, labeller=PEOPLE).by_people == 1
