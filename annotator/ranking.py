"""Rank more than two: a full order of a prompt's candidates in one judgment, and the pairs derived from it.

In a campaign with `rank_candidates`, a prompt with more than two candidates is one task: the queue hands out
its first comparison only (its anchor, see `annotator.selectors.comparisons_open_for`), the page shows every
candidate at once, in an order shuffled per annotator and stored, and the annotator orders them, best first.
The ranking is stored as it was given, and each pair it orders gets a judgment derived from it (pointing back
to it, with both ranks), so overlap, agreement, reports, leaderboards and exports read rankings like any other
votes. The export may keep every derived pair or only best-vs-worst (its `ranking_pairs` option).
"""

import itertools
import random
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotator.models import (
    DURATION_MS_MAX,
    Assignment,
    Campaign,
    Candidate,
    Comparison,
    JudgeSource,
    Judgment,
    Ranking,
    Side,
    Verdict,
    WithdrawnJudgment,
)
from core.errors import ConflictError, InputError


def ranking_candidates(*, prompt_id: int) -> list[Candidate]:
    """The candidates a ranking of the prompt orders: the model's responses that are in some pair, by id."""
    in_pairs = Comparison.objects.filter(prompt_id=prompt_id).values_list("candidate_a", "candidate_b")
    ids = {pk for pair in in_pairs for pk in pair}
    return list(Candidate.objects.filter(pk__in=ids, edited_from__isnull=True).order_by("id"))


def ranking_applies(*, campaign: Campaign, candidates: list[Candidate]) -> bool:
    return campaign.rank_candidates and len(candidates) > 2


def ranking_shown_order(*, assignment: Assignment, candidates: list[Candidate]) -> list[Candidate]:
    """The candidates in the order this annotator sees them: shuffled, seeded by the pair and the annotator, so a
    reload (or an undo) shows the same order and the server knows it without trusting the page."""
    shown = list(candidates)
    random.Random(f"ranking:{assignment.comparison_id}:{assignment.annotator_id}").shuffle(shown)
    return shown


@dataclass(frozen=True)
class RankingResult:
    ranking: Ranking
    created: bool
    judgments: list[Judgment]


def _order_check(order: list[int], ids: list[int]) -> None:
    missing = [pk for pk in ids if pk not in order]
    unknown = [pk for pk in order if pk not in ids]
    repeated = sorted({pk for pk in order if order.count(pk) > 1})
    if missing or unknown or repeated or len(order) != len(ids):
        problems = [
            f"{label} {', '.join(map(str, found))}"
            for label, found in (("missing", missing), ("not of this prompt", unknown), ("repeated", repeated))
            if found
        ]
        raise InputError(
            f"A ranking lists each of the {len(ids)} responses once, best first (candidate ids "
            f"{', '.join(map(str, ids))}): {'; '.join(problems) or 'wrong length'}."
        )


