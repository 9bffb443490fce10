"""The judge gate: whether an AI judge's verdicts may stand in for people's in an export.

A campaign that audits its judge (`judge_audit_size` > 0) has a random sample of each judge's pairs served to
people first (quality.services.judge_audit_sample_draw). On that sample the judge's verdicts are compared with
the people's, and an export with `judges` ai or both counts the judge's verdicts only if every judge whose
verdicts it would count clears three thresholds (settings, docs/judge.md):

- evidence: at least JUDGE_GATE_MIN_PAIRS audit pairs carry both the judge's verdict and a human verdict;
- agreement: Cohen's kappa between the two over those pairs is at least JUDGE_GATE_MIN_KAPPA;
- consistency: over all the judge's pairs in the campaign whose two orders could both be read, the share that got
  the same verdict in both orders is at least JUDGE_GATE_MIN_CONSISTENCY.

What is compared, per audit pair:
- the human verdict is the majority of people's counted (non-skip) votes, each vote first read as a preference:
  a, b, or neither (tie and both bad alike: no side is preferred, and a DPO row needs one). A pair whose votes
  split evenly between the leading preferences has no human verdict yet: it needs another vote. A pair without
  counted votes needs its first.
- the judge's verdict is its recorded one, read the same way: an inconsistent pair (the orders disagreed) was
  recorded as a tie, so it counts as neither, which is what the judge's label says of it.
- kappa is over the three categories a, b, neither. It is undefined when both sides only ever said one and the
  same category (chance agreement is 1): the gate then refuses, as it would for too few pairs.
"""

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from annotator.models import Campaign, Verdict
from quality.selectors import JudgeAuditCounts, campaign_judge_audits
from quality.stats import Tally, cohen_kappa, majority

NEITHER = "neither"
# A figure this close under its threshold clears it: kappa 1/2 comes out of floating point as 0.49999999999999994.
ROUNDING = 1e-9
PREFERENCES = (Verdict.A.value, Verdict.B.value, NEITHER)
_PREFERENCE = {Verdict.A: Verdict.A.value, Verdict.B: Verdict.B.value, Verdict.TIE: NEITHER, Verdict.BOTH_BAD: NEITHER}


def preference_of(verdict: str) -> str:
    """A counted verdict as a preference: a, b, or neither (tie, both bad)."""
    return _PREFERENCE[verdict]


def human_preference(tally: Tally) -> str | None:
    """The majority preference of people's counted votes (a tally by verdict); None when there are none or
    they split evenly between the leading preferences."""
    preferences: Counter = Counter()
    for verdict, count in tally.items():
        if count:
            preferences[preference_of(verdict)] += count
    return majority(preferences)


@dataclass(frozen=True)
class GateThresholds:
    min_kappa: float
    min_consistency: float
    min_pairs: int

    @classmethod
    def from_settings(cls) -> "GateThresholds":
        return cls(
            min_kappa=settings.JUDGE_GATE_MIN_KAPPA,
            min_consistency=settings.JUDGE_GATE_MIN_CONSISTENCY,
            min_pairs=settings.JUDGE_GATE_MIN_PAIRS,
        )


@dataclass(frozen=True)
class JudgeAudit:
    """One AI judge's figures in a campaign: its audit sample against people's verdicts, and its consistency."""

    judge: str  # the judge's username
    audit_pairs: int  # pairs of its audit sample
    judged: int  # of those, pairs with the judge's verdict (its judgment is neither a skip nor deleted)
    table: Mapping[tuple[str, str], int]  # (judge's preference, people's) -> audit pairs, where both exist
    no_human_votes: int  # judged audit pairs no person has voted on yet (skips do not count)
    split: int  # judged audit pairs whose people's votes split evenly: they need another vote
    consistent: int  # the judge's pairs in the campaign with the same verdict in both orders
    inconsistent: int  # and with different ones (recorded as ties)

    @property
    def n(self) -> int:
        return sum(self.table.values())

    @property
    def kappa(self) -> float | None:
        return cohen_kappa(self.table)

    @property
    def agreement(self) -> float | None:
        return sum(c for (j, h), c in self.table.items() if j == h) / self.n if self.n else None

    @property
    def awaiting(self) -> int:
        """Judged audit pairs that still need people's votes before they count."""
        return self.no_human_votes + self.split

    @property
    def consistency(self) -> float | None:
        checked = self.consistent + self.inconsistent
        return self.consistent / checked if checked else None

    def problems(self, thresholds: GateThresholds, *, audit_size: int) -> list[str]:
        """Why this judge's verdicts may not be used: empty when it clears every threshold. `audit_size`: the
        campaign's judge_audit_size, for the advice when the sample is too small."""
        problems = []
        if self.n < thresholds.min_pairs:
            more = thresholds.min_pairs - self.n
            problem = (
                f"not enough evidence: {self.n} audit pair(s) carry both its verdict and people's, "
                f"{thresholds.min_pairs} are needed ({more} more)"
            )
            if self.judged < thresholds.min_pairs:
                raise_it = (
                    f"raise the campaign's judge audit size to at least {thresholds.min_pairs} and "
                    if audit_size < thresholds.min_pairs
                    else ""
                )
                problem += (
                    f"; its audit sample holds {self.judged} judged pair(s), too few even once people have voted: "
                    f"{raise_it}run judge_pairs again (it tops the sample up from the pairs the judge gave a verdict)"
                )
            problems.append(problem)
        elif self.kappa is None:
            problems.append("its kappa is undefined (the judge and people always gave one and the same preference)")
        elif self.kappa < thresholds.min_kappa - ROUNDING:
            problems.append(f"its kappa {self.kappa:.3f} is below {thresholds.min_kappa}")
        if self.consistency is None:
            problems.append("none of its pairs could be checked in both orders")
        elif self.consistency < thresholds.min_consistency - ROUNDING:
            problems.append(f"its consistency {self.consistency:.3f} is below {thresholds.min_consistency}")
        return problems

    def figures(self) -> str:
        kappa = "undefined" if self.kappa is None else f"{self.kappa:.3f}"
        consistency = "none" if self.consistency is None else f"{self.consistency:.3f}"
        return (
            f"Cohen's kappa with people {kappa} (n={self.n} audit pairs), consistency across the two orders "
            f"{consistency} ({self.consistent} of {self.consistent + self.inconsistent} pairs), "
            f"{self.awaiting} audit pair(s) still need human votes ({self.split} of them split evenly)"
        )

    def as_dict(self, thresholds: GateThresholds, *, audit_size: int) -> dict[str, Any]:
        problems = self.problems(thresholds, audit_size=audit_size)
        return {
            "judge": self.judge,
            "audit_pairs": self.audit_pairs,
            "judged": self.judged,
            "n": self.n,
            "kappa": self.kappa,
            "agreement": self.agreement,
            "awaiting_human_votes": self.awaiting,
            "split": self.split,
            "consistent": self.consistent,
            "inconsistent": self.inconsistent,
            "consistency": self.consistency,
            "passed": not problems,
            "problems": problems,
        }


