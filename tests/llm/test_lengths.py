"""llm/lengths.py: token lengths of preference rows as TRL's DPOTrainer tokenizes them."""

import pytest

from core.errors import InputError
from llm.lengths import LengthMeter, RowLength, tokenizer_load
from tests.factories import TINY_MODEL

ROW = {"prompt": "Once upon a time\n\n", "chosen": "a cat sat.", "rejected": "a dog ran away."}


def test_string_rows_count_the_eos_trl_appends_once_even_when_a_response_already_ends_with_it():
    tokenizer = tokenizer_load(str(TINY_MODEL))
    meter = LengthMeter(tokenizer=tokenizer, conversational=False)
    prompt = len(tokenizer(ROW["prompt"])["input_ids"])
    longest = len(tokenizer(ROW["prompt"] + ROW["rejected"])["input_ids"]) + 1
    ends_with_eos = {**ROW, "rejected": ROW["rejected"] + tokenizer.eos_token}
    assert meter.measure([ROW, ends_with_eos]) == [RowLength(prompt, longest), RowLength(prompt, longest)]


def test_a_tokenizer_by_name_measures_as_the_loaded_one():
    loaded = LengthMeter(tokenizer=tokenizer_load(str(TINY_MODEL)), conversational=False)
    assert LengthMeter(tokenizer=str(TINY_MODEL), conversational=False).measure([ROW]) == loaded.measure([ROW])


def test_overlong_and_prompt_fills_are_what_trl_cuts_and_drops():
    length = RowLength(prompt=10, longest=14)
    assert (length.overlong(14), length.overlong(13)) == (False, True)
    assert (length.prompt_fills(11), length.prompt_fills(10)) == (False, True)


def test_conversational_rows_need_a_tokenizer_with_a_chat_template():
    with pytest.raises(InputError, match="has no chat template, so conversational rows cannot be measured"):
        LengthMeter(tokenizer=str(TINY_MODEL), conversational=True)
