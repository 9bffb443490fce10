"""One exported row from one decided pair: TRL's formats, OpenAI's, the checks before writing, the split.

Pure functions over the texts the selector fetched and the aggregation's decision.

A row gives the model the context it wrote the responses in (`Candidate.prompt_format`):

- conversational (TRL): `prompt` is the list of {role, content} messages (system first when present),
  `chosen` and `rejected` are one assistant message each. For responses sampled through the model's chat
  template (TRL renders the row with the same template), and for imported ones, whose making is unknown.
- string (TRL): for responses sampled as raw text completions, `prompt` is exactly the text the model
  continued, nothing added, and `chosen`/`rejected` are the texts it wrote: TRL trains on prompt + response
  + EOS, joined with no separator, as the model produced them. An imported single-turn prompt (no recorded
  text) is its user message followed by PROMPT_SEPARATOR, since TRL adds none.
- openai: `{"input": {"messages": [...]}, "preferred_output": [assistant], "non_preferred_output": [assistant]}`.
- A pair whose two responses were sampled differently, or in a way the chosen format cannot reproduce, is
  refused; so is one with a response cut off at its token limit, unless the export keeps those.
- split: `split_of` hashes (seed, prompt content hash), so a prompt lands in one split whatever the order,
  the size of the campaign or the other options, and the same prompt text under two prompt ids too.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from annotator.models import FINISH_LENGTH, PromptFormat, Verdict
from core.conversations import Message, conversation_with_system
from exports.aggregation import Decision

PROMPT_SEPARATOR = "\n\n"  # after an imported prompt in the string format: TRL joins prompt and response as they are
TRAIN, VALIDATION = "train", "validation"
CONVERSATIONAL, STRING, OPENAI = "conversational", "string", "openai"
MIXED = "mixed"  # a pair whose two responses were sampled differently


@dataclass(frozen=True, slots=True)
class CandidateTexts:
    id: int
    prompt_id: int
    text: str
    model_name: str
    sampling_params: dict[str, Any]
    seed: int | None
    prompt_format: str = PromptFormat.UNKNOWN
    prompt_text: str = ""  # PromptFormat.TEXT: the exact text the model continued
    finish_reason: str = ""

    @property
    def truncated(self) -> bool:
        return self.finish_reason == FINISH_LENGTH


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
        """More than one message or a system message: what an imported prompt cannot be as a plain string."""
        return len(self.messages) > 1 or bool(self.system)

    @property
    def sampled(self) -> str:
        """How both responses were sampled (a PromptFormat value), or MIXED when the two differ."""
        same = self.a.prompt_format == self.b.prompt_format and self.a.prompt_text == self.b.prompt_text
        return self.a.prompt_format if same else MIXED

    @property
    def truncated(self) -> bool:
        return self.a.truncated or self.b.truncated


class Refusal(StrEnum):
    """Why a decided pair is not written, though the judges agreed on it."""

    EMPTY_RESPONSE = "empty_response"  # a response is empty or only whitespace
    SAME_TEXT = "same_text"  # chosen and rejected are the same text
    PROMPT_MISMATCH = "prompt_mismatch"  # the candidates answer different prompts
    SAMPLED_DIFFERENTLY = "sampled_differently"  # the two responses were sampled from different prompts
    SAMPLED_WITH_CHAT_TEMPLATE = "sampled_with_chat_template"  # through the chat template, asked for strings
    SAMPLED_AS_TEXT = "sampled_as_text"  # as a raw text completion, asked for conversations
    OPENAI_MULTI_TURN = "openai_multi_turn"  # OpenAI trains on one user turn (plus a system message) only
    TRUNCATED = "truncated"  # a response was cut off at its token limit, without keep_truncated
    OVERLONG = "overlong"  # longer than max_length tokens, with drop_overlong


REFUSAL_HELP = {
    Refusal.EMPTY_RESPONSE: "a response is empty or only whitespace",
    Refusal.SAME_TEXT: "chosen and rejected are the same text",
    Refusal.PROMPT_MISMATCH: "the two candidates answer different prompts",
    Refusal.SAMPLED_DIFFERENTLY: (
        "the two responses were sampled from different prompts (one through a chat template, the other as raw "
        "text, or from different texts): no one row reproduces both"
    ),
    Refusal.SAMPLED_WITH_CHAT_TEMPLATE: (
        "the responses were sampled through the model's chat template: a string row would train on text the "
        "model never produced (export them in the conversational format)"
    ),
    Refusal.SAMPLED_AS_TEXT: (
        "the responses were sampled as raw text completions (no chat template): a conversation would train them "
        "in a context the model never saw (export them in the string format)"
    ),
    Refusal.OPENAI_MULTI_TURN: (
        "OpenAI preference fine-tuning takes one-turn conversations only (a user message, optionally after a "
        "system message); these prompts hold earlier turns"
    ),
    Refusal.TRUNCATED: (
        "a response was cut off at its token limit (finish_reason length): it never ended, and training would "
        "append an end of turn the model never wrote (keep them with keep_truncated)"
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


def sampled_problem(pair: PairTexts, kind: str) -> Refusal | None:
    """What keeps a row of format `kind` from reproducing how the pair's responses were sampled, or None."""
    sampled = pair.sampled
    if sampled == MIXED:
        return Refusal.SAMPLED_DIFFERENTLY
    if sampled == PromptFormat.CHAT and kind == STRING:
        return Refusal.SAMPLED_WITH_CHAT_TEMPLATE
    if sampled == PromptFormat.TEXT and kind != STRING:
        return Refusal.SAMPLED_AS_TEXT
    return None


def prompt_string(pair: PairTexts) -> str:
    """The exact text the model continued; for an imported prompt, its user message and a separator."""
    if pair.sampled == PromptFormat.TEXT:
        return pair.a.prompt_text
    if pair.sampled != PromptFormat.UNKNOWN:
        raise ValueError(f"comparison {pair.comparison_id}: {REFUSAL_HELP[sampled_problem(pair, STRING)]}")
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