@dataclass(frozen=True)
class JudgeGate:
    """The gate of one campaign: on when it audits its judges (audit_size > 0), with each judge's figures."""

    audit_size: int
    thresholds: GateThresholds
    judges: tuple[JudgeAudit, ...]

    @property
    def enabled(self) -> bool:
        return self.audit_size > 0

    @property
    def passed(self) -> bool:
        """Off, or every judge with verdicts clears it."""
        return not self.enabled or not any(self._problems(judge) for judge in self.judges)

    def _problems(self, judge: JudgeAudit) -> list[str]:
        return judge.problems(self.thresholds, audit_size=self.audit_size)

    def refusal(self, *, campaign: Campaign, judges: str) -> str:
        """Why an export with `judges` (ai or both) refuses the campaign's AI verdicts, with the figures."""
        t = self.thresholds
        failing = [judge for judge in self.judges if self._problems(judge)]
        lines = "; ".join(
            f"judge {judge.judge!r}: {judge.figures()}; refused because {', and '.join(self._problems(judge))}"
            for judge in failing
        )
        return (
            f"Campaign {campaign.name!r} audits its AI judge, and the judge has not earned its place: {lines}. "
            f"The gate needs kappa >= {t.min_kappa} over at least {t.min_pairs} audit pairs and consistency >= "
            f"{t.min_consistency} (settings PREFSTUDIO_JUDGE_GATE_MIN_KAPPA, _MIN_PAIRS, _MIN_CONSISTENCY). "
            f"`judges` is {judges}: export with `judges` humans, or let people judge the audit pairs (they are "
            "served first) and export again."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "audit_size": self.audit_size,
            "min_kappa": self.thresholds.min_kappa,
            "min_consistency": self.thresholds.min_consistency,
            "min_pairs": self.thresholds.min_pairs,
            "passed": self.passed,
            "judges": [judge.as_dict(self.thresholds, audit_size=self.audit_size) for judge in self.judges],
        }


def judge_audit_from_counts(counts: JudgeAuditCounts) -> JudgeAudit:
    """A judge's figures from what the database counted: each audit pair's verdicts read as preferences."""
    table: Counter = Counter()
    judged = no_votes = split = 0
    for judge_verdict, people in counts.audited:
        if judge_verdict is None:
            continue  # the judge's judgment of it was unparseable, or was deleted
        judged += 1
        human = human_preference(people)
        if human is not None:
            table[(preference_of(judge_verdict), human)] += 1
        elif any(people.values()):
            split += 1
        else:
            no_votes += 1
    return JudgeAudit(
        judge=counts.username,
        audit_pairs=len(counts.audited),
        judged=judged,
        table=dict(table),
        no_human_votes=no_votes,
        split=split,
        consistent=counts.consistent,
        inconsistent=counts.inconsistent,
    )


def campaign_judge_gate(*, campaign: Campaign) -> JudgeGate:
    """The campaign's gate with the figures of each AI judge that gave it verdicts (three small queries when it
    is on, none when it is off)."""
    thresholds = GateThresholds.from_settings()
    if campaign.judge_audit_size <= 0:
        return JudgeGate(audit_size=0, thresholds=thresholds, judges=())
    judges = tuple(judge_audit_from_counts(counts) for counts in campaign_judge_audits(campaign=campaign))
    return JudgeGate(audit_size=campaign.judge_audit_size, thresholds=thresholds, judges=judges)
