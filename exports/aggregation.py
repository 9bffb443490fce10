"""From the vote counts of pairs to decisions: which candidate the judges preferred, and how surely.

Pure functions over arrays (no database): the database counts each pair's votes in one grouped query
(`streams.campaign_tallies`), and `pairs_decide` decides a whole batch of pairs at once, one entry per pair.

- Which votes count (`counted_sources`): skips never count; `judges` picks human votes, AI votes, or both,
  where "both" means the AI votes only for a pair that has no human vote (the judge where humans are absent).
- Majority: the verdict with the most counted votes, if no other verdict has as many (a plurality); tie and
  both_bad are verdicts like a and b, so [a, a, tie] is "a" with agreement 2/3.
- Agreement: the share of counted votes that agree with the majority.
- A pair is exported when its majority is a or b and it passes min_votes and min_agreement; otherwise it is
  dropped for the first reason that applies, in the order of `Drop`.
"""

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from annotator.models import JudgeSource, Verdict

# The verdicts that count, in the column order of a tally (skips are never counted).
VERDICTS = (Verdict.A, Verdict.B, Verdict.TIE, Verdict.BOTH_BAD)
SOURCES_FOR_JUDGES = {
    "humans": (JudgeSource.HUMAN,),
    "ai": (JudgeSource.AI,),
    "both": (JudgeSource.HUMAN, JudgeSource.AI),
}


class Drop(StrEnum):
    """Why a pair is not exported, in the order the reasons are checked."""

    NO_VOTES = "no_votes"  # nobody of the selected judges judged it (or they all skipped)
    TOO_FEW_VOTES = "too_few_votes"  # fewer counted votes than min_votes
    NO_MAJORITY = "no_majority"  # two or more verdicts share the most votes (e.g. one a, one b)
    TIE = "tie"  # the majority says tie: DPO needs a preferred response
    BOTH_BAD = "both_bad"  # the majority says both are bad: neither may be "chosen"
    LOW_AGREEMENT = "low_agreement"  # the majority's share is under min_agreement


DROPS = tuple(Drop)
KEPT = len(DROPS)  # the code of an exported pair in `Decisions.dropped`

DROP_HELP = {
    Drop.NO_VOTES: "have no vote from the selected judges (not judged yet, only skipped, or judged by others)",
    Drop.TOO_FEW_VOTES: "have fewer votes than min_votes",
    Drop.NO_MAJORITY: "have no majority (as many votes for two verdicts)",
    Drop.TIE: "were judged a tie",
    Drop.BOTH_BAD: "were judged both bad",
    Drop.LOW_AGREEMENT: "have a majority under min_agreement",
}


@dataclass(frozen=True)
class Decisions:
    """The decisions on a batch of pairs, one entry per pair in each array."""

    source: np.ndarray  # index into SOURCES_FOR_JUDGES[judges]: whose votes counted
    votes: np.ndarray  # counted votes
    majority: np.ndarray  # index into VERDICTS of the plurality verdict, -1 without a unique one
    agreement: np.ndarray  # share of counted votes equal to the majority; 0.0 without a majority
    dropped: np.ndarray  # index into DROPS of the reason, KEPT when the pair is exported

    @property
    def kept(self) -> np.ndarray:
        """Which pairs are exported: their majority is a or b and they pass the filters."""
        return self.dropped == KEPT


def counted_sources(tallies: np.ndarray, *, judges: str) -> np.ndarray:
    """Whose votes count per pair, as an index into SOURCES_FOR_JUDGES[judges]: the only source for humans or ai;
    for both, the humans where they cast a (non-skip) vote, else the AI.

    `tallies` has shape (pairs, len(sources), len(VERDICTS)): the counted votes per source and verdict."""
    if judges not in SOURCES_FOR_JUDGES:
        raise ValueError(f"judges is {judges!r}: use humans, ai or both")
    if judges != "both":
        return np.zeros(len(tallies), dtype=np.intp)
    return np.where(tallies[:, 0].sum(axis=1) > 0, 0, 1)


def pairs_decide(tallies: np.ndarray, *, judges: str, min_votes: int = 1, min_agreement: float = 0.0) -> Decisions:
    """Decide every pair of a batch from its tally (see `counted_sources` for the shape)."""
    source = counted_sources(tallies, judges=judges)
    counts = tallies[np.arange(len(tallies)), source]  # (pairs, verdicts): the votes that count
    votes = counts.sum(axis=1)
    ranked = np.sort(counts, axis=1)
    top, runner_up = ranked[:, -1], ranked[:, -2]
    unique = top > runner_up
    majority = np.where(unique, counts.argmax(axis=1), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        agreement = np.where(unique, top / np.maximum(votes, 1), 0.0)
    dropped = np.select(
        [
            votes == 0,
            votes < min_votes,
            ~unique,
            majority == VERDICTS.index(Verdict.TIE),
            majority == VERDICTS.index(Verdict.BOTH_BAD),
            agreement < min_agreement,
        ],
        range(len(DROPS)),
        default=KEPT,
    )
    return Decisions(source=source, votes=votes, majority=majority, agreement=agreement, dropped=dropped)
