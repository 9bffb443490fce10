import numpy as np
import pytest

from exports.aggregation import DROPS, KEPT, VERDICTS, Drop, counted_sources, pairs_decide

CODES = {"a": "a", "b": "b", "t": "tie", "B": "both_bad"}  # skips are never counted, so never in a tally


def tallies(*pairs: str | tuple[str, str]) -> np.ndarray:
    """Counted votes per pair as the database counts them: (human, ai) verdicts, one letter per vote."""
    counts = np.zeros((len(pairs), 2, len(VERDICTS)), dtype=np.int64)
    for row, pair in enumerate(pairs):
        for source, letters in enumerate((pair, "") if isinstance(pair, str) else pair):
            for letter in letters:
                counts[row, source, VERDICTS.index(CODES[letter])] += 1
    return counts


def decide(*pairs: str | tuple[str, str], judges: str = "humans", **filters) -> list[tuple]:
    """(winner, agreement, drop reason) per pair."""
    counts = tallies(*pairs)
    if judges != "both":
        counts = counts[:, [0 if judges == "humans" else 1]]
    decisions = pairs_decide(counts, judges=judges, **filters)
    return [
        (
            VERDICTS[majority] if code == KEPT else None,
            pytest.approx(agreement),
            None if code == KEPT else DROPS[code],
        )
        for majority, agreement, code in zip(decisions.majority, decisions.agreement, decisions.dropped, strict=True)
    ]


def test_unanimous_pair_is_won_with_full_agreement():
    assert decide("bbb") == [("b", 1.0, None)]


def test_majority_wins_and_agreement_is_its_share_of_the_votes():
    assert decide("aab") == [("a", 2 / 3, None)]


def test_tie_and_both_bad_votes_count_against_agreement_but_a_plurality_still_wins():
    decisions = pairs_decide(tallies("aatB")[:, :1], judges="humans")
    assert (decisions.votes[0], decisions.agreement[0], decisions.kept[0]) == (4, 0.5, True)


def test_no_counted_vote_means_no_votes():
    assert decide("") == [(None, 0.0, Drop.NO_VOTES)]


def test_even_split_between_a_and_b_has_no_majority():
    assert decide("ab") == [(None, 0.0, Drop.NO_MAJORITY)]


def test_tie_majority_is_dropped_as_tie():
    assert decide("tta") == [(None, 2 / 3, Drop.TIE)]


def test_both_bad_majority_is_dropped_as_both_bad():
    assert decide("B") == [(None, 1.0, Drop.BOTH_BAD)]


def test_min_votes_drops_pairs_with_fewer_counted_votes():
    assert decide("a", "aa", min_votes=2) == [(None, 1.0, Drop.TOO_FEW_VOTES), ("a", 1.0, None)]


def test_min_agreement_drops_weak_majorities_and_keeps_exactly_equal_ones():
    assert decide("aab", min_agreement=0.7) == [(None, 2 / 3, Drop.LOW_AGREEMENT)]
    assert decide("ababa", min_agreement=0.6) == [("a", 0.6, None)]


def test_too_few_votes_is_reported_before_the_other_reasons():
    assert decide("t", "ab", min_votes=2) == [(None, 1.0, Drop.TOO_FEW_VOTES), (None, 0.0, Drop.NO_MAJORITY)]


def test_a_batch_is_decided_pair_by_pair():
    assert decide("a", "bb", "ab", "", "tB") == [
        ("a", 1.0, None),
        ("b", 1.0, None),
        (None, 0.0, Drop.NO_MAJORITY),
        (None, 0.0, Drop.NO_VOTES),
        (None, 0.0, Drop.NO_MAJORITY),
    ]


def test_judges_humans_or_ai_count_only_their_votes():
    assert decide(("a", "bb"), judges="humans") == [("a", 1.0, None)]
    assert decide(("a", "bb"), judges="ai") == [("b", 1.0, None)]


def test_judges_both_uses_ai_only_where_no_human_cast_a_vote():
    assert decide(("a", "bb"), ("", "b"), judges="both") == [("a", 1.0, None), ("b", 1.0, None)]
    assert counted_sources(tallies(("a", "bb"), ("", "b")), judges="both").tolist() == [0, 1]


def test_unknown_judges_value_is_refused():
    with pytest.raises(ValueError, match="judges is 'robots'"):
        counted_sources(tallies("a"), judges="robots")
