"""exports/streams.py: the vote tallies the database counts, the counted votes and the texts of a batch."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotator.models import Candidate, Comparison, JudgeSource, Judgment, Side
from exports.aggregation import VERDICTS
from exports.streams import Tallies, campaign_tallies, pair_texts_for, read_ahead
from tests.factories import add_pair, make_campaign, make_user

pytestmark = pytest.mark.django_db

AT = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


def record(comparison: Comparison, judge, verdict: str, source: str = JudgeSource.HUMAN) -> Judgment:
    return Judgment.objects.create(
        comparison=comparison, annotator=judge, verdict=verdict, shown_left=Side.A, source=source
    )


def test_one_grouped_query_counts_each_pairs_votes_by_source_and_verdict_skips_left_out():
    campaign = make_campaign("Tally", pairs=4)
    first, second, third, _unjudged = Comparison.objects.filter(prompt__campaign=campaign).order_by("id")
    people, robot = [make_user(f"p{i}") for i in range(3)], make_user("robot")
    for person, verdict in zip(people, ["a", "tie", "skip"], strict=True):
        record(first, person, verdict)
    record(first, robot, "b", JudgeSource.AI)
    record(second, people[0], "skip")  # judged, but no vote counts
    record(third, robot, "both_bad", JudgeSource.AI)
    with CaptureQueriesContext(connection) as queries:
        (tallies,) = list(campaign_tallies(campaign=campaign, judges="both", chunk_size=10))
    assert len(queries) == 1
    assert tallies.comparison_ids.tolist() == [first.pk, second.pk, third.pk]  # every pair judged, skips too
    assert tallies.sources == ("human", "ai")
    expected = np.zeros((3, 2, len(VERDICTS)), dtype=np.int64)
    expected[0, 0, VERDICTS.index("a")] = expected[0, 0, VERDICTS.index("tie")] = 1
    expected[0, 1, VERDICTS.index("b")] = 1
    expected[2, 1, VERDICTS.index("both_bad")] = 1
    assert (tallies.counts == expected).all()
    (humans,) = list(campaign_tallies(campaign=campaign, judges="humans", chunk_size=10))
    assert humans.comparison_ids.tolist() == [first.pk, second.pk] and humans.counts.shape == (2, 1, len(VERDICTS))


def test_tallies_come_in_batches_of_chunk_size_pairs_by_comparison_id():
    campaign = make_campaign("Batches", pairs=7)
    judge = make_user("judge")
    for comparison in Comparison.objects.filter(prompt__campaign=campaign):
        record(comparison, judge, "a")
    batches = list(campaign_tallies(campaign=campaign, judges="humans", chunk_size=3))
    assert [len(batch) for batch in batches] == [3, 3, 1]
    ids = np.concatenate([batch.comparison_ids for batch in batches])
    assert ids.tolist() == sorted(Comparison.objects.filter(prompt__campaign=campaign).values_list("pk", flat=True))


def test_counted_votes_are_those_of_the_counted_source_in_the_order_they_were_recorded():
    campaign = make_campaign("Order", pairs=2)
    human_judged, ai_only = Comparison.objects.filter(prompt__campaign=campaign).order_by("id")
    people, robot = [make_user(f"p{i}") for i in range(3)], make_user("robot")
    recorded = [record(human_judged, people[0], "b"), record(human_judged, robot, "a", JudgeSource.AI)]
    recorded += [record(human_judged, people[1], "skip"), record(human_judged, people[2], "a")]
    record(ai_only, robot, "tie", JudgeSource.AI)
    # Cast earlier than the votes recorded before it, and on a whole second (stored without a fraction).
    Judgment.objects.filter(pk=recorded[3].pk).update(created_at=AT - timedelta(days=1))
    Judgment.objects.filter(pk=recorded[0].pk).update(created_at=AT)
    (tallies,) = list(campaign_tallies(campaign=campaign, judges="both", chunk_size=10))
    votes = tallies.votes(np.array([0, 1]), source=np.array([0, 1]))
    assert votes.annotator_ids.to_pylist() == [[people[0].pk, people[2].pk], [robot.pk]]
    assert votes.verdicts.to_pylist() == [["b", "a"], ["tie"]]
    ai_time = Judgment.objects.get(comparison=ai_only).created_at
    assert votes.judged_at.to_pylist() == [[AT, AT - timedelta(days=1)], [ai_time]]


def test_pair_texts_are_decoded_a_batch_at_a_time_as_they_are_stored():
    campaign = make_campaign("Texts", pairs=0)
    turns = [{"role": "user", "content": 'Say "hi" \\ 🙂\n'}, {"role": "assistant", "content": "Ünï"},
             {"role": "user", "content": "¿y?"}]  # fmt: skip
    first = add_pair(campaign, turns, "Réponse", "Antwort", system="Be kind.")
    second = add_pair(campaign, "Plain", "x", "y")
    Candidate.objects.filter(pk=first.candidate_a_id).update(sampling_params={"top_p": 0.9, "n": [1, None]}, seed=2**62)
    table = pair_texts_for(comparison_ids=[second.pk, first.pk])
    assert table["comparison_id"].to_pylist() == [first.pk, second.pk]  # by comparison id
    rows = table.to_pylist()
    assert rows[0]["messages"] == turns and rows[0]["system"] == "Be kind."
    assert rows[1]["messages"] == [{"role": "user", "content": "Plain"}]
    assert (rows[0]["a_text"], rows[0]["b_text"], rows[0]["a_seed"], rows[0]["b_seed"]) == (
        "Réponse",
        "Antwort",
        2**62,
        None,
    )
    assert json.loads(rows[0]["a_sampling_params"]) == {"top_p": 0.9, "n": [1, None]}
    assert rows[0]["pair_created_at"] == Comparison.objects.get(pk=first.pk).created_at
    assert pair_texts_for(comparison_ids=[]).num_rows == 0


def test_counted_votes_are_put_in_recorded_order_whatever_order_the_database_joined_them_in():
    offset = "+00" if connection.features.supports_timezones else ""  # as each database writes times as text
    votes = [[(9, 1, "a", "00:00:09", "clearly", ""), (4, 2, "b", "00:00:04.5", "", "12"),
              (7, 3, "tie", "00:00:07", "", "")], [(3, 4, "b", "00:00:03", "slightly", "")]]  # fmt: skip
    joined = [",".join(f"{id_}|{judge}|{verdict}|2026-01-01 {time}{offset}|{strength}|{ranking}"
                       for id_, judge, verdict, time, strength, ranking in pair) for pair in votes]  # fmt: skip
    tallies = Tallies.from_joined(comparison_ids=np.array([1, 2]), sources=("human",), joined=pa.array(joined))
    assert tallies.counts[:, 0].tolist() == [[1, 1, 1, 0], [0, 1, 0, 0]]  # a, b, tie, both_bad
    votes = tallies.votes(np.array([0, 1]), source=np.array([0, 0]))
    assert votes.annotator_ids.to_pylist() == [[2, 3, 1], [4]]  # judgments 4, 7, 9
    assert votes.verdicts.to_pylist() == [["b", "tie", "a"], ["b"]]
    assert votes.strengths.to_pylist() == [["", "", "clearly"], ["slightly"]]
    assert votes.ranking_ids.to_pylist() == [[12, None, None], [None]]
    assert votes.judged_at.to_pylist()[0] == [
        datetime(2026, 1, 1, 0, 0, 4, 500000, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 9, tzinfo=UTC),
    ]


def test_reads_ahead_see_the_callers_transaction_and_hand_over_every_batch_in_order():
    campaign = make_campaign("Ahead", pairs=3)  # made in this test's transaction, not committed

    def batches():
        for comparison in Comparison.objects.filter(prompt__campaign=campaign).order_by("id"):
            yield comparison.pk

    with read_ahead(batches()) as handed:
        assert list(handed) == sorted(Comparison.objects.filter(prompt__campaign=campaign).values_list("pk", flat=True))


def test_an_error_while_reading_ahead_is_raised_in_the_caller():
    def batches():
        yield 1
        raise ValueError("disk on fire")

    with pytest.raises(ValueError, match="disk on fire"), read_ahead(batches()) as handed:
        assert next(handed) == 1
        next(handed)


def test_leaving_early_stops_the_reads_and_closes_them():
    closed = []

    def batches():
        try:
            yield from range(10**9)
        finally:
            closed.append(True)

    with read_ahead(batches()) as handed:
        assert [next(handed), next(handed)] == [0, 1]
    assert closed == [True]
