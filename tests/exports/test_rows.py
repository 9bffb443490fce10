import sys
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from exports.formats import CONVERSATIONAL, OPENAI, PROMPT_SEPARATOR, STRING, Refusal
from exports.rows import ACCEPTED, PAIRS, REFUSALS, CountedVotes, in_validation, pairs_check, trl_table, with_system
from exports.writers import UTC_TIME, parquet_schema

AT = datetime(2026, 1, 1, tzinfo=UTC)
QUESTION = [{"role": "user", "content": "Question?"}]


def pair(
    messages=None, system="", text_a="Answer A", text_b="Answer B", prompt_ids=(7, 7), sampled=("", ""), texts=("", ""),
    finish=("", ""),
) -> dict:  # fmt: skip
    """One pair as `streams.pair_texts_for` reads it (a row of `rows.PAIRS`)."""
    row = {
        "comparison_id": 1,
        "pair_created_at": AT,
        "prompt_id": 7,
        "prompt_hash": "f" * 64,
        "messages": messages or QUESTION,
        "system": system,
    }
    for index, (side, text, params, seed) in enumerate(
        [("a", text_a, '{"temperature": 0.7, "a": 1}', 1), ("b", text_b, "{}", None)]
    ):
        row |= {
            f"{side}_id": 11 + index,
            f"{side}_prompt_id": prompt_ids[index],
            f"{side}_text": text,
            f"{side}_model_name": f"model-{side}",
            f"{side}_sampling_params": params,
            f"{side}_seed": seed,
            f"{side}_prompt_format": sampled[index],
            f"{side}_prompt_text": texts[index],
            f"{side}_finish_reason": finish[index],
        }
    return row


def batch(*pairs: dict) -> pa.Table:
    return pa.Table.from_pylist(list(pairs), schema=PAIRS)


def refused(*pairs: dict, kind: str = CONVERSATIONAL, keep_truncated: bool = False) -> list[Refusal | None]:
    checks = pairs_check(batch(*pairs), kind=kind, keep_truncated=keep_truncated)
    return [None if code == ACCEPTED else REFUSALS[code] for code in checks.refused]


def votes(*verdicts: str) -> CountedVotes:
    """The counted votes of one row, by annotators 1, 2, ..."""
    offsets = pa.array([0, len(verdicts)], pa.int32())
    return CountedVotes(
        annotator_ids=pa.ListArray.from_arrays(offsets, pa.array(range(1, len(verdicts) + 1), pa.int64())),
        verdicts=pa.ListArray.from_arrays(offsets, pa.array(verdicts, pa.string())),
        judged_at=pa.ListArray.from_arrays(offsets, pa.array([AT] * len(verdicts), UTC_TIME)),
        strengths=pa.ListArray.from_arrays(offsets, pa.array([""] * len(verdicts), pa.string())),
        ranking_ids=pa.ListArray.from_arrays(offsets, pa.array([None] * len(verdicts), pa.int64())),
    )


def row(one: dict, *verdicts: str, conversational: bool = True) -> dict:
    """The exported row of one pair the votes decide (the first verdict wins)."""
    winner = verdicts[0] if verdicts else "a"
    counted = votes(*(verdicts or ("a",)))
    agreement = sum(v == winner for v in verdicts or "a") / len(verdicts or "a")
    table = trl_table(
        batch(one),
        a_won=np.array([winner == "a"]),
        votes=np.array([len(verdicts or "a")]),
        agreement=np.array([agreement]),
        judge_source=np.array(["human"]),
        counted=counted,
        conversational=conversational,
        schema=parquet_schema(conversational=conversational),
    )
    return table.to_pylist()[0]


RAW = {"sampled": ("text", "text"), "texts": ("Question?", "Question?")}


def test_a_raw_text_completion_becomes_a_string_row_whose_prompt_is_the_exact_text_the_model_continued():
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]
    continued = "Be brief.\n\nHi\n\nHey"
    raw = pair(conversation, system="Be brief.", sampled=("text", "text"), texts=(continued, continued))
    written = row(raw, "a", conversational=False)
    assert (written["prompt"], written["chosen"], written["rejected"]) == (continued, "Answer A", "Answer B")
    assert written["prompt"] + written["chosen"] == "Be brief.\n\nHi\n\nHeyAnswer A"  # TRL's join: nothing between
    assert refused(raw, kind=STRING) == [None]


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
    assert refused(pair(sampled=sampled, texts=texts), kind=kind) == [problem]


def test_a_string_row_refuses_chat_templated_responses():
    with pytest.raises(ValueError, match="a string row needs responses sampled as raw text completions"):
        row(pair(sampled=("chat", "chat")), "a", conversational=False)


def test_a_pair_with_a_response_cut_off_at_its_token_limit_is_left_out_unless_kept_and_counted_either_way():
    ended, cut = pair(**RAW), pair(**RAW, finish=("", "length"))
    checks = pairs_check(batch(ended, cut), kind=STRING, keep_truncated=False)
    assert checks.truncated.tolist() == [False, True]
    assert refused(ended, cut, kind=STRING) == [None, Refusal.TRUNCATED]
    assert refused(ended, cut, kind=STRING, keep_truncated=True) == [None, None]


