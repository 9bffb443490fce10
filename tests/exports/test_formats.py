from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from exports.aggregation import pair_decide
from exports.formats import (
    CONVERSATIONAL,
    OPENAI,
    PROMPT_SEPARATOR,
    STRING,
    CandidateTexts,
    PairTexts,
    Refusal,
    openai_problem,
    openai_row,
    pair_problem,
    sampled_problem,
    split_of,
    trl_row,
)
from exports.writers import parquet_schema
from tests.exports.test_aggregation import votes

AT = datetime(2026, 1, 1, tzinfo=UTC)


def pair(
    messages=None, system="", text_a="Answer A", text_b="Answer B", prompt_ids=(7, 7), sampled=("", ""), texts=("", "")
) -> PairTexts:
    return PairTexts(
        comparison_id=1,
        created_at=AT,
        prompt_id=7,
        prompt_hash="f" * 64,
        messages=messages or [{"role": "user", "content": "Question?"}],
        system=system,
        a=CandidateTexts(11, prompt_ids[0], text_a, "model-a", {"temperature": 0.7}, 1, sampled[0], texts[0]),
        b=CandidateTexts(12, prompt_ids[1], text_b, "model-b", {}, None, sampled[1], texts[1]),
    )


RAW = {"sampled": ("text", "text"), "texts": ("Question?", "Question?")}


def test_split_is_deterministic_and_follows_the_seed():
    hashes = [f"{i:064x}" for i in range(2000)]
    first = [split_of(h, seed=1, val_fraction=0.2) for h in hashes]
    assert first == [split_of(h, seed=1, val_fraction=0.2) for h in hashes]
    assert first != [split_of(h, seed=2, val_fraction=0.2) for h in hashes]
    share = Counter(first)["validation"] / len(hashes)
    assert 0.17 < share < 0.23


def test_zero_val_fraction_puts_everything_in_train():
    assert {split_of(f"{i:064x}", seed=0, val_fraction=0.0) for i in range(500)} == {"train"}


def test_a_raw_text_completion_becomes_a_string_row_whose_prompt_is_the_exact_text_the_model_continued():
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]
    continued = "Be brief.\n\nHi\n\nHey"
    raw = pair(conversation, system="Be brief.", sampled=("text", "text"), texts=(continued, continued))
    row = trl_row(raw, pair_decide(votes("a"), judges="humans"), conversational=False)
    assert (row["prompt"], row["chosen"], row["rejected"]) == (continued, "Answer A", "Answer B")
    assert row["prompt"] + row["chosen"] == "Be brief.\n\nHi\n\nHeyAnswer A"  # TRL's join: nothing in between
    assert sampled_problem(raw, STRING) is None


@pytest.mark.parametrize(
    ("sampled", "texts", "kind", "problem"),
    [
        (("chat", "chat"), ("", ""), CONVERSATIONAL, None),
        (("chat", "chat"), ("", ""), OPENAI, None),
        (("chat", "chat"), ("", ""), STRING, Refusal.SAMPLED_WITH_CHAT_TEMPLATE),
        (("text", "text"), ("Q", "Q"), CONVERSATIONAL, Refusal.SAMPLED_AS_TEXT),
        (("text", "text"), ("Q", "Q"), OPENAI, Refusal.SAMPLED_AS_TEXT),
        (("", ""), ("", ""), STRING, None),  # imported: a single turn may still be a string
        (("", ""), ("", ""), CONVERSATIONAL, None),
        (("chat", "text"), ("", "Q"), CONVERSATIONAL, Refusal.SAMPLED_DIFFERENTLY),
        (("text", "text"), ("Q", "Q\n\n"), STRING, Refusal.SAMPLED_DIFFERENTLY),
    ],
)
def test_a_row_is_refused_when_its_format_cannot_reproduce_how_the_pair_was_sampled(sampled, texts, kind, problem):
    assert sampled_problem(pair(sampled=sampled, texts=texts), kind) == problem


def test_a_string_row_refuses_chat_templated_responses():
    with pytest.raises(ValueError, match="sampled through the model's chat template"):
        trl_row(pair(sampled=("chat", "chat")), pair_decide(votes("a"), judges="humans"), conversational=False)


def test_a_pair_with_a_response_cut_off_at_its_token_limit_is_truncated():
    ended = pair(**RAW)
    cut = replace(ended, b=replace(ended.b, finish_reason="length"))
    assert (ended.truncated, cut.truncated, cut.a.truncated) == (False, True, False)


def test_an_imported_string_row_ends_the_prompt_with_the_separator_and_keeps_texts_as_they_are():
    row = trl_row(pair(), pair_decide(votes("b"), judges="humans"), conversational=False)
    assert row["prompt"] == "Question?" + PROMPT_SEPARATOR
    assert (row["chosen"], row["rejected"]) == ("Answer B", "Answer A")
    assert (row["chosen_side"], row["chosen_candidate_id"], row["rejected_candidate_id"]) == ("b", 12, 11)
    assert (row["chosen_model"], row["rejected_model"]) == ("model-b", "model-a")
    assert row["rejected_sampling_params"] == '{"temperature": 0.7}'


def test_conversational_row_puts_the_system_message_first_and_wraps_responses_as_assistant_messages():
    conversation = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    row = trl_row(pair(conversation, system="Be brief."), pair_decide(votes("a"), judges="humans"), conversational=True)
    assert row["prompt"] == [{"role": "system", "content": "Be brief."}, *conversation]
    assert row["chosen"] == [{"role": "assistant", "content": "Answer A"}]
    assert row["rejected"] == [{"role": "assistant", "content": "Answer B"}]


def test_an_imported_string_row_refuses_a_conversation():
    with pytest.raises(ValueError, match="the string format cannot hold it"):
        trl_row(pair(system="Be brief."), pair_decide(votes("a"), judges="humans"), conversational=False)


def test_vote_provenance_is_relabelled_as_chosen_or_rejected_in_annotator_order():
    decision = pair_decide(votes("b", "a", "tie", "b"), judges="humans")
    row = trl_row(pair(), decision, conversational=True)
    assert row["annotator_ids"] == [1, 2, 3, 4]
    assert row["annotator_votes"] == ["chosen", "rejected", "tie", "chosen"]
    assert (row["votes"], row["agreement"], row["judge_source"]) == (4, 0.5, "human")


def test_row_keys_are_exactly_the_parquet_columns():
    row = trl_row(pair(), pair_decide(votes("a"), judges="humans"), conversational=True)
    assert list(row) == parquet_schema(conversational=True).names


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"text_a": "same", "text_b": "same"}, Refusal.SAME_TEXT),
        ({"text_a": "  \n"}, Refusal.EMPTY_RESPONSE),
        ({"prompt_ids": (7, 8)}, Refusal.PROMPT_MISMATCH),
        ({}, None),
    ],
)
def test_pair_checks_before_writing(kwargs, problem):
    assert pair_problem(pair(**kwargs)) == problem


def test_openai_line_has_the_three_fields_and_refuses_multi_turn_prompts():
    row = trl_row(pair(system="Be brief."), pair_decide(votes("a"), judges="humans"), conversational=True)
    assert openai_row(row) == {
        "input": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Question?"}]},
        "preferred_output": [{"role": "assistant", "content": "Answer A"}],
        "non_preferred_output": [{"role": "assistant", "content": "Answer B"}],
    }
    assert openai_problem(pair(system="Be brief.")) is None
    multi = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert openai_problem(pair(multi)) == Refusal.OPENAI_MULTI_TURN
