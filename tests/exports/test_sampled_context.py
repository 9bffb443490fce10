"""Real vLLM candidates, exported: each row shows the model the context it wrote its responses in.

The tiny story model has no chat template: vLLM continues the plain prompt text, so the export writes string rows
whose prompt is exactly that text, and TRL's prompt + chosen is the token sequence the model produced. The same
model with a ChatML template added samples through `LLM.chat`: the export writes conversations, one turn
included, that the template renders into exactly the prompt tokens vLLM used.
"""

import json

import pytest

from annotator.models import Campaign, Candidate
from annotator.services import campaign_create
from core.errors import InputError
from exports.services import dataset_export_create, dataset_export_run
from generation.run_config import RunConfig
from generation.services import generation_run_create, generation_run_execute
from tests.exports.helpers import judge_all, read_rows
from tests.exports.test_datasets import dpo_trainer
from tests.factories import TINY_MODEL, make_user
from tests.generation.conftest import STORY_PROMPTS, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

# Short responses: the tiny model never ends a story with EOS (it starts the next one with BOS, which vLLM's
# text drops), so every response stops at max_tokens, and 40 tokens stay clear of a second story.
MAX_TOKENS = 40
PROMPTS = [{"prompt": p} for p in STORY_PROMPTS[:4]] + [
    {"prompt": "Lily had a red kite", "system": "A story for children."}
]


def generated_and_judged(tmp_path, name: str, backend) -> Campaign:
    prompts = write_jsonl(tmp_path / f"{name}.jsonl", PROMPTS)
    campaign_create(name=name)
    config = RunConfig(
        model=backend.model_name, prompts_file=str(prompts), temperatures=[0.8, 1.2], top_p=[0.95], seed=5,
        max_tokens=MAX_TOKENS,
    )  # fmt: skip
    run = generation_run_create(campaign_name=name, config=config)
    assert generation_run_execute(run=run, backends={"a": backend}).generated == len(PROMPTS)
    judge_all(run.campaign, make_user(f"judge-{name}"), lambda c: "a")
    return run.campaign


def regenerated(llm, prompt, row, *, chat: bool):
    """The chosen response sampled again by vLLM from the exported prompt, with its recorded settings and seed."""
    from vllm import SamplingParams

    settings = json.loads(row["chosen_sampling_params"])
    params = SamplingParams(**settings, seed=row["chosen_seed"])
    [output] = (
        llm.chat([prompt], [params], use_tqdm=False) if chat else llm.generate([prompt], [params], use_tqdm=False)
    )
    return output


def chat_ids(tokenizer, messages, *, add_generation_prompt: bool = False) -> list[int]:
    """Token ids of a conversation through the template, as TRL's DPOTrainer tokenizes it."""
    encoded = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, add_generation_prompt=add_generation_prompt
    )
    return list(encoded["input_ids"])


def test_raw_text_candidates_export_as_strings_the_model_produced_token_for_token(tmp_path, vllm_backend):
    campaign = generated_and_judged(tmp_path, "Stories", vllm_backend)
    assert set(Candidate.objects.values_list("prompt_format", "finish_reason")) == {("text", "length")}

    # Cut off at max_tokens, every pair is left out by default, and the refusal says how to keep them.
    default = dataset_export_create(campaign=campaign, options={}, out_dir=tmp_path / "default")
    with pytest.raises(InputError, match=r"5 refused because a response was cut off at its token limit"):
        dataset_export_run(export=default)

    export = dataset_export_run(
        export=dataset_export_create(
            campaign=campaign, options={"val_fraction": 0.0, "keep_truncated": True}, out_dir=tmp_path / "kept"
        )
    )
    assert (export.stats["format"], export.stats["exported"], export.stats["truncated"]) == ("string", 5, 5)
    rows = read_rows(tmp_path / "kept")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL)
    for row in rows:
        chosen = Candidate.objects.get(pk=row["chosen_candidate_id"])
        # The exported prompt is, byte for byte, the text vLLM was given: nothing added, none of "\n\n".
        assert row["prompt"] == chosen.prompt_text
        assert row["prompt"] in (*STORY_PROMPTS, "A story for children.\n\nLily had a red kite")
        again = regenerated(vllm_backend.llm, row["prompt"], row, chat=False)
        assert again.outputs[0].text == row["chosen"]  # the same prompt and seed write the same response
        produced = list(again.prompt_token_ids) + list(again.outputs[0].token_ids)
        assert tokenizer(row["prompt"])["input_ids"] == list(again.prompt_token_ids)
        assert tokenizer(row["prompt"] + row["chosen"])["input_ids"] == produced

    # And what TRL makes of the file: the prompt and chosen tokens are the model's own, then the EOS TRL
    # appends (which these cut-off responses never wrote: why they are left out by default).
    from datasets import load_dataset

    data = load_dataset("parquet", data_files=str(tmp_path / "kept" / "train.parquet"), cache_dir=str(tmp_path / "c"))
    trainer = dpo_trainer(tmp_path, tokenizer, data["train"])
    for row, tokenized in zip(rows, trainer.train_dataset, strict=True):
        again = regenerated(vllm_backend.llm, row["prompt"], row, chat=False)
        assert tokenized["prompt_ids"] == list(again.prompt_token_ids)
        assert tokenized["chosen_ids"] == [*again.outputs[0].token_ids, tokenizer.eos_token_id]


def test_chat_templated_candidates_export_as_conversations_the_template_renders_as_vllm_did(
    tmp_path, chat_model, vllm_chat_backend
):
    campaign = generated_and_judged(tmp_path, "Chats", vllm_chat_backend)
    assert set(Candidate.objects.values_list("prompt_format", "prompt_text")) == {("chat", "")}

    export = dataset_export_run(
        export=dataset_export_create(
            campaign=campaign, options={"val_fraction": 0.0, "keep_truncated": True}, out_dir=tmp_path / "export"
        )
    )
    assert export.stats["format"] == "conversational"  # single-turn prompts included
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    for row in read_rows(tmp_path / "export"):
        messages = [m for m in row["prompt"] if m["role"] == "user"]
        assert len(messages) == 1 and messages[0]["content"] in {p["prompt"] for p in PROMPTS}
        again = regenerated(vllm_chat_backend.llm, row["prompt"], row, chat=True)
        assert [{"role": "assistant", "content": again.outputs[0].text}] == row["chosen"]
        # TRL renders the prompt with the model's template: exactly the tokens vLLM's LLM.chat sampled after.
        rendered = chat_ids(tokenizer, row["prompt"], add_generation_prompt=True)
        assert rendered == list(again.prompt_token_ids)
        full = chat_ids(tokenizer, row["prompt"] + row["chosen"])
        assert full[: len(rendered) + len(again.outputs[0].token_ids)] == [
            *again.prompt_token_ids,
            *again.outputs[0].token_ids,
        ]