def ranking_submit(
    *, comparison: Comparison, annotator: AbstractBaseUser, order: list[int], duration_ms: int | None = None
) -> RankingResult:
    """Record an annotator's full order (candidate ids, best first) of the prompt of the anchor `comparison`
    they were handed, and the pairs' judgments derived from it. Idempotent: a repeat returns the first.

    Every pair of the ordered candidates gets a judgment (a comparison is created for a pair that has none), except
    pairs the annotator judged already and pairs other than the anchor that are full: a ranking never puts a pair
    over its overlap. All of the prompt's pairs are locked while this is written."""
    from annotator.services import _settled_update, comparison_create

    campaign = comparison.prompt.campaign
    if not campaign.rank_candidates:
        raise InputError(f"Campaign {campaign.name!r} does not ask for rankings: judge its pairs one by one.")
    if duration_ms is not None and not 0 <= duration_ms <= DURATION_MS_MAX:
        raise InputError(f"duration_ms is {duration_ms}: it must be 0 to {DURATION_MS_MAX} milliseconds (a day).")
    prompt_id = comparison.prompt_id
    with transaction.atomic():
        pairs = Comparison.objects.filter(prompt_id=prompt_id).order_by("id")
        locked = list(pairs.select_for_update().values_list("pk", "candidate_a_id", "candidate_b_id", "human_votes"))
        existing = Ranking.objects.filter(prompt_id=prompt_id, annotator=annotator, withdrawn_at__isnull=True).first()
        if existing is not None:
            return RankingResult(existing, created=False, judgments=list(existing.judgments.all()))
        assignment = Assignment.objects.filter(comparison=comparison, annotator=annotator).first()
        if assignment is None:
            raise ConflictError(
                f"The responses of comparison {comparison.pk} were not handed to you: ask for the next pair first "
                f"(GET /api/campaigns/{campaign.pk}/next/)."
            )
        candidates = ranking_candidates(prompt_id=prompt_id)
        by_id = {candidate.pk: candidate for candidate in candidates}
        shown = [c.pk for c in ranking_shown_order(assignment=assignment, candidates=candidates)]
        _order_check(order, sorted(shown))
        now = timezone.now()
        if assignment.expires_at <= now:
            held = Assignment.objects.filter(comparison=comparison, expires_at__gt=now).exclude(annotator=annotator)
            if comparison.human_votes + held.count() >= campaign.overlap:
                assignment.delete()
                raise ConflictError(
                    f"Your hold on comparison {comparison.pk} expired and other annotators have ranked it "
                    "meanwhile: nothing was recorded; go on with the next pair."
                )
        if duration_ms is None:
            duration_ms = int((now - assignment.served_at).total_seconds() * 1000)
        ranking = Ranking.objects.create(
            prompt_id=prompt_id, annotator=annotator, order=order, shown=shown, duration_ms=duration_ms
        )
        by_pair = {frozenset((a, b)): (pk, a, votes) for pk, a, b, votes in locked}
        judged = set(
            Judgment.objects.filter(comparison__prompt_id=prompt_id, annotator=annotator).values_list(
                "comparison_id", flat=True
            )
        )
        rank = {pk: i for i, pk in enumerate(order)}
        seen = {pk: i for i, pk in enumerate(shown)}
        fresh = []
        for x, y in itertools.combinations(order, 2):
            found = by_pair.get(frozenset((x, y)))
            if found is None:
                pair = comparison_create(
                    candidate_a=by_id[min(x, y)],
                    candidate_b=by_id[max(x, y)],
                    metadata={"from_ranking": ranking.pk},
                )
                found = (pair.pk, pair.candidate_a_id, 0)
            pk, a, votes = found
            if pk in judged or (pk != comparison.pk and votes >= campaign.overlap):
                continue
            b = y if a == x else x
            fresh.append(
                Judgment(
                    comparison_id=pk,
                    annotator=annotator,
                    verdict=Verdict.A if rank[a] < rank[b] else Verdict.B,
                    shown_left=Side.A if seen[a] < seen[b] else Side.B,
                    duration_ms=duration_ms,
                    source=JudgeSource.HUMAN,
                    ranking=ranking,
                    details={
                        "ranks": sorted((rank[a] + 1, rank[b] + 1)),
                        "of": len(order),
                        "best_worst": sorted((rank[a], rank[b])) == [0, len(order) - 1],
                    },
                )
            )
        created = Judgment.objects.bulk_create(fresh)
        ids = [j.comparison_id for j in created]
        Comparison.objects.filter(pk__in=ids).update(human_votes=F("human_votes") + 1)
        if campaign.overlap_rule.adaptive:
            _settled_update(campaign=campaign, comparison_ids=ids)
        assignment.delete()
    return RankingResult(ranking, created=True, judgments=created)


def ranking_withdraw(*, ranking: Ranking, by: AbstractBaseUser, reason: str) -> int:
    """Withdraw a ranking's derived judgments (kept as WithdrawnJudgment, as any undone judgment) and mark it
    withdrawn, in the caller's transaction, which holds the prompt's pairs' row locks. Returns how many."""
    from annotator.services import _settled_update, _withdrawn_copy

    judgments = list(ranking.judgments.all())
    WithdrawnJudgment.objects.bulk_create(_withdrawn_copy(j, by=by, reason=reason) for j in judgments)
    ids = [j.comparison_id for j in judgments if j.verdict != Verdict.SKIP]
    Judgment.objects.filter(pk__in=[j.pk for j in judgments]).delete()
    Comparison.objects.filter(pk__in=ids).update(human_votes=F("human_votes") - 1)
    campaign = ranking.prompt.campaign
    if campaign.overlap_rule.adaptive:
        _settled_update(campaign=campaign, comparison_ids=ids)
    ranking.withdrawn_at = timezone.now()
    ranking.save(update_fields=["withdrawn_at"])
    return len(judgments)


def ranking_anchor(*, prompt_id: int) -> Comparison:
    """The comparison that stands for the prompt's ranking in the queue: its first of the model's responses."""
    pairs = Comparison.objects.filter(prompt_id=prompt_id, candidate_a__edited_from=None, candidate_b__edited_from=None)
    return pairs.order_by("id").first()
