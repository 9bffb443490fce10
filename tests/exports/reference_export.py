"""The export as it was before issue 12, kept only as the reference the batch export must match.

It read the judgments one by one in Python: one ordered query over the votes, grouped per pair, each pair
decided with a Counter, its texts fetched as Python objects and shaped into one dict per row. This module keeps
that path (its aggregation, selectors and row functions, as they were) and returns what it would have written:
the rows of each split, in order, and the stats. The shared rules it did not own (the split, the refusal and drop
reasons, the output format, the length meter) are the product's.
"""

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

from annotator.models import Campaign, Comparison, JudgeSource, Judgment, PromptFormat, Verdict
from core.conversations import Message, conversation_with_system
from exports.aggregation import Drop
from exports.formats import MIXED, OPENAI, PROMPT_SEPARATOR, STRING, Refusal, openai_row, split_of
from exports.options import ExportOptions
from exports.pipeline import ExportStats
from llm.lengths import LengthMeter


@dataclass(frozen=True, slots=True)
class Vote:
    verdict: str
    source: str
    annotator_id: int
    created_at: datetime
    strength: str = ""
    ranking_id: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    votes: tuple[Vote, ...]
    majority: str | None
    agreement: float
    dropped: Drop | None

    @property
    def winner(self) -> str | None:
        return None if self.dropped else self.majority


def votes_counted(votes: Sequence[Vote], *, judges: str) -> list[Vote]:
    cast = [vote for vote in votes if vote.verdict != Verdict.SKIP]
    human = [vote for vote in cast if vote.source == JudgeSource.HUMAN]
    ai = [vote for vote in cast if vote.source == JudgeSource.AI]
    return {"humans": human, "ai": ai, "both": human or ai}[judges]


def pair_decide(votes: Sequence[Vote], *, judges: str, min_votes: int, min_agreement: float) -> Decision:
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


_SOURCES = {"humans": [JudgeSource.HUMAN], "ai": [JudgeSource.AI], "both": [JudgeSource.HUMAN, JudgeSource.AI]}


def campaign_votes(
    *, campaign: Campaign, judges: str, include_edits: bool = False, ranking_pairs: str = "all"
) -> list[tuple[int, list[Vote]]]:
    rows = [
        row
        for row in Judgment.objects.filter(comparison__prompt__campaign=campaign, source__in=_SOURCES[judges])
        .order_by("comparison_id", "id")
        .values_list(
            "comparison_id",
            "verdict",
            "source",
            "annotator_id",
            "created_at",
            "strength",
            "ranking",
            "comparison__candidate_a__edited_from",
            "comparison__candidate_b__edited_from",
            "ranking",
            "details",
        )
        if (include_edits or (row[7] is None and row[8] is None))
        and (ranking_pairs == "all" or row[9] is None or row[10].get("best_worst"))
    ]
    rows = [row[:7] for row in rows]
    return [
        (
            comparison_id,
            [
                Vote(verdict, source, annotator, at, strength, ranking)
                for _, verdict, source, annotator, at, strength, ranking in group
            ],
        )
        for comparison_id, group in groupby(rows, key=itemgetter(0))
    ]


@dataclass(frozen=True, slots=True)
class CandidateTexts:
    id: int
    prompt_id: int
    text: str
    model_name: str
    sampling_params: dict[str, Any]
    seed: int | None
    prompt_format: str
    prompt_text: str
    finish_reason: str
    edited_from: int | None


@dataclass(frozen=True, slots=True)
class PairTexts:
    comparison_id: int
    created_at: datetime
    prompt_id: int
    prompt_hash: str
    messages: list[Message]
    system: str
    a: CandidateTexts
    b: CandidateTexts

    @property
    def sampled(self) -> str:
        same = self.a.prompt_format == self.b.prompt_format and self.a.prompt_text == self.b.prompt_text
        return self.a.prompt_format if same else MIXED

    @property
    def truncated(self) -> bool:
        return self.a.finish_reason == "length" or self.b.finish_reason == "length"


_FIELDS = ("id", "prompt_id", "text", "model_name", "sampling_params", "seed", "prompt_format", "prompt_text",
           "finish_reason", "edited_from")  # fmt: skip


def pair_texts_for(comparison_ids: list[int]) -> list[PairTexts]:
    columns = [f"candidate_{side}__{name}" for side in "ab" for name in _FIELDS]
    rows = (
        Comparison.objects.filter(pk__in=comparison_ids)
        .order_by("id")
        .values_list("id", "created_at", "prompt_id", "prompt__content_hash", "prompt__messages", "prompt__system",
                     *columns)
    )  # fmt: skip
    width = len(_FIELDS)
    return [
        PairTexts(*row[:6], a=CandidateTexts(*row[6 : 6 + width]), b=CandidateTexts(*row[6 + width :])) for row in rows
    ]


def pair_problem(pair: PairTexts, kind: str) -> Refusal | None:
    if not pair.a.text.strip() or not pair.b.text.strip():
        return Refusal.EMPTY_RESPONSE
    if pair.a.text == pair.b.text:
        return Refusal.SAME_TEXT
    if not pair.a.prompt_id == pair.b.prompt_id == pair.prompt_id:
        return Refusal.PROMPT_MISMATCH
    if pair.sampled == MIXED:
        return Refusal.SAMPLED_DIFFERENTLY
    if pair.sampled == PromptFormat.CHAT and kind == STRING:
        return Refusal.SAMPLED_WITH_CHAT_TEMPLATE
    if pair.sampled == PromptFormat.TEXT and kind != STRING:
        return Refusal.SAMPLED_AS_TEXT
    if kind == OPENAI and len(pair.messages) > 1:
        return Refusal.OPENAI_MULTI_TURN
    return None


