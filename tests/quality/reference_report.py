"""The quality report as it was computed before issue 12, kept as the oracle for tests/quality/test_report_sql.py:
every judgment and both texts of every pair loaded into Python, each figure counted vote by vote with the
statistics written for lists of labels. The report in quality/report.py must give the same figures. Since issue
13 it also counts the judge's inconsistent verdicts apart from its ties, and the judge gate's figures."""

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from annotator.models import Campaign, Comparison, JudgeAuditPair, JudgeSource, Judgment, Verdict
from quality.gate import GateThresholds, JudgeAudit
from quality.stats import Z_95, Proportion

# ----- quality/stats.py: the statistics on lists of labels


def mean_interval(scores: Sequence[float]) -> tuple[float, float, float] | None:
    """Mean of per-item scores with a normal-approximation 95% interval: (mean, low, high)."""
    n = len(scores)
    if n == 0:
        return None
    mean = sum(scores) / n
    if n == 1:
        return mean, 0.0, 1.0
    variance = sum((s - mean) ** 2 for s in scores) / (n - 1)
    half = Z_95 * math.sqrt(variance / n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def cohen_kappa(pairs: Iterable[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa for two raters' labels on the same items. None when undefined (no items, or both
    raters always used one and the same label, so chance agreement is 1)."""
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for x, y in pairs if x == y) / n
    first, second = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa; every item must carry the same number (>= 2) of ratings."""
    items = [list(item) for item in items]
    if not items:
        return None
    raters = len(items[0])
    if raters < 2 or any(len(item) != raters for item in items):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    n_items = len(items)
    totals: Counter = Counter()
    agreement = 0.0
    for item in items:
        counts = Counter(item)
        totals.update(counts)
        agreement += (sum(c * c for c in counts.values()) - raters) / (raters * (raters - 1))
    p_bar = agreement / n_items
    p_e = sum((total / (n_items * raters)) ** 2 for total in totals.values())
    if p_e == 1:
        return None
    return (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha_nominal(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal data; items with fewer than two ratings are not pairable and
    are left out. None when there is no disagreement possible (one category in all pairable values)."""
    coincidences: Counter = Counter()
    for item in items:
        m = len(item)
        if m < 2:
            continue
        counts = Counter(item)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                coincidences[(c, k)] += pairs / (m - 1)
    n_c: Counter = Counter()
    for (c, _k), value in coincidences.items():
        n_c[c] += value
    n = sum(n_c.values())
    if n <= 1:
        return None
    observed_disagreement = sum(v for (c, k), v in coincidences.items() if c != k)
    expected_disagreement = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k) / (n - 1)
    if expected_disagreement == 0:
        return None
    return 1 - observed_disagreement / expected_disagreement


def pairwise_agreement(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Share of agreeing rater pairs, averaged over items with two or more ratings (percent agreement)."""
    shares = []
    for item in items:
        m = len(item)
        if m < 2:
            continue
        counts = Counter(item)
        shares.append(sum(c * (c - 1) for c in counts.values()) / (m * (m - 1)))
    return sum(shares) / len(shares) if shares else None


def majority(labels: Sequence[Hashable]) -> Hashable | None:
    """The most frequent label, or None on a tie for first place."""
    if not labels:
        return None
    (top, count), *rest = Counter(labels).most_common()
    if rest and rest[0][1] == count:
        return None
    return top


# ----- quality/selectors.py: every pair and every judgment, as rows


@dataclass(frozen=True)
class Vote:
    """One judgment of a pair, as the report reads it."""

    annotator_id: int
    username: str
    verdict: str
    shown_left: str
    duration_ms: int | None
    day: date
    details: dict[str, Any]


def campaign_comparison_rows(*, campaign: Campaign) -> dict[int, dict[str, Any]]:
    """The campaign's pairs by id: both texts, both model names, and the side (`metadata.model`, "a" or "b")
    that candidate a was generated for."""
    return {
        row["id"]: row
        for row in Comparison.objects.filter(prompt__campaign=campaign).values(
            "id",
            "candidate_a__text",
            "candidate_b__text",
            "candidate_a__model_name",
            "candidate_b__model_name",
            "candidate_a__metadata__model",
        )
    }


def campaign_votes(*, campaign: Campaign) -> tuple[dict[int, list[Vote]], dict[int, list[Vote]]]:
    """Every judgment of the campaign, oldest first, by comparison id: people's votes, and the AI judges'."""
    human: dict[int, list[Vote]] = defaultdict(list)
    ai: dict[int, list[Vote]] = defaultdict(list)
    rows = (
        Judgment.objects.filter(comparison__prompt__campaign=campaign)
        .order_by("created_at", "id")
        .values_list(
            "comparison_id", "annotator_id", "annotator__username", "verdict", "shown_left", "duration_ms",
            "created_at", "source", "details",
        )
    )  # fmt: skip
    for comparison_id, annotator_id, username, verdict, shown_left, duration, created, source, details in rows:
        vote = Vote(annotator_id, username, verdict, shown_left, duration, created.date(), details or {})
        (ai if source == JudgeSource.AI else human)[comparison_id].append(vote)
    return human, ai


# ----- quality/report.py

MIN_JUDGMENTS_TO_FLAG = 10
DECISIVE = (Verdict.A, Verdict.B)


def _proportion(p: Proportion) -> dict[str, Any]:
    return {"successes": p.successes, "n": p.n, "rate": p.value, "ci95": p.ci95}


def _agreement(votes_by_item: dict[int, list[Vote]], overlap: int) -> dict[str, Any]:
    items = [[v.verdict for v in votes if v.verdict != Verdict.SKIP] for votes in votes_by_item.values()]
    multi = [item for item in items if len(item) >= 2]
    full = [item[:overlap] for item in multi if len(item) >= overlap] if overlap >= 2 else []
    return {
        "items_with_2_or_more_votes": len(multi),
        "percent_agreement": pairwise_agreement(multi),
        "krippendorff_alpha": krippendorff_alpha_nominal(multi),
        "fleiss_kappa": fleiss_kappa(full) if full else None,
        "fleiss_items": len(full),
    }


def _leave_one_out(votes_by_item: dict[int, list[Vote]]) -> list[tuple[Vote, bool]]:
    """Each vote paired with whether it matches the majority of the other votes on its item."""
    out = []
    for votes in votes_by_item.values():
        counted = [v for v in votes if v.verdict != Verdict.SKIP]
        for vote in counted:
            others = majority([o.verdict for o in counted if o is not vote])
            if others is not None:
                out.append((vote, vote.verdict == others))
    return out


def _annotators(votes_by_item: dict[int, list[Vote]]) -> list[dict[str, Any]]:
    per: dict[int, dict[str, Any]] = {}
    for votes in votes_by_item.values():
        for vote in votes:
            entry = per.setdefault(
                vote.annotator_id,
                {"id": vote.annotator_id, "username": vote.username, "judgments": 0, "skips": 0, "durations": [],
                 "left": Proportion(0, 0), "agree": Proportion(0, 0)},
            )  # fmt: skip
            if vote.verdict == Verdict.SKIP:
                entry["skips"] += 1
                continue
            entry["judgments"] += 1
            if vote.duration_ms is not None:
                entry["durations"].append(vote.duration_ms)
            if vote.verdict in DECISIVE:
                left = entry["left"]
                entry["left"] = Proportion(left.successes + (vote.verdict == vote.shown_left), left.n + 1)
    for vote, agrees in _leave_one_out(votes_by_item):
        agree = per[vote.annotator_id]["agree"]
        per[vote.annotator_id]["agree"] = Proportion(agree.successes + agrees, agree.n + 1)

    all_durations = [d for e in per.values() for d in e["durations"]]
    overall_median = statistics.median(all_durations) if all_durations else None
    agreements = [e["agree"].value for e in per.values() if e["agree"].n >= MIN_JUDGMENTS_TO_FLAG]
    typical_agreement = statistics.median(agreements) if agreements else None
    rows = []
    for entry in sorted(per.values(), key=lambda e: e["username"]):
        median_ms = statistics.median(entry["durations"]) if entry["durations"] else None
        flags = []
        if entry["left"].n >= MIN_JUDGMENTS_TO_FLAG and entry["left"].excludes(0.5):
            side = "left" if entry["left"].value > 0.5 else "right"
            flags.append(f"picks the {side} side {entry['left'].value:.0%} of the time (95% CI excludes 50%)")
        agree = entry["agree"]
        if agree.n >= MIN_JUDGMENTS_TO_FLAG and typical_agreement is not None and agree.value < typical_agreement - 0.2:
            flags.append(f"agrees with the others {agree.value:.0%} of the time (typical: {typical_agreement:.0%})")
        fast = median_ms is not None and overall_median and median_ms < overall_median / 3
        if fast and entry["judgments"] >= MIN_JUDGMENTS_TO_FLAG:
            flags.append(f"very fast: median {median_ms / 1000:.1f} s vs {overall_median / 1000:.1f} s overall")
        rows.append(
            {
                "id": entry["id"],
                "username": entry["username"],
                "judgments": entry["judgments"],
                "skips": entry["skips"],
                "median_seconds": median_ms / 1000 if median_ms is not None else None,
                "agreement_with_majority": _proportion(agree),
                "left_wins": _proportion(entry["left"]),
                "flags": flags,
            }
        )
    return rows


def _position_bias(votes_by_item: dict[int, list[Vote]]) -> dict[str, Any]:
    decisive = [v for votes in votes_by_item.values() for v in votes if v.verdict in DECISIVE]
    return _proportion(Proportion(sum(v.verdict == v.shown_left for v in decisive), len(decisive)))


def _length_bias(comparisons: dict[int, dict], votes_by_item: dict[int, list[Vote]]) -> dict[str, Any]:
    wins = n = 0
    for comparison_id, votes in votes_by_item.items():
        row = comparisons[comparison_id]
        len_a, len_b = len(row["candidate_a__text"]), len(row["candidate_b__text"])
        if len_a == len_b:
            continue
        longer = Verdict.A if len_a > len_b else Verdict.B
        for vote in votes:
            if vote.verdict in DECISIVE:
                n += 1
                wins += vote.verdict == longer
    return _proportion(Proportion(wins, n))


def _agreement_over_time(votes_by_item: dict[int, list[Vote]]) -> list[dict[str, Any]]:
    by_day: dict[date, list[bool]] = defaultdict(list)
    for vote, agrees in _leave_one_out(votes_by_item):
        by_day[vote.day].append(agrees)
    return [
        {"date": day.isoformat(), "agreement": sum(values) / len(values), "n": len(values)}
        for day, values in sorted(by_day.items())
    ]


def _ai_first(votes: list[Vote]) -> Vote | None:
    counted = [v for v in votes if v.verdict != Verdict.SKIP]
    return counted[0] if counted else None


def _judge(human: dict[int, list[Vote]], ai: dict[int, list[Vote]]) -> dict[str, Any] | None:
    if not ai:
        return None
    pairs, consistent_pairs = [], []
    for comparison_id, votes in ai.items():
        first = _ai_first(votes)
        human_majority = majority([v.verdict for v in human.get(comparison_id, []) if v.verdict != Verdict.SKIP])
        if first is not None and human_majority is not None:
            pairs.append((first.verdict, human_majority))
            if first.details.get("consistent") is not False:
                consistent_pairs.append((first.verdict, human_majority))
    judged = [v for votes in ai.values() for v in votes]
    consistent = [v.details["consistent"] for v in judged if v.details.get("consistent") is not None]
    return {
        "pairs_judged": len(ai),
        "pairs_with_human_majority": len(pairs),
        "agreement_with_humans": sum(j == h for j, h in pairs) / len(pairs) if pairs else None,
        "kappa_with_humans": cohen_kappa(pairs),
        "consistent_pairs_with_human_majority": len(consistent_pairs),
        "agreement_with_humans_when_consistent": (
            sum(j == h for j, h in consistent_pairs) / len(consistent_pairs) if consistent_pairs else None
        ),
        "kappa_with_humans_when_consistent": cohen_kappa(consistent_pairs),
        "consistent": sum(consistent),
        "inconsistent": len(consistent) - sum(consistent),
        "ties": sum(1 for v in judged if v.verdict == Verdict.TIE and v.details.get("consistent") is not False),
        "consistency_rate": sum(consistent) / len(consistent) if consistent else None,
        "unparseable": sum(v.details.get("unparseable", 0) for v in judged),
    }


_PREFERENCE = {Verdict.A: "a", Verdict.B: "b", Verdict.TIE: "neither", Verdict.BOTH_BAD: "neither"}


def _judge_gate(campaign: Campaign) -> dict[str, Any] | None:
    """The judge gate's figures, judgment by judgment: each AI judge with a verdict, by username."""
    if campaign.judge_audit_size <= 0:
        return None
    thresholds = GateThresholds.from_settings()
    judgments = list(
        Judgment.objects.filter(comparison__prompt__campaign=campaign).values(
            "comparison_id", "annotator_id", "annotator__username", "verdict", "source", "details"
        )
    )
    people: dict[int, list[str]] = defaultdict(list)
    for j in judgments:
        if j["source"] == JudgeSource.HUMAN and j["verdict"] != Verdict.SKIP:
            people[j["comparison_id"]].append(_PREFERENCE[j["verdict"]])
    judges = sorted(
        {(j["annotator__username"], j["annotator_id"]) for j in judgments
         if j["source"] == JudgeSource.AI and j["verdict"] != Verdict.SKIP}
    )  # fmt: skip
    rows = []
    for username, judge_id in judges:
        own = {j["comparison_id"]: j for j in judgments if j["annotator_id"] == judge_id and j["source"] == "ai"}
        checked = [j["details"].get("consistent") for j in own.values() if j["details"]]
        checked = [flag for flag in checked if flag is not None]
        sample = JudgeAuditPair.objects.filter(judge_id=judge_id, comparison__prompt__campaign=campaign)
        audit_ids = list(sample.values_list("comparison_id", flat=True))
        compared, judged, no_votes, split = [], 0, 0, 0
        for comparison_id in audit_ids:
            judgment = own.get(comparison_id)
            if judgment is None or judgment["verdict"] == Verdict.SKIP:
                continue
            judged += 1
            human = majority(people[comparison_id])
            if human is not None:
                compared.append((_PREFERENCE[judgment["verdict"]], human))
            elif people[comparison_id]:
                split += 1
            else:
                no_votes += 1
        audit = JudgeAudit(
            judge=username, audit_pairs=len(audit_ids), judged=judged, table=Counter(compared),
            no_human_votes=no_votes, split=split, consistent=sum(checked), inconsistent=len(checked) - sum(checked),
        )  # fmt: skip
        # The wording is the gate's; the figures are counted here.
        problems = audit.problems(thresholds, audit_size=campaign.judge_audit_size)
        rows.append(
            {
                "judge": username,
                "audit_pairs": len(audit_ids),
                "judged": judged,
                "n": len(compared),
                "kappa": cohen_kappa(compared),
                "agreement": sum(j == h for j, h in compared) / len(compared) if compared else None,
                "awaiting_human_votes": no_votes + split,
                "split": split,
                "consistent": sum(checked),
                "inconsistent": len(checked) - sum(checked),
                "consistency": sum(checked) / len(checked) if checked else None,
                "passed": not problems,
                "problems": problems,
            }
        )
    return {
        "enabled": True,
        "audit_size": campaign.judge_audit_size,
        "min_kappa": thresholds.min_kappa,
        "min_consistency": thresholds.min_consistency,
        "min_pairs": thresholds.min_pairs,
        "passed": all(row["passed"] for row in rows),
        "judges": rows,
    }


_SCORE = {Verdict.A: 1.0, Verdict.B: 0.0, Verdict.TIE: 0.5, Verdict.BOTH_BAD: 0.5}


def _model_win_rates(comparisons: dict[int, dict], votes_by_item: dict[int, list[Vote]]) -> list[dict[str, Any]]:
    """Head-to-head results where the two sides come from different models (e.g. tuned vs base).

    Each result is told from the side of `generate_pairs --model` (its candidates carry metadata
    model "a"; the other side is `--model-b`), whichever of the pair's candidates a/b it is; for pairs from
    elsewhere, from the side of the model whose name sorts first. Per comparison, the majority verdict of
    its votes; a split vote, a tie and "both bad" count as half. The interval is a normal approximation on
    these per-comparison scores.
    """
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for comparison_id, votes in votes_by_item.items():
        row = comparisons[comparison_id]
        model_a, model_b = row["candidate_a__model_name"], row["candidate_b__model_name"]
        verdicts = [v.verdict for v in votes if v.verdict != Verdict.SKIP]
        if not verdicts or not model_a or not model_b or model_a == model_b:
            continue
        winner = majority(verdicts)
        score = _SCORE.get(winner, 0.5) if winner is not None else 0.5  # for candidate a
        side = row["candidate_a__metadata__model"]
        a_first = side == "a" if side in ("a", "b") else model_a < model_b
        if a_first:
            scores[(model_a, model_b)].append(score)
        else:
            scores[(model_b, model_a)].append(1.0 - score)
    results = []
    for (model_a, model_b), values in sorted(scores.items()):
        mean, low, high = mean_interval(values)
        results.append(
            {
                "model": model_a,
                "opponent": model_b,
                "comparisons": len(values),
                "wins": sum(v == 1.0 for v in values),
                "ties": sum(v == 0.5 for v in values),
                "losses": sum(v == 0.0 for v in values),
                "win_rate": mean,
                "ci95": (low, high),
            }
        )
    return results


def reference_quality_report(*, campaign: Campaign) -> dict[str, Any]:
    comparisons = campaign_comparison_rows(campaign=campaign)
    human, ai = campaign_votes(campaign=campaign)
    human_counted = {cid: [v for v in votes if v.verdict != Verdict.SKIP] for cid, votes in human.items()}
    complete = sum(1 for votes in human_counted.values() if len(votes) >= campaign.overlap)
    return {
        "campaign": {"id": campaign.pk, "name": campaign.name, "overlap": campaign.overlap},
        "progress": {
            "comparisons": len(comparisons),
            "complete": complete,
            "human_judgments": sum(len(v) for v in human_counted.values()),
            "skips": sum(1 for votes in human.values() for v in votes if v.verdict == Verdict.SKIP),
            "ai_judgments": sum(len(v) for v in ai.values()),
        },
        "agreement": _agreement(human, campaign.overlap),
        "judge": _judge(human, ai),
        "judge_gate": _judge_gate(campaign),
        "position_bias": _position_bias(human),
        "length_bias": _length_bias(comparisons, human),
        "annotators": _annotators(human),
        "agreement_over_time": _agreement_over_time(human),
        # Humans decide a pair they judged; the AI judge's verdict counts only where no human judged it.
        "model_win_rates": _model_win_rates(comparisons, {**ai, **{c: v for c, v in human_counted.items() if v}}),
        "sentinels": _sentinels(campaign),
        "richer": _richer(campaign),
    }


def _richer(campaign):
    """Strength, edits and rankings counted in Python from every judgment, as the report's oracle."""
    from annotator.models import Candidate, Ranking

    if not (campaign.ask_strength or campaign.allow_edits or campaign.rank_candidates):
        return None
    richer = {}
    human = [j for j in Judgment.objects.filter(comparison__prompt__campaign=campaign) if j.source == JudgeSource.HUMAN]
    if campaign.ask_strength:
        sides = [j for j in human if j.verdict in (Verdict.A, Verdict.B)]
        counts = Counter(j.strength for j in sides)
        richer["strength"] = {
            "side_votes": len(sides),
            "clearly": counts["clearly"],
            "slightly": counts["slightly"],
            "not_said": counts[""],
            "said_share": (len(sides) - counts[""]) / len(sides) if sides else None,
        }
    if campaign.allow_edits:
        edits = list(Candidate.objects.filter(prompt__campaign=campaign, edited_from__isnull=False))
        sources = {edit.pk: edit.edited_from_id for edit in edits}
        on_edits = [j for j in human if sources.get(j.comparison.candidate_a_id) == j.comparison.candidate_b_id]
        verdicts = Counter(j.verdict for j in on_edits)
        richer["edits"] = {
            "edits": len(edits),
            "edit_preferred": verdicts[Verdict.A],
            "source_preferred": verdicts[Verdict.B],
            "other_votes": len(on_edits) - verdicts[Verdict.A] - verdicts[Verdict.B],
        }
    if campaign.rank_candidates:
        live = [r for r in Ranking.objects.filter(prompt__campaign=campaign) if r.withdrawn_at is None]
        richer["rankings"] = {
            "rankings": len(live),
            "derived_judgments": sum(1 for j in human if j.ranking_id in {r.pk for r in live}),
        }
    return richer


def _sentinels(campaign):
    """Sentinel accuracy, every sentinel judgment read into Python (while the campaign mixes sentinels in)."""
    if not campaign.sentinel_rate:
        return None
    from quality.selectors import MIN_JUDGED_TO_FLAG
    from quality.stats import wilson_interval

    tally: dict = {}
    for judgment in Judgment.objects.filter(comparison__prompt__campaign__sentinel_of=campaign).select_related(
        "annotator"
    ):
        if judgment.source != JudgeSource.HUMAN or judgment.verdict == Verdict.SKIP:
            continue
        row = tally.setdefault((judgment.annotator.username, judgment.annotator_id), [0, 0])
        row[0] += 1
        row[1] += judgment.verdict == Verdict.A
    rows = []
    for (username, annotator_id), (judged, correct) in sorted(tally.items()):
        interval = wilson_interval(correct, judged)
        rows.append(
            {
                "annotator_id": annotator_id,
                "username": username,
                "judged": judged,
                "correct": correct,
                "accuracy": correct / judged,
                "ci95": list(interval) if interval else None,
                "flagged": judged >= MIN_JUDGED_TO_FLAG and correct / judged < campaign.sentinel_min_accuracy,
            }
        )
    return {
        "rate": campaign.sentinel_rate,
        "min_accuracy": campaign.sentinel_min_accuracy,
        "min_judged_to_flag": MIN_JUDGED_TO_FLAG,
        "annotators": rows,
    }


def assert_same_figures(new: Any, old: Any, path: str = "report") -> None:
    """The same figures: equal counts, labels and structure; floats equal to rounding (the sums run in another
    order, so the last bits may differ)."""
    if isinstance(old, float) and isinstance(new, float | int):
        assert math.isclose(new, old, rel_tol=1e-12, abs_tol=1e-15), f"{path}: {new!r} != {old!r}"
    elif isinstance(old, dict):
        assert isinstance(new, dict) and list(new) == list(old), f"{path}: keys {list(new)} != {list(old)}"
        for key in old:
            assert_same_figures(new[key], old[key], f"{path}.{key}")
    elif isinstance(old, list | tuple):
        assert isinstance(new, list | tuple) and len(new) == len(old), f"{path}: {new!r} != {old!r}"
        for index, (n, o) in enumerate(zip(new, old, strict=True)):
            assert_same_figures(n, o, f"{path}[{index}]")
    else:
        assert new == old and type(new) is type(old), f"{path}: {new!r} ({type(new)}) != {old!r} ({type(old)})"
