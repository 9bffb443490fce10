"""A batch of decided pairs into exported rows, by the rules of `formats.py`: the checks before writing, TRL's
columns, the split.

Pure functions over a batch of pairs as Arrow columns (`streams.pair_texts_for`, one row per pair) and the
aggregation's decisions, one entry per pair: a batch is checked and shaped at once, in Arrow's kernels, with
Python only where a rule is Python's (str.strip's whitespace, json.dumps, sha256) and then once per distinct
value or per row at most.
"""

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotator.models import FINISH_LENGTH, PromptFormat, Role, Verdict
from exports.formats import MIXED, OPENAI, PROMPT_SEPARATOR, STRING, Refusal, split_draws
from exports.writers import MESSAGE, MESSAGES, UTC_TIME

_CANDIDATE = (
    ("id", pa.int64()),
    ("prompt_id", pa.int64()),
    ("text", pa.string()),
    ("model_name", pa.string()),
    ("sampling_params", pa.string()),  # JSON
    ("seed", pa.int64()),
    ("prompt_format", pa.string()),
    ("prompt_text", pa.string()),
    ("finish_reason", pa.string()),
    ("edited_from", pa.int64()),  # a person's edit of that candidate (annotator.services.candidate_edit_create)
)
# A batch of pairs: the comparison, its prompt, and each candidate's fields as `a_<name>` and `b_<name>`.
PAIRS = pa.schema(
    [
        ("comparison_id", pa.int64()),
        ("pair_created_at", UTC_TIME),
        ("prompt_id", pa.int64()),
        ("prompt_hash", pa.string()),
        ("messages", MESSAGES),
        ("system", pa.string()),
        *((f"{side}_{name}", kind) for side in "ab" for name, kind in _CANDIDATE),
    ]
)
CANDIDATE_FIELDS = tuple(name for name, _ in _CANDIDATE)

REFUSALS = tuple(Refusal)
ACCEPTED = len(REFUSALS)  # the code of a pair that is written, in `Checks.refused`


def in_validation(prompt_hashes: pa.Array | pa.ChunkedArray, *, seed: int, val_fraction: float) -> np.ndarray:
    """Per row, whether its prompt goes to validation (`formats.split_of`)."""
    return np.array(split_draws(prompt_hashes.to_pylist(), seed=seed)) < val_fraction


@dataclass(frozen=True)
class CountedVotes:
    """The counted votes of a batch of rows, one list per row, aligned, in the order they were cast."""

    annotator_ids: pa.ListArray  # of int64
    verdicts: pa.ListArray  # of string: a Verdict value on the fixed candidates a/b
    judged_at: pa.ListArray  # of UTC_TIME
    strengths: pa.ListArray  # of string: slightly, clearly, or "" when the judge said none
    ranking_ids: pa.ListArray  # of int64, null for a vote not derived from a ranking


# What str.strip() removes: the characters for which str.isspace() is true.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
_BLANK = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in _WHITESPACE) + "]*$"  # RE2: empty or only whitespace


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _is(values: pa.Array | pa.ChunkedArray, value: str) -> np.ndarray:
    return _mask(pc.equal(values, value))


def sampled_as(pairs: pa.Table) -> pa.Array:
    """Per pair, how both responses were sampled (a PromptFormat value), or MIXED when the two differ."""
    same = pc.and_(
        pc.equal(pairs["a_prompt_format"], pairs["b_prompt_format"]),
        pc.equal(pairs["a_prompt_text"], pairs["b_prompt_text"]),
    )
    return pc.if_else(same, pairs["a_prompt_format"], MIXED)


def _turns(messages: pa.ListArray | pa.ChunkedArray) -> np.ndarray:
    return pc.list_value_length(messages).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class Checks:
    refused: np.ndarray  # per pair, the index into REFUSALS of why it is not written, ACCEPTED when it is
    truncated: np.ndarray  # per pair: it passed the other checks with a response cut off at its token limit


