"""Many annotators at once, in real threads with their own database connections.

Runs on whichever database the suite runs on: SQLite by default (IMMEDIATE transactions serialise the
writers) and PostgreSQL in CI (row locks with SKIP LOCKED). Run it on PostgreSQL with
`DATABASE_URL=postgres://... make test-postgres`.
"""

import threading
import time
from collections import Counter

import pytest
from django.db import connection

from annotator.models import Choice, Judgment, Verdict, WithdrawnJudgment
from annotator.selectors import annotator_waiting_for
from annotator.services import assignment_next, judgment_submit, judgment_undo
from tests.factories import make_campaign, make_user

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]


def run_in_threads(target, args_list):
    errors: list[BaseException] = []

    def wrapped(*args):
        try:
            target(*args)
        except BaseException as error:  # re-raised in the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=args) for args in args_list]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_parallel_annotators_fill_every_pair_exactly_to_overlap(db):
    campaign = make_campaign("Busy", pairs=40, overlap=2)
    users = [make_user(f"annotator{i}") for i in range(8)]
    handed = Counter()
    lock = threading.Lock()

    def annotate(index, user):
        while True:
            assignment = assignment_next(campaign=campaign, annotator=user)
            if assignment is None:
                # Nothing open, but a pair someone else holds comes back if they skip it: ask again, as the
                # page does while it says so, and stop only when nothing can come back.
                if annotator_waiting_for(campaign=campaign, annotator=user) is None:
                    return
                time.sleep(0.01)
                continue
            comparison = assignment.comparison
            with lock:
                handed[(comparison.pk, user.pk)] += 1
            choice = Choice.SKIP if (comparison.pk + index) % 10 == 0 else [Choice.LEFT, Choice.RIGHT][index % 2]
            judgment_submit(comparison=comparison, annotator=user, choice=choice)
            # A retried submit (double click, flaky network) must not add a judgment.
            judgment_submit(comparison=comparison, annotator=user, choice=choice)

    run_in_threads(annotate, list(enumerate(users)))

    counted = Counter(Judgment.objects.exclude(verdict=Verdict.SKIP).values_list("comparison_id", flat=True))
    comparison_ids = set(campaign.prompts.values_list("comparisons__id", flat=True))
    assert set(counted) == comparison_ids, "no pair lost"
    assert set(counted.values()) == {2}, "every pair judged by exactly 2 annotators"
    assert max(handed.values()) == 1, "nobody was handed the same pair twice"
    pairs = list(Judgment.objects.values_list("comparison_id", "annotator_id"))
    assert len(pairs) == len(set(pairs)), "no duplicate judgment"


def test_parallel_annotators_under_adaptive_overlap_stop_each_pair_when_settled(db):
    campaign = make_campaign("Adaptive busy", pairs=30, overlap=3, min_votes=2)
    users = [make_user(f"annotator{i}") for i in range(8)]

    def annotate(index, user):
        while True:
            assignment = assignment_next(campaign=campaign, annotator=user)
            if assignment is None:
                if annotator_waiting_for(campaign=campaign, annotator=user) is None:
                    return
                time.sleep(0.01)
                continue
            # Half the annotators always pick candidate a, half candidate b: who meets whom decides the splits.
            side = "a" if index % 2 == 0 else "b"
            choice = Choice.LEFT if assignment.shown_left == side else Choice.RIGHT
            judgment_submit(comparison=assignment.comparison, annotator=user, choice=choice)

    run_in_threads(annotate, list(enumerate(users)))

    votes: dict[int, list[str]] = {}
    for comparison_id, verdict in Judgment.objects.order_by("created_at", "id").values_list("comparison_id", "verdict"):
        votes.setdefault(comparison_id, []).append(verdict)
    assert len(votes) == 30, "no pair lost"
    for comparison_id, verdicts in votes.items():
        if verdicts[0] == verdicts[1]:
            assert len(verdicts) == 2, f"pair {comparison_id} was settled by two agreeing votes, then got {verdicts}"
        else:
            assert len(verdicts) == 3, f"pair {comparison_id} was split after two votes and needed one more: {verdicts}"
    pairs = list(Judgment.objects.values_list("comparison_id", "annotator_id"))
    assert len(pairs) == len(set(pairs)), "no duplicate judgment"


def test_the_last_open_slot_goes_to_exactly_one_of_many_simultaneous_annotators(db):
    campaign = make_campaign("Race", pairs=1, overlap=2)
    first = make_user("first")
    assert assignment_next(campaign=campaign, annotator=first) is not None
    users = [make_user(f"racer{i}") for i in range(10)]
    start = threading.Barrier(len(users))
    winners = []

    def race(user):
        start.wait()
        if assignment_next(campaign=campaign, annotator=user) is not None:
            winners.append(user.pk)

    run_in_threads(race, [(user,) for user in users])
    assert len(winners) == 1


def test_simultaneous_undos_of_one_judgment_take_back_that_judgment_only(db):
    campaign = make_campaign("Double click", pairs=2, overlap=1)
    user = make_user("clicker")
    for _ in range(2):
        assignment = assignment_next(campaign=campaign, annotator=user)
        last = judgment_submit(comparison=assignment.comparison, annotator=user, choice=Choice.LEFT).judgment
    start = threading.Barrier(6)
    fresh = []

    def undo():
        start.wait()
        fresh.append(judgment_undo(campaign=campaign, annotator=user, judgment_id=last.pk).created)

    run_in_threads(undo, [() for _ in range(6)])
    assert sorted(fresh) == [False] * 5 + [True]
    assert list(WithdrawnJudgment.objects.values_list("pk", flat=True)) == [last.pk]
    assert Judgment.objects.filter(annotator=user).count() == 1
    assert sorted(campaign.prompts.values_list("comparisons__human_votes", flat=True)) == [0, 1]
