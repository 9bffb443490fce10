from datetime import UTC, datetime

import pytest

from exports.aggregation import Drop, Vote, pair_decide, votes_counted

AT = datetime(2026, 1, 1, tzinfo=UTC)


def votes(*verdicts: str, source: str = "human", first_id: int = 1) -> list[Vote]:
    return [Vote(verdict, source, first_id + i, AT) for i, verdict in enumerate(verdicts)]


def test_unanimous_pair_is_won_with_full_agreement():
    decision = pair_decide(votes("b", "b", "b"), judges="humans")
    assert (decision.winner, decision.agreement, decision.dropped) == ("b", 1.0, None)


def test_majority_wins_and_agreement_is_its_share_of_the_votes():
    decision = pair_decide(votes("a", "a", "b"), judges="humans")
    assert decision.winner == "a"
    assert decision.agreement == pytest.approx(2 / 3)


def test_tie_and_both_bad_votes_count_against_agreement_but_a_plurality_still_wins():
    decision = pair_decide(votes("a", "a", "tie", "both_bad"), judges="humans")
    assert decision.winner == "a"
    assert decision.agreement == 0.5
    assert len(decision.votes) == 4


def test_skips_are_ignored_entirely():
    decision = pair_decide(votes("skip", "b", "skip"), judges="humans")
    assert decision.winner == "b"
    assert decision.agreement == 1.0
    assert [vote.verdict for vote in decision.votes] == ["b"]


def test_only_skips_means_no_votes():
    assert pair_decide(votes("skip", "skip"), judges="humans").dropped == Drop.NO_VOTES


def test_even_split_between_a_and_b_has_no_majority():
    decision = pair_decide(votes("a", "b"), judges="humans")
    assert (decision.winner, decision.majority, decision.dropped) == (None, None, Drop.NO_MAJORITY)


def test_tie_majority_is_dropped_as_tie():
    decision = pair_decide(votes("tie", "tie", "a"), judges="humans")
    assert (decision.winner, decision.dropped) == (None, Drop.TIE)


def test_both_bad_majority_is_dropped_as_both_bad():
    assert pair_decide(votes("both_bad"), judges="humans").dropped == Drop.BOTH_BAD


def test_min_votes_drops_pairs_with_fewer_counted_votes_skips_not_counted():
    assert pair_decide(votes("a", "skip"), judges="humans", min_votes=2).dropped == Drop.TOO_FEW_VOTES
    assert pair_decide(votes("a", "a"), judges="humans", min_votes=2).winner == "a"


def test_min_agreement_drops_weak_majorities_and_keeps_exactly_equal_ones():
    assert pair_decide(votes("a", "a", "b"), judges="humans", min_agreement=0.7).dropped == Drop.LOW_AGREEMENT
    assert pair_decide(votes("a", "b", "a", "b", "a"), judges="humans", min_agreement=0.6).winner == "a"


def test_too_few_votes_is_reported_before_the_other_reasons():
    assert pair_decide(votes("tie"), judges="humans", min_votes=2).dropped == Drop.TOO_FEW_VOTES


def test_judges_humans_ignores_ai_votes():
    mixed = votes("a", source="human") + votes("b", "b", source="ai", first_id=10)
    assert pair_decide(mixed, judges="humans").winner == "a"


def test_judges_ai_ignores_human_votes():
    mixed = votes("a", source="human") + votes("b", "b", source="ai", first_id=10)
    decision = pair_decide(mixed, judges="ai")
    assert decision.winner == "b"
    assert {vote.source for vote in decision.votes} == {"ai"}


def test_judges_both_uses_ai_only_where_no_human_judged():
    human_and_ai = votes("a", source="human") + votes("b", "b", source="ai", first_id=10)
    ai_only = votes("b", source="ai", first_id=10)
    assert pair_decide(human_and_ai, judges="both").winner == "a"
    assert pair_decide(ai_only, judges="both").winner == "b"


def test_judges_both_treats_a_human_skip_as_not_judged():
    skipped_by_human = votes("skip", source="human") + votes("b", source="ai", first_id=10)
    assert pair_decide(skipped_by_human, judges="both").winner == "b"


def test_unknown_judges_value_is_refused():
    with pytest.raises(ValueError, match="judges is 'robots'"):
        votes_counted(votes("a"), judges="robots")