def pairs_check(pairs: pa.Table, *, kind: str, keep_truncated: bool) -> Checks:
    """What keeps each pair from being written in format `kind`, the first reason in the order of Refusal:
    unfit for training whoever won, sampled in a way the format cannot reproduce, OpenAI's one-turn rule, and
    a response cut off at its token limit (kept with keep_truncated, and counted either way)."""
    sampled = sampled_as(pairs)
    checks = {
        Refusal.EMPTY_RESPONSE: _mask(pc.match_substring_regex(pairs["a_text"], _BLANK))
        | _mask(pc.match_substring_regex(pairs["b_text"], _BLANK)),
        Refusal.SAME_TEXT: _mask(pc.equal(pairs["a_text"], pairs["b_text"])),
        Refusal.PROMPT_MISMATCH: ~_mask(
            pc.and_(
                pc.equal(pairs["a_prompt_id"], pairs["b_prompt_id"]),
                pc.equal(pairs["b_prompt_id"], pairs["prompt_id"]),
            )
        ),
        Refusal.SAMPLED_DIFFERENTLY: _is(sampled, MIXED),
        Refusal.SAMPLED_WITH_CHAT_TEMPLATE: _is(sampled, PromptFormat.CHAT) & (kind == STRING),
        Refusal.SAMPLED_AS_TEXT: _is(sampled, PromptFormat.TEXT) & (kind != STRING),
        Refusal.OPENAI_MULTI_TURN: (_turns(pairs["messages"]) > 1) & (kind == OPENAI),
    }
    refused = np.select(list(checks.values()), [REFUSALS.index(reason) for reason in checks], default=ACCEPTED)
    cut_off = _is(pairs["a_finish_reason"], FINISH_LENGTH) | _is(pairs["b_finish_reason"], FINISH_LENGTH)
    truncated = (refused == ACCEPTED) & cut_off
    if not keep_truncated:
        refused = np.where(truncated, REFUSALS.index(Refusal.TRUNCATED), refused)
    return Checks(refused=refused, truncated=truncated)


def _messages(offsets: np.ndarray, values: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=MESSAGES)


def _assistant(texts: pa.Array) -> pa.ListArray:
    """Each text as a one-message conversation: [{"role": "assistant", "content": text}]."""
    roles = pa.array(np.full(len(texts), Role.ASSISTANT.value), pa.string())
    return _messages(np.arange(len(texts) + 1), pa.StructArray.from_arrays([roles, texts], fields=list(MESSAGE)))


def with_system(messages: pa.ListArray, system: pa.Array) -> pa.ListArray:
    """Per row, the conversation as chat templates take it (`core.conversations.conversation_with_system`):
    the system message first when there is one."""
    has_system = ~_is(system, "")
    if not has_system.any():
        return messages
    offsets = messages.offsets.to_numpy()
    starts, lengths = offsets[:-1] - offsets[0], np.diff(offsets)  # each row's turns in `turns`
    turns = messages.flatten()
    owner = np.repeat(np.arange(len(lengths)), lengths)  # the row of each turn
    new_offsets = np.concatenate([[0], np.cumsum(lengths + has_system)])
    # Each turn moves to its row's new start, after the system message where the row has one.
    turn_at = new_offsets[owner] + has_system[owner] + (np.arange(len(turns)) - starts[owner])
    rows = np.flatnonzero(has_system)
    source = np.empty(new_offsets[-1], dtype=np.int64)  # per message written: its index in turns + systems
    source[turn_at] = np.arange(len(turns))
    source[new_offsets[rows]] = len(turns) + np.arange(len(rows))
    roles = pa.array(np.full(len(rows), Role.SYSTEM.value), pa.string())
    systems = pa.StructArray.from_arrays([roles, system.take(pa.array(rows))], fields=list(MESSAGE))
    return _messages(new_offsets, pa.concat_arrays([turns, systems]).take(pa.array(source)))


def prompt_strings(pairs: pa.Table) -> pa.Array:
    """Per pair, the exact text the model continued; for an imported prompt, its user message and a separator."""
    sampled = sampled_as(pairs)
    imported = _is(sampled, PromptFormat.UNKNOWN)
    if not (imported | _is(sampled, PromptFormat.TEXT)).all():
        raise ValueError("a string row needs responses sampled as raw text completions, or imported")
    conversation = (_turns(pairs["messages"]) > 1) | ~_is(pairs["system"], "")
    if (imported & conversation).any():
        prompt_id = pairs["prompt_id"].to_numpy()[imported & conversation][0]
        raise ValueError(f"prompt {prompt_id} is a conversation: the string format cannot hold it")
    first = pc.struct_field(pc.list_element(pairs["messages"], 0), "content")
    return pc.if_else(imported, pc.binary_join_element_wise(first, PROMPT_SEPARATOR, ""), pairs["a_prompt_text"])


def _sorted_json(texts: pa.Array) -> pa.Array:
    """JSON texts with their keys sorted, each distinct text decoded once (sampling parameters repeat)."""
    encoded = texts.dictionary_encode()
    distinct = [json.dumps(json.loads(text), sort_keys=True) for text in encoded.dictionary.to_pylist()]
    return pa.array(distinct, pa.string()).take(encoded.indices)