def prompt_string(pair: PairTexts) -> str:
    if pair.sampled == PromptFormat.TEXT:
        return pair.a.prompt_text
    assert pair.sampled == PromptFormat.UNKNOWN and len(pair.messages) == 1 and not pair.system
    return pair.messages[0]["content"] + PROMPT_SEPARATOR


def _vote_label(verdict: str, chosen_side: str) -> str:
    if verdict in (Verdict.A, Verdict.B):
        return "chosen" if verdict == chosen_side else "rejected"
    return verdict


def _vote_weight(vote: Vote, chosen_side: str) -> float:
    """+1 for the chosen response, -1 for the rejected one, 0 otherwise; half for "slightly" better."""
    label = _vote_label(vote.verdict, chosen_side)
    sign = {"chosen": 1.0, "rejected": -1.0}.get(label, 0.0)
    return sign * (0.5 if vote.strength == "slightly" else 1.0)


def trl_row(pair: PairTexts, decision: Decision, *, conversational: bool) -> dict[str, Any]:
    chosen, rejected = (pair.a, pair.b) if decision.winner == Verdict.A else (pair.b, pair.a)
    if conversational:
        texts: dict[str, Any] = {
            "prompt": conversation_with_system(pair.messages, pair.system),
            "chosen": [{"role": "assistant", "content": chosen.text}],
            "rejected": [{"role": "assistant", "content": rejected.text}],
        }
    else:
        texts = {"prompt": prompt_string(pair), "chosen": chosen.text, "rejected": rejected.text}
    return {
        **texts,
        "comparison_id": pair.comparison_id,
        "prompt_id": pair.prompt_id,
        "prompt_hash": pair.prompt_hash,
        "chosen_side": decision.winner,
        "chosen_candidate_id": chosen.id,
        "rejected_candidate_id": rejected.id,
        "chosen_model": chosen.model_name,
        "rejected_model": rejected.model_name,
        "chosen_sampling_params": json.dumps(chosen.sampling_params, sort_keys=True),
        "rejected_sampling_params": json.dumps(rejected.sampling_params, sort_keys=True),
        "chosen_seed": chosen.seed,
        "rejected_seed": rejected.seed,
        "chosen_edited_from": chosen.edited_from,
        "rejected_edited_from": rejected.edited_from,
        "votes": len(decision.votes),
        "agreement": decision.agreement,
        "judge_source": decision.votes[0].source,
        "annotator_ids": [vote.annotator_id for vote in decision.votes],
        "annotator_votes": [_vote_label(vote.verdict, decision.winner) for vote in decision.votes],
        "judged_at": [vote.created_at for vote in decision.votes],
        "ranking_ids": [vote.ranking_id for vote in decision.votes],
        "strength": [vote.strength for vote in decision.votes],
        "margin": sum(_vote_weight(vote, decision.winner) for vote in decision.votes) / len(decision.votes),
        "pair_created_at": pair.created_at,
    }


def reference_export(
    *, campaign: Campaign, options: ExportOptions, kind: str, chunk_size: int = 1000
) -> tuple[dict[str, list[dict[str, Any]]], ExportStats]:
    """What the old export wrote for `campaign` in format `kind`: the rows of each split (OpenAI lines for
    kind openai), in order, and its stats (before the pairs no selected judge voted on are added)."""
    stats = ExportStats()
    meter = LengthMeter(tokenizer=options.tokenizer, conversational=kind != STRING) if options.checks_length else None
    written: dict[str, list[dict[str, Any]]] = {"train": [], "validation": []}
    votes = campaign_votes(
        campaign=campaign,
        judges=options.judges,
        include_edits=options.include_edits,
        ranking_pairs=options.ranking_pairs,
    )
    for start in range(0, len(votes), chunk_size):
        chunk = votes[start : start + chunk_size]
        stats.judged += len(chunk)
        decided: dict[int, Decision] = {}
        for comparison_id, pair_votes in chunk:
            decision = pair_decide(
                pair_votes, judges=options.judges, min_votes=options.min_votes, min_agreement=options.min_agreement
            )
            if decision.dropped:
                stats.dropped[decision.dropped] += 1
            else:
                decided[comparison_id] = decision
        rows = []
        for pair in pair_texts_for(list(decided)):
            problem = pair_problem(pair, kind)
            if not problem and pair.truncated:
                stats.truncated += 1
                problem = None if options.keep_truncated else Refusal.TRUNCATED
            if problem:
                stats.refused[problem] += 1
                continue
            decision = decided[pair.comparison_id]
            rows.append((pair, decision, trl_row(pair, decision, conversational=kind != STRING)))
        if meter is not None:
            measured = []
            for item, length in zip(rows, meter.measure([row for _, _, row in rows]), strict=True):
                if length.overlong(options.max_length):
                    stats.overlong += 1
                    stats.prompt_fills += length.prompt_fills(options.max_length)
                    if options.drop_overlong:
                        stats.refused[Refusal.OVERLONG] += 1
                        continue
                measured.append(item)
            rows = measured
        for pair, decision, row in rows:
            split = split_of(pair.prompt_hash, seed=options.seed, val_fraction=options.val_fraction)
            written[split].append(openai_row(row) if kind == OPENAI else row)
            stats.rows[split] += 1
            stats.votes_per_row[len(decision.votes)] += 1
            stats.votes_by_source.update(vote.source for vote in decision.votes)
            stats.judges.update(vote.annotator_id for vote in decision.votes)
            stats.agreement_sum += decision.agreement
            stats.unanimous += decision.agreement == 1.0
            stats.chosen_models[row["chosen_model"]] += 1
            stats.rejected_models[row["rejected_model"]] += 1
    return written, stats