def test_a_cut_off_pair_refused_for_another_reason_is_not_counted_as_truncated():
    checks = pairs_check(batch(pair(text_a="same", text_b="same", finish=("length", ""))), kind=CONVERSATIONAL,
                         keep_truncated=False)  # fmt: skip
    assert (checks.truncated.tolist(), REFUSALS[checks.refused[0]]) == ([False], Refusal.SAME_TEXT)


def test_an_imported_string_row_ends_the_prompt_with_the_separator_and_keeps_texts_as_they_are():
    written = row(pair(), "b", conversational=False)
    assert written["prompt"] == "Question?" + PROMPT_SEPARATOR
    assert (written["chosen"], written["rejected"]) == ("Answer B", "Answer A")
    assert (written["chosen_side"], written["chosen_candidate_id"], written["rejected_candidate_id"]) == ("b", 12, 11)
    assert (written["chosen_model"], written["rejected_model"]) == ("model-b", "model-a")
    assert (written["chosen_seed"], written["rejected_seed"]) == (None, 1)
    assert (written["chosen_sampling_params"], written["rejected_sampling_params"]) == (
        "{}",
        '{"a": 1, "temperature": 0.7}',  # keys sorted
    )


def test_conversational_row_puts_the_system_message_first_and_wraps_responses_as_assistant_messages():
    conversation = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    written = row(pair(conversation, system="Be brief."), "a")
    assert written["prompt"] == [{"role": "system", "content": "Be brief."}, *conversation]
    assert written["chosen"] == [{"role": "assistant", "content": "Answer A"}]
    assert written["rejected"] == [{"role": "assistant", "content": "Answer B"}]


def test_the_system_message_goes_first_in_each_conversation_of_a_batch_that_has_one():
    conversations = [[{"role": "user", "content": f"q{i}"}] * (i % 3 + 1) for i in range(6)]
    systems = ["", "S1", "", "S3", "S4", ""]
    prompts = with_system(pa.array(conversations, PAIRS.field("messages").type), pa.array(systems))
    assert prompts.to_pylist() == [
        ([{"role": "system", "content": system}] if system else []) + conversation
        for conversation, system in zip(conversations, systems, strict=True)
    ]


def test_an_imported_string_row_refuses_a_conversation():
    with pytest.raises(ValueError, match="the string format cannot hold it"):
        row(pair(system="Be brief."), "a", conversational=False)


def test_vote_provenance_is_relabelled_as_chosen_or_rejected_in_annotator_order():
    written = row(pair(), "b", "a", "tie", "b", "both_bad")
    assert written["annotator_ids"] == [1, 2, 3, 4, 5]
    assert written["annotator_votes"] == ["chosen", "rejected", "tie", "chosen", "both_bad"]
    assert (written["votes"], written["agreement"], written["judge_source"]) == (5, 0.4, "human")
    assert written["judged_at"] == [AT] * 5 and written["pair_created_at"] == AT


def test_row_keys_are_exactly_the_parquet_columns():
    assert list(row(pair(), "a")) == parquet_schema(conversational=True).names


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"text_a": "same", "text_b": "same"}, Refusal.SAME_TEXT),
        ({"text_a": "  \n"}, Refusal.EMPTY_RESPONSE),
        ({"text_b": ""}, Refusal.EMPTY_RESPONSE),
        ({"text_a": "\u3000\x1c\u2028"}, Refusal.EMPTY_RESPONSE),  # whitespace to Python, not only ASCII
        ({"text_a": "\u200b"}, None),  # a zero-width space is not whitespace to str.strip()
        ({"prompt_ids": (7, 8)}, Refusal.PROMPT_MISMATCH),
        ({}, None),
    ],
)
def test_pair_checks_before_writing(kwargs, problem):
    assert refused(pair(**kwargs)) == [problem]


def test_a_blank_response_is_exactly_what_str_strip_leaves_empty():
    whitespace = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    others = ["\u200b", "\ufeff", "\x00", "a"]
    pairs = [pair(text_a=f" {c} ") for c in whitespace + others]
    assert refused(*pairs) == [Refusal.EMPTY_RESPONSE] * len(whitespace) + [None] * len(others)


def test_openai_refuses_multi_turn_prompts_but_not_a_system_message():
    multi = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert refused(pair(system="Be brief."), pair(multi), kind=OPENAI) == [None, Refusal.OPENAI_MULTI_TURN]
    assert refused(pair(multi), kind=CONVERSATIONAL) == [None]


def test_the_split_of_each_row_follows_its_prompt_hash():
    hashes = pa.array([f"{i:064x}" for i in range(200)])
    validation = in_validation(hashes, seed=1, val_fraction=0.3)
    assert validation.tolist() == in_validation(hashes, seed=1, val_fraction=0.3).tolist()
    assert 0.15 < validation.mean() < 0.45
    assert not in_validation(hashes, seed=1, val_fraction=0.0).any()


def test_the_margin_weighs_each_vote_by_the_strength_its_judge_gave():
    from exports.rows import vote_margins

    offsets = pa.array([0, 3, 4, 4], pa.int32())  # three pairs: three votes, one vote, none
    labels = pa.array(["chosen", "chosen", "rejected", "tie"])
    strengths = pa.array(["clearly", "slightly", "", ""])
    margins = vote_margins(labels=labels, strengths=strengths, offsets=offsets)
    assert margins.tolist() == pytest.approx([(1 + 0.5 - 1) / 3, 0.0, 0.0])