# A vote's weight in a pair's margin: a side said to be slightly better counts half; clearly, or a plain pick, full.
SLIGHTLY_WEIGHT = 0.5


def vote_margins(*, labels: pa.Array, strengths: pa.Array, offsets: pa.Array) -> np.ndarray:
    """Per pair, the mean over its counted votes of +weight for a vote for the chosen response, -weight for the
    rejected one, 0 for tie or both bad (weight: SLIGHTLY_WEIGHT for "slightly", else 1). 1: every vote clearly (or
    plainly) for it."""
    label = np.asarray(labels.to_numpy(zero_copy_only=False))
    sign = np.where(label == "chosen", 1.0, np.where(label == "rejected", -1.0, 0.0))
    said = np.asarray(strengths.to_numpy(zero_copy_only=False))
    weight = np.where(said == "slightly", SLIGHTLY_WEIGHT, 1.0)
    bounds = np.asarray(offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    sums = np.add.reduceat(np.append(sign * weight, 0.0), bounds[:-1]) if len(bounds) > 1 else np.array([])
    counts = np.diff(bounds)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def trl_table(
    pairs: pa.Table,
    *,
    a_won: np.ndarray,
    votes: np.ndarray,
    agreement: np.ndarray,
    judge_source: np.ndarray,
    counted: CountedVotes,
    conversational: bool,
    schema: pa.Schema,
) -> pa.Table:
    """prompt/chosen/rejected in TRL's format, then provenance, for pairs whose winner is known: one row per pair,
    the columns of `schema` (writers.parquet_schema). `a_won`, `votes`, `agreement` and `judge_source` are per
    pair: whether candidate a won, the counted votes, their agreement, and whose votes they are."""
    pairs = pairs.combine_chunks()
    side = pa.array(a_won, pa.bool_())

    def pick(name: str, *, chosen: bool) -> pa.Array:
        first, second = (f"a_{name}", f"b_{name}") if chosen else (f"b_{name}", f"a_{name}")
        return pc.if_else(side, pairs[first], pairs[second]).combine_chunks()

    chosen, rejected = pick("text", chosen=True), pick("text", chosen=False)
    if conversational:
        prompt = with_system(pairs["messages"].chunk(0), pairs["system"].chunk(0))
        chosen, rejected = _assistant(chosen), _assistant(rejected)
    else:
        prompt = prompt_strings(pairs)
    winners = pc.if_else(side, Verdict.A.value, Verdict.B.value)
    verdicts = counted.verdicts.flatten()
    winner_of_vote = pa.array(np.repeat(winners.to_numpy(zero_copy_only=False), np.diff(counted.verdicts.offsets)))
    labels = pc.if_else(
        pc.equal(verdicts, winner_of_vote),
        "chosen",
        pc.if_else(pc.is_in(verdicts, pa.array([Verdict.A.value, Verdict.B.value])), "rejected", verdicts),
    )
    params = {name: _sorted_json(pairs[f"{name}_sampling_params"].chunk(0)) for name in "ab"}
    margin = vote_margins(labels=labels, strengths=counted.strengths.flatten(), offsets=counted.verdicts.offsets)
    columns: dict[str, Any] = {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "comparison_id": pairs["comparison_id"],
        "prompt_id": pairs["prompt_id"],
        "prompt_hash": pairs["prompt_hash"],
        "chosen_side": winners,
        "chosen_candidate_id": pick("id", chosen=True),
        "rejected_candidate_id": pick("id", chosen=False),
        "chosen_model": pick("model_name", chosen=True),
        "rejected_model": pick("model_name", chosen=False),
        "chosen_sampling_params": pc.if_else(side, params["a"], params["b"]),
        "rejected_sampling_params": pc.if_else(side, params["b"], params["a"]),
        "chosen_seed": pick("seed", chosen=True),
        "rejected_seed": pick("seed", chosen=False),
        "chosen_edited_from": pick("edited_from", chosen=True),
        "rejected_edited_from": pick("edited_from", chosen=False),
        "votes": pa.array(votes, pa.int32()),
        "agreement": pa.array(agreement, pa.float64()),
        "judge_source": pa.array(judge_source, pa.string()),
        "annotator_ids": counted.annotator_ids,
        "annotator_votes": pa.ListArray.from_arrays(counted.verdicts.offsets, labels),
        "judged_at": counted.judged_at,
        "ranking_ids": counted.ranking_ids,
        "strength": counted.strengths,
        "margin": pa.array(margin, pa.float64()),
        "pair_created_at": pairs["pair_created_at"],
    }
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
