"""The data-quality report of a campaign: agreement, judge reliability, position and length bias,
per-annotator figures, and model win rates. Plain dicts, so the page and the API show the same numbers.

Computed from the counts quality/selectors.py reads (the database does the counting: what comes back is a
few rows per kind of pair, per annotator and per day, however many judgments there are), with the
statistics of quality/stats.py."""

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from annotator.models import Campaign, Verdict
from quality.gate import campaign_judge_gate
from quality.selectors import (
    MIN_JUDGED_TO_FLAG,
    AnnotatorDay,
    PairGroup,
    campaign_annotator_days,
    campaign_edits,
    campaign_first_votes,
    campaign_median_durations,
    campaign_pair_groups,
    campaign_pairs_complete,
    campaign_rankings,
    campaign_sentinel_scores,
    campaign_strengths,
)
from quality.stats import (
    Proportion,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    majority,
    mean_interval,
    pairwise_agreement,
)

MIN_JUDGMENTS_TO_FLAG = 10


def _proportion(p: Proportion) -> dict[str, Any]:
    return {"successes": p.successes, "n": p.n, "rate": p.value, "ci95": p.ci95}


def _votes(group: PairGroup) -> int:
    return sum(group.human.values())


def _progress(campaign: Campaign, groups: list[PairGroup]) -> dict[str, int]:
    if campaign.overlap_rule.adaptive:  # complete: full, or settled with fewer votes
        complete = campaign_pairs_complete(campaign=campaign)
    else:
        complete = sum(g.pairs for g in groups if _votes(g) >= campaign.overlap)
    return {
        "comparisons": sum(g.pairs for g in groups),
        "complete": complete,
        "human_judgments": sum(g.pairs * _votes(g) for g in groups),
        "skips": sum(g.pairs * g.human_skips for g in groups),
        "ai_judgments": sum(g.pairs * g.ai_judgments for g in groups),
    }


def _agreement(campaign: Campaign, groups: list[PairGroup]) -> dict[str, Any]:
    rule = campaign.overlap_rule
    if rule.adaptive and rule.min_votes >= 2:
        # Adaptive overlap asks more votes of the pairs people disagree on: counting those would make agreement
        # look worse than it is. Every figure is computed on each pair's first min_votes votes, which every
        # pair gets whatever its first votes say.
        first = campaign_first_votes(campaign=campaign, votes=rule.min_votes)
        return _agreement_figures(first, first)
    multi = [(g.human, g.pairs) for g in groups if _votes(g) >= 2]
    # Fleiss' kappa needs as many votes on every pair: each pair's first `overlap` votes. They are all its
    # votes unless the overlap was lowered after some pairs were judged.
    overlap = campaign.overlap
    if overlap < 2:
        full = []
    elif any(_votes(g) > overlap for g in groups):
        full = campaign_first_votes(campaign=campaign, votes=overlap)
    else:
        full = [(g.human, g.pairs) for g in groups if _votes(g) == overlap]
    return _agreement_figures(multi, full)


def _agreement_figures(multi: list, full: list) -> dict[str, Any]:
    return {
        "items_with_2_or_more_votes": sum(pairs for _, pairs in multi),
        "percent_agreement": pairwise_agreement(multi),
        "krippendorff_alpha": krippendorff_alpha_nominal(multi),
        "fleiss_kappa": fleiss_kappa(full) if full else None,
        "fleiss_items": sum(pairs for _, pairs in full),
    }


@dataclass
class _Annotator:
    """One annotator's days added up."""

    id: int
    username: str
    judgments: int = 0
    skips: int = 0
    left_wins: int = 0
    decisive: int = 0
    agrees: int = 0
    with_majority: int = 0

    @property
    def left(self) -> Proportion:
        return Proportion(self.left_wins, self.decisive)

    @property
    def agree(self) -> Proportion:
        return Proportion(self.agrees, self.with_majority)


def _per_annotator(days: list[AnnotatorDay]) -> list[_Annotator]:
    per: dict[int, _Annotator] = {}
    for day in days:
        entry = per.setdefault(day.annotator_id, _Annotator(day.annotator_id, day.username))
        entry.judgments += day.judgments
        entry.skips += day.skips
        entry.left_wins += day.left_wins
        entry.decisive += day.decisive
        entry.agrees += day.agrees
        entry.with_majority += day.with_majority
    return sorted(per.values(), key=lambda a: a.username)


