"""How many people's votes a pair needs: a fixed overlap, or adaptive overlap that stops on settled pairs.

Fixed overlap asks every pair for `overlap` votes. Adaptive overlap asks for `min_votes` first, then one more
vote at a time while the pair is not settled, up to `overlap` (the maximum). A pair is settled when its leading
verdict has `settle_margin` votes more than any other verdict: with min 2, max 3 and margin 2, two agreeing
votes settle a pair, and a third annotator is asked only when the first two disagree.

This is a sequential test in the spirit of "stop when one side leads by k" (Wald's SPRT for a binomial with
symmetric error rates reduces to a lead of k votes): with annotators right with probability p, a lead of k
gives the leader's side a posterior of p^k / (p^k + (1 - p)^k) whatever the number of votes.

Pure functions: the judgment services call `pair_settled` under the pair's row lock and store the answer on
the comparison, so the queue filters on a column instead of counting votes.
"""

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class OverlapRule:
    """A campaign's rule: `min_votes` is None for fixed overlap (every pair gets `max_votes`)."""

    max_votes: int
    min_votes: int | None = None
    settle_margin: int = 2

    @property
    def adaptive(self) -> bool:
        return self.min_votes is not None and self.min_votes < self.max_votes

    def check(self) -> list[str]:
        """What is wrong with the rule, in words a campaign admin can act on; empty when it is valid."""
        problems = []
        if self.max_votes < 1:
            problems.append(f"overlap is {self.max_votes}: each pair needs at least 1 annotator.")
        if self.min_votes is not None and not 1 <= self.min_votes <= self.max_votes:
            problems.append(
                f"min_votes is {self.min_votes}: it must be 1 to overlap ({self.max_votes}), or empty for a fixed "
                "overlap."
            )
        if self.settle_margin < 1:
            problems.append(f"settle_margin is {self.settle_margin}: a pair settles on a lead of at least 1 vote.")
        return problems


def pair_settled(rule: OverlapRule, verdict_counts: Iterable[int]) -> bool:
    """Whether a pair with these counts of people's non-skip votes per verdict (a, b, tie, both bad) needs no
    more votes: it has `max_votes`, or (adaptive) it has `min_votes` and its leader leads by `settle_margin`."""
    counts = sorted(verdict_counts, reverse=True)
    votes = sum(counts)
    if votes >= rule.max_votes:
        return True
    if not rule.adaptive or votes < rule.min_votes:
        return False
    lead = counts[0] - (counts[1] if len(counts) > 1 else 0)
    return lead >= rule.settle_margin


def slots_open(rule: OverlapRule, *, votes: int, settled: bool) -> int:
    """How many people may hold or judge a pair at once beyond its `votes`: up to the fixed overlap; adaptive,
    up to `min_votes` at first, then one at a time (a second extra vote is asked only once the first is in)."""
    if settled or votes >= rule.max_votes:
        return 0
    if not rule.adaptive:
        return rule.max_votes - votes
    return max(rule.min_votes, votes + 1) - votes
