"""The export's formats and the rules every row follows, named once for the pipeline, the card and the command.

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

`rows.py` applies them to a batch of pairs at once.
"""

import hashlib
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

PROMPT_SEPARATOR = "\n\n"  # after an imported prompt in the string format: TRL joins prompt and response as they are
TRAIN, VALIDATION = "train", "validation"
CONVERSATIONAL, STRING, OPENAI = "conversational", "string", "openai"
MIXED = "mixed"  # a pair whose two responses were sampled differently


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


def split_draws(prompt_hashes: Iterable[str], *, seed: int) -> list[float]:
    """Per prompt, a uniform number in [0, 1): the first 8 bytes of sha256(seed:prompt hash) as a big-endian
    number over 2^64. A prompt whose draw is below val_fraction goes to validation."""
    prefix, sha256 = f"{seed}:".encode(), hashlib.sha256
    return [int.from_bytes(sha256(prefix + h.encode()).digest()[:8], "big") / 2**64 for h in prompt_hashes]


def split_of(prompt_hash: str, *, seed: int, val_fraction: float) -> str:
    """train or validation, from the prompt's draw."""
    return VALIDATION if split_draws([prompt_hash], seed=seed)[0] < val_fraction else TRAIN


def openai_row(trl_conversational_row: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's preference fine-tuning line, from a conversational TRL row."""
    return {
        "input": {"messages": trl_conversational_row["prompt"]},
        "preferred_output": trl_conversational_row["chosen"],
        "non_preferred_output": trl_conversational_row["rejected"],
    }