def _annotators(annotators: list[_Annotator], medians: tuple[dict[int, float], float | None]) -> list[dict[str, Any]]:
    median_of, overall_median = medians
    agreements = [a.agree.value for a in annotators if a.agree.n >= MIN_JUDGMENTS_TO_FLAG]
    typical_agreement = statistics.median(agreements) if agreements else None
    rows = []
    for annotator in annotators:
        median_ms = median_of.get(annotator.id)
        left, agree = annotator.left, annotator.agree
        flags = []
        if left.n >= MIN_JUDGMENTS_TO_FLAG and left.excludes(0.5):
            side = "left" if left.value > 0.5 else "right"
            flags.append(f"picks the {side} side {left.value:.0%} of the time (95% CI excludes 50%)")
        if agree.n >= MIN_JUDGMENTS_TO_FLAG and typical_agreement is not None and agree.value < typical_agreement - 0.2:
            flags.append(f"agrees with the others {agree.value:.0%} of the time (typical: {typical_agreement:.0%})")
        fast = median_ms is not None and overall_median and median_ms < overall_median / 3
        if fast and annotator.judgments >= MIN_JUDGMENTS_TO_FLAG:
            flags.append(f"very fast: median {median_ms / 1000:.1f} s vs {overall_median / 1000:.1f} s overall")
        rows.append(
            {
                "id": annotator.id,
                "username": annotator.username,
                "judgments": annotator.judgments,
                "skips": annotator.skips,
                "median_seconds": median_ms / 1000 if median_ms is not None else None,
                "agreement_with_majority": _proportion(agree),
                "left_wins": _proportion(left),
                "flags": flags,
            }
        )
    return rows


def _position_bias(annotators: list[_Annotator]) -> dict[str, Any]:
    """How often the response shown on the left wins, over everyone's decisive votes."""
    return _proportion(Proportion(sum(a.left_wins for a in annotators), sum(a.decisive for a in annotators)))


def _length_bias(groups: list[PairGroup]) -> dict[str, Any]:
    """How often the longer response wins, over people's decisive votes on pairs of unequal lengths."""
    unequal = [g for g in groups if g.longer is not None]
    wins = sum(g.pairs * g.human[g.longer] for g in unequal)
    n = sum(g.pairs * (g.human[Verdict.A] + g.human[Verdict.B]) for g in unequal)
    return _proportion(Proportion(wins, n))


def _agreement_over_time(days: list[AnnotatorDay]) -> list[dict[str, Any]]:
    agrees: Counter = Counter()
    judged: Counter = Counter()
    for row in days:
        agrees[row.day] += row.agrees
        judged[row.day] += row.with_majority
    return [
        {"date": day.isoformat(), "agreement": agrees[day] / judged[day], "n": judged[day]}
        for day in sorted(judged)
        if judged[day]
    ]


def _judge(groups: list[PairGroup]) -> dict[str, Any] | None:
    judged = [g for g in groups if g.ai_judgments]
    if not judged:
        return None
    # The earliest AI verdict of each pair against the majority of its human votes, where both exist; and the
    # same without the pairs where that verdict is a tie recorded because the judge's two orders disagreed.
    pairs: Counter = Counter()
    consistent_pairs: Counter = Counter()
    for group in judged:
        human_majority = majority(group.human)
        if group.ai_first is not None and human_majority is not None:
            pairs[(group.ai_first, human_majority)] += group.pairs
            if not group.ai_first_inconsistent:
                consistent_pairs[(group.ai_first, human_majority)] += group.pairs
    n, n_consistent = sum(pairs.values()), sum(consistent_pairs.values())
    consistent = sum(g.ai_consistent for g in judged)
    inconsistent = sum(g.ai_inconsistent for g in judged)
    ties = sum(g.pairs * g.ai[Verdict.TIE] for g in judged) - sum(g.ai_inconsistent_ties for g in judged)
    return {
        "pairs_judged": sum(g.pairs for g in judged),
        "pairs_with_human_majority": n,
        "agreement_with_humans": _agreeing(pairs) / n if n else None,
        "kappa_with_humans": cohen_kappa(pairs),
        "consistent_pairs_with_human_majority": n_consistent,
        "agreement_with_humans_when_consistent": _agreeing(consistent_pairs) / n_consistent if n_consistent else None,
        "kappa_with_humans_when_consistent": cohen_kappa(consistent_pairs),
        "consistent": consistent,
        "inconsistent": inconsistent,
        "ties": ties,
        "consistency_rate": consistent / (consistent + inconsistent) if consistent + inconsistent else None,
        "unparseable": sum(g.ai_unparseable for g in judged),
    }


def _agreeing(pairs: Counter) -> int:
    return sum(count for (judge, human), count in pairs.items() if judge == human)


