from collections import Counter
from datetime import UTC, datetime

import pytest

from exports.aggregation import pair_decide
from exports.formats import (
    PROMPT_SEPARATOR,
    CandidateTexts,
    PairTexts,
    Refusal,
    openai_problem,
    openai_row,
    pair_problem,
    split_of,
    trl_row,
)
from exports.writers import parquet_schema
from tests.exports.test_aggregation import votes

AT = datetime(2026, 1, 1, tzinfo=UTC)


def pair(messages=None, system="", text_a="Answer A", text_b="Answer B", prompt_ids=(7, 7)) -> PairTexts:
    return PairTexts(
        comparison_id=1,
        created_at=AT,
        prompt_id=7,
        prompt_hash="f" * 64,
        messages=messages or [{"role": "user", "content": "Question?"}],
        system=system,
        a=CandidateTexts(11, prompt_ids[0], text_a, "model-a", {"temperature": 0.7}, 1),
        b=CandidateTexts(12, prompt_ids[1], text_b, "model-b", {}, None),
    )


def test_split_is_deterministic_and_follows_the_seed():
    hashes = [f"{i:064x}" for i in range(2000)]
    first = [split_of(h, seed=1, val_fraction=0.2) for h in hashes]
    assert first == [split_of(h, seed=1, val_fraction=0.2) for h in hashes]
    assert first != [split_of(h, seed=2, val_fraction=0.2) for h in hashes]
    share = Counter(first)["validation"] / len(hashes)
    assert 0.17 < share < 0.23


def test_zero_val_fraction_puts_everything_in_train():
    assert {split_of(f"{i:064x}", seed=0, val_fraction=0.0) for i in range(500)} == {"train"}


def test_string_row_ends_the_prompt_with_the_separator_and_keeps_texts_as_they_are():
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


def test_string_row_refuses_a_conversation():
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
