"""From the judgments of one pair to one decision: which candidate the judges preferred, and how surely.

Pure functions over small values (no database): the export streams votes through `pair_decide`.

- Which votes count (`votes_counted`): skips never count; `judges` picks human votes, AI votes, or both,
  where "both" means the AI votes only for a pair that has no human vote (the judge where humans are absent).
- Majority (`pair_decide`): the verdict with the most counted votes, if no other verdict has as many
  (a plurality); tie and both_bad are verdicts like a and b, so [a, a, tie] is "a" with agreement 2/3.
- Agreement: the share of counted votes that agree with the majority.
- A pair is exported when its majority is a or b and it passes min_votes and min_agreement; otherwise it is
  dropped for the first reason that applies, in the order of `Drop`.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from annotator.models import JudgeSource, Verdict


@dataclass(frozen=True, slots=True)
class Vote:
    verdict: str  # a Verdict value, on the fixed candidates a/b
    source: str  # a JudgeSource value
    annotator_id: int
    created_at: datetime


class Drop(StrEnum):
    """Why a pair is not exported, in the order the reasons are checked."""

    NO_VOTES = "no_votes"  # nobody of the selected judges judged it (or they all skipped)
    TOO_FEW_VOTES = "too_few_votes"  # fewer counted votes than min_votes
    NO_MAJORITY = "no_majority"  # two or more verdicts share the most votes (e.g. one a, one b)
    TIE = "tie"  # the majority says tie: DPO needs a preferred response
    BOTH_BAD = "both_bad"  # the majority says both are bad: neither may be "chosen"
    LOW_AGREEMENT = "low_agreement"  # the majority's share is under min_agreement


DROP_HELP = {
    Drop.NO_VOTES: "have no vote from the selected judges (not judged yet, only skipped, or judged by others)",
    Drop.TOO_FEW_VOTES: "have fewer votes than min_votes",
    Drop.NO_MAJORITY: "have no majority (as many votes for two verdicts)",
    Drop.TIE: "were judged a tie",
    Drop.BOTH_BAD: "were judged both bad",
    Drop.LOW_AGREEMENT: "have a majority under min_agreement",
}


@dataclass(frozen=True, slots=True)
class Decision:
    votes: tuple[Vote, ...]  # the counted votes, in the order given
    majority: str | None  # the plurality verdict, None without a unique one
    agreement: float  # share of counted votes equal to the majority; 0.0 without a majority
    dropped: Drop | None

    @property
    def winner(self) -> str | None:
        """'a' or 'b' when the pair is exported, else None."""
        return None if self.dropped else self.majority


def votes_counted(votes: Sequence[Vote], *, judges: str) -> list[Vote]:
    """The votes that count for `judges` (humans, ai or both), skips left out."""
    cast = [vote for vote in votes if vote.verdict != Verdict.SKIP]
    human = [vote for vote in cast if vote.source == JudgeSource.HUMAN]
    ai = [vote for vote in cast if vote.source == JudgeSource.AI]
    if judges == "humans":
        return human
    if judges == "ai":
        return ai
    if judges == "both":
        return human or ai
    raise ValueError(f"judges is {judges!r}: use humans, ai or both")


def pair_decide(votes: Sequence[Vote], *, judges: str, min_votes: int = 1, min_agreement: float = 0.0) -> Decision:
    counted = tuple(votes_counted(votes, judges=judges))
    if not counted:
        return Decision(counted, None, 0.0, Drop.NO_VOTES)
    tally = Counter(vote.verdict for vote in counted).most_common()
    top_verdict, top_count = tally[0]
    unique = len(tally) == 1 or tally[1][1] < top_count
    majority = top_verdict if unique else None
    agreement = top_count / len(counted) if unique else 0.0
    if len(counted) < min_votes:
        dropped: Drop | None = Drop.TOO_FEW_VOTES
    elif majority is None:
        dropped = Drop.NO_MAJORITY
    elif majority == Verdict.TIE:
        dropped = Drop.TIE
    elif majority == Verdict.BOTH_BAD:
        dropped = Drop.BOTH_BAD
    elif agreement < min_agreement:
        dropped = Drop.LOW_AGREEMENT
    else:
        dropped = None
    return Decision(counted, majority, agreement, dropped)