_SCORE = {Verdict.A: 1.0, Verdict.B: 0.0, Verdict.TIE: 0.5, Verdict.BOTH_BAD: 0.5}


def _model_win_rates(groups: list[PairGroup]) -> list[dict[str, Any]]:
    """Head-to-head results where the two sides come from different models (e.g. tuned vs base).

    Each result is told from the side of `generate_pairs --model` (its candidates carry metadata
    model "a"; the other side is `--model-b`), whichever of the pair's candidates a/b it is; for pairs from
    elsewhere, from the side of the model whose name sorts first. Per comparison, the majority verdict of
    its votes (people's; the AI judges' only where no person's vote counts); a split vote, a tie and "both
    bad" count as half. The interval is a normal approximation on these per-comparison scores.
    """
    scores: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for group in groups:
        model_a, model_b = group.model_a, group.model_b
        votes = group.human if _votes(group) else group.ai
        if not sum(votes.values()) or not model_a or not model_b or model_a == model_b:
            continue
        winner = majority(votes)
        score = _SCORE[winner] if winner is not None else 0.5  # for candidate a
        a_first = group.a_side == "a" if group.a_side in ("a", "b") else model_a < model_b
        if a_first:
            scores[(model_a, model_b)][score] += group.pairs
        else:
            scores[(model_b, model_a)][1.0 - score] += group.pairs
    results = []
    for (model_a, model_b), counts in sorted(scores.items()):
        mean, low, high = mean_interval(counts)
        results.append(
            {
                "model": model_a,
                "opponent": model_b,
                "comparisons": sum(counts.values()),
                "wins": counts[1.0],
                "ties": counts[0.5],
                "losses": counts[0.0],
                "win_rate": mean,
                "ci95": (low, high),
            }
        )
    return results


def campaign_quality_report(*, campaign: Campaign) -> dict[str, Any]:
    groups = campaign_pair_groups(campaign=campaign)
    days = campaign_annotator_days(campaign=campaign)
    annotators = _per_annotator(days)
    return {
        "campaign": {"id": campaign.pk, "name": campaign.name, "overlap": campaign.overlap},
        "progress": _progress(campaign, groups),
        "agreement": _agreement(campaign, groups),
        "judge": _judge(groups),
        "judge_gate": campaign_judge_gate(campaign=campaign).as_dict() if campaign.judge_audit_size > 0 else None,
        "position_bias": _position_bias(annotators),
        "length_bias": _length_bias(groups),
        "annotators": _annotators(annotators, campaign_median_durations(campaign=campaign)),
        "agreement_over_time": _agreement_over_time(days),
        "model_win_rates": _model_win_rates(groups),
        "sentinels": _sentinels(campaign),
        "richer": _richer(campaign),
    }


def _richer(campaign: Campaign) -> dict[str, Any] | None:
    """What the richer judgments a campaign asks for add up to (strength, edits, rankings); None when it asks
    for none of them (and then no query is made)."""
    if not (campaign.ask_strength or campaign.allow_edits or campaign.rank_candidates):
        return None
    richer: dict[str, Any] = {}
    if campaign.ask_strength:
        counts = campaign_strengths(campaign=campaign)
        sides = sum(counts.values())
        richer["strength"] = {
            "side_votes": sides,
            **{name or "not_said": counts.get(name, 0) for name in ("clearly", "slightly", "")},
            "said_share": (sides - counts.get("", 0)) / sides if sides else None,
        }
    if campaign.allow_edits:
        richer["edits"] = campaign_edits(campaign=campaign)
    if campaign.rank_candidates:
        richer["rankings"] = campaign_rankings(campaign=campaign)
    return richer


def _sentinels(campaign: Campaign) -> dict[str, Any] | None:
    """Each annotator's accuracy on the campaign's sentinel pairs (annotator.sentinels), while the campaign
    mixes them in (its sentinel rate is set); None otherwise."""
    if not campaign.sentinel_rate:
        return None
    scores = campaign_sentinel_scores(campaign=campaign)
    return {
        "rate": campaign.sentinel_rate,
        "min_accuracy": campaign.sentinel_min_accuracy,
        "min_judged_to_flag": MIN_JUDGED_TO_FLAG,
        "annotators": [
            {
                "annotator_id": s.annotator_id,
                "username": s.username,
                "judged": s.judged,
                "correct": s.correct,
                "accuracy": s.accuracy,
                "ci95": list(s.ci95) if s.ci95 else None,
                "flagged": s.flagged,
            }
            for s in scores
        ],
    }
