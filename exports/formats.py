"""One exported row from one decided pair: TRL's formats, OpenAI's, the checks before writing, the split.

Pure functions over the texts the selector fetched and the aggregation's decision.

- conversational (TRL): `prompt` is the list of {role, content} messages (system first when present),
  `chosen` and `rejected` are one assistant message each.
- string (TRL): `prompt` is the single user message followed by PROMPT_SEPARATOR, because TRL joins prompt
  and completion with nothing between them; `chosen` and `rejected` are the response texts as they are.
- openai: `{"input": {"messages": [...]}, "preferred_output": [assistant], "non_preferred_output": [assistant]}`.
- split: `split_of` hashes (seed, prompt content hash), so a prompt lands in one split whatever the order,
  the size of the campaign or the other options, and the same prompt text under two prompt ids too.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from annotator.models import Verdict
from core.conversations import Message, conversation_with_system
from exports.aggregation import Decision

PROMPT_SEPARATOR = "\n\n"
TRAIN, VALIDATION = "train", "validation"


@dataclass(frozen=True, slots=True)
class CandidateTexts:
    id: int
    prompt_id: int
    text: str
    model_name: str
    sampling_params: dict[str, Any]
    seed: int | None


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
    def is_conversation(self) -> bool:
        """More than one message or a system message: what a plain string prompt cannot hold."""
        return len(self.messages) > 1 or bool(self.system)


class Refusal(StrEnum):
    """Why a decided pair is not written, though the judges agreed on it."""

    EMPTY_RESPONSE = "empty_response"  # a response is empty or only whitespace
    SAME_TEXT = "same_text"  # chosen and rejected are the same text
    PROMPT_MISMATCH = "prompt_mismatch"  # the candidates answer different prompts
    OPENAI_MULTI_TURN = "openai_multi_turn"  # OpenAI trains on one user turn (plus a system message) only
    OVERLONG = "overlong"  # longer than max_length tokens, with drop_overlong


REFUSAL_HELP = {
    Refusal.EMPTY_RESPONSE: "a response is empty or only whitespace",
    Refusal.SAME_TEXT: "chosen and rejected are the same text",
    Refusal.PROMPT_MISMATCH: "the two candidates answer different prompts",
    Refusal.OPENAI_MULTI_TURN: (
        "OpenAI preference fine-tuning takes one-turn conversations only (a user message, optionally after a "
        "system message); these prompts hold earlier turns"
    ),
    Refusal.OVERLONG: "prompt + response is longer than max_length tokens (dropped with drop_overlong)",
}


def split_of(prompt_hash: str, *, seed: int, val_fraction: float) -> str:
    """train or validation, from a uniform number in [0, 1) drawn from sha256(seed:prompt hash)."""
    digest = hashlib.sha256(f"{seed}:{prompt_hash}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    return VALIDATION if draw < val_fraction else TRAIN


def chosen_and_rejected(pair: PairTexts, decision: Decision) -> tuple[CandidateTexts, CandidateTexts]:
    if decision.winner == Verdict.A:
        return pair.a, pair.b
    if decision.winner == Verdict.B:
        return pair.b, pair.a
    raise ValueError(f"comparison {pair.comparison_id} has no winner ({decision.dropped})")


def pair_problem(pair: PairTexts) -> Refusal | None:
    """What makes a pair unfit for training whoever won, or None."""
    if not pair.a.text.strip() or not pair.b.text.strip():
        return Refusal.EMPTY_RESPONSE
    if pair.a.text == pair.b.text:
        return Refusal.SAME_TEXT
    if not pair.a.prompt_id == pair.b.prompt_id == pair.prompt_id:
        return Refusal.PROMPT_MISMATCH
    return None


def prompt_string(pair: PairTexts) -> str:
    if pair.is_conversation:
        raise ValueError(f"prompt {pair.prompt_id} is a conversation: the string format cannot hold it")
    return pair.messages[0]["content"] + PROMPT_SEPARATOR


def _assistant(text: str) -> list[Message]:
    return [{"role": "assistant", "content": text}]


def _vote_label(verdict: str, chosen_side: str) -> str:
    if verdict in (Verdict.A, Verdict.B):
        return "chosen" if verdict == chosen_side else "rejected"
    return verdict


def trl_row(pair: PairTexts, decision: Decision, *, conversational: bool) -> dict[str, Any]:
    """prompt/chosen/rejected in TRL's format, then provenance (the columns of writers.parquet_schema)."""
    chosen, rejected = chosen_and_rejected(pair, decision)
    if conversational:
        texts: dict[str, Any] = {
            "prompt": conversation_with_system(pair.messages, pair.system),
            "chosen": _assistant(chosen.text),
            "rejected": _assistant(rejected.text),
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
        "votes": len(decision.votes),
        "agreement": decision.agreement,
        "judge_source": decision.votes[0].source,
        "annotator_ids": [vote.annotator_id for vote in decision.votes],
        "annotator_votes": [_vote_label(vote.verdict, decision.winner) for vote in decision.votes],
        "judged_at": [vote.created_at for vote in decision.votes],
        "pair_created_at": pair.created_at,
    }


def openai_row(trl_conversational_row: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's preference fine-tuning line, from a conversational TRL row."""
    return {
        "input": {"messages": trl_conversational_row["prompt"]},
        "preferred_output": trl_conversational_row["chosen"],
        "non_preferred_output": trl_conversational_row["rejected"],
    }


def openai_problem(pair: PairTexts) -> Refusal | None:
    """OpenAI's rule: one-turn conversations only (a system message before the user message is fine)."""
    return Refusal.OPENAI_MULTI_TURN if len(pair.messages) > 1 else None
