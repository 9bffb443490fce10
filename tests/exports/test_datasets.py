"""The files load with Hugging Face `datasets` as they are, and TRL's DPOTrainer takes them without mapping."""

import json

import pyarrow.parquet as pq
import pytest

from annotator.importing import pairs_import, pairs_read
from annotator.services import campaign_create
from exports.services import dataset_export_create, dataset_export_run
from tests.exports.helpers import judge_all
from tests.factories import HUMAN_PREFERENCES, TINY_MODEL, add_pair, make_campaign, make_user

pytestmark = pytest.mark.django_db

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def real_campaign(every: int):
    """Every `every`-th row of the shared human preferences, judged by one annotator along the labels."""
    campaign = campaign_create(name=f"Real {every}")
    with HUMAN_PREFERENCES.open("rb") as handle:
        pairs_import(rows=pairs_read(handle, name=HUMAN_PREFERENCES.name)[::every], campaign_name=campaign.name)
    add_pair(campaign, "Say hi.", "Hi!", "Go away.", system="You are polite.")
    judge_all(campaign, make_user(f"ann{every}"), lambda c: c.metadata.get("label", "a"))
    return campaign


def export_to(campaign, out_dir, **options):
    return dataset_export_run(export=dataset_export_create(campaign=campaign, options=options, out_dir=out_dir))


def test_load_dataset_reads_a_conversational_export_as_written(tmp_path):
    from datasets import load_dataset

    export = export_to(real_campaign(every=10), tmp_path / "export", val_fraction=0.3)
    files = {split: str(tmp_path / "export" / f"{split}.parquet") for split in ("train", "validation")}
    dataset = load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert dataset["train"].num_rows == export.stats["rows"]["train"]
    assert dataset["validation"].num_rows == export.stats["rows"]["validation"]
    first = dataset["train"][0]
    written = pq.read_table(files["train"]).slice(0, 1).to_pylist()[0]
    assert first["prompt"] == written["prompt"]
    assert first["chosen"] == written["chosen"] and first["chosen"][0]["role"] == "assistant"
    assert first["annotator_ids"] == written["annotator_ids"]
    with_system = next(
        row
        for row in dataset["train"].to_list() + dataset["validation"].to_list()
        if row["prompt"][0]["role"] == "system"
    )
    assert with_system["prompt"] == [
        {"role": "system", "content": "You are polite."},
        {"role": "user", "content": "Say hi."},
    ]
    # The card's YAML front matter names the splits, so the directory alone loads too.
    by_card = load_dataset(str(tmp_path / "export"), cache_dir=str(tmp_path / "cache2"))
    assert {split: by_card[split].num_rows for split in by_card} == export.stats["rows"]


def test_load_dataset_reads_a_string_export_and_json_loads_the_openai_one(tmp_path):
    from datasets import load_dataset

    campaign = make_campaign("Plain", pairs=12, sampled="text")
    judge_all(campaign, make_user("ann"), lambda c: "b")
    export_to(campaign, tmp_path / "string", val_fraction=0.0)
    dataset = load_dataset(
        "parquet", data_files=str(tmp_path / "string" / "train.parquet"), cache_dir=str(tmp_path / "c")
    )
    assert dataset["train"][0]["prompt"] == "Question 0?"  # the text the model continued, nothing added
    assert dataset["train"].features["chosen"].dtype == "string"

    chat = make_campaign("Chat", pairs=12, sampled="chat")
    judge_all(chat, make_user("ann2"), lambda c: "b")
    export_to(chat, tmp_path / "openai", format="openai", val_fraction=0.0)
    openai = load_dataset("json", data_files=str(tmp_path / "openai" / "train.jsonl"), cache_dir=str(tmp_path / "c2"))
    assert set(openai["train"].column_names) == {"input", "preferred_output", "non_preferred_output"}
    first = json.loads((tmp_path / "openai" / "train.jsonl").read_text().splitlines()[0])
    assert openai["train"][0]["preferred_output"] == first["preferred_output"]


def tiny_tokenizer(tmp_path, *, chat: bool):
    """stories260K's tokenizer, with eos as pad and (for conversations) a minimal chat template, saved."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL)
    tokenizer.pad_token = tokenizer.eos_token
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    path = tmp_path / ("chat-tokenizer" if chat else "tokenizer")
    tokenizer.save_pretrained(path)
    return tokenizer, path


def dpo_trainer(tmp_path, tokenizer, train, eval_dataset=None, max_length=256):
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(
        output_dir=str(tmp_path / "run"),
        bf16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        learning_rate=5e-4,
        max_steps=1,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        max_length=max_length,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
    )
    return DPOTrainer(
        model=str(TINY_MODEL),
        args=config,
        train_dataset=train,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
    )


@pytest.mark.slow
def test_dpo_trainer_takes_a_conversational_export_and_drops_exactly_the_rows_the_card_counted(tmp_path):
    from datasets import load_dataset

    tokenizer, tokenizer_path = tiny_tokenizer(tmp_path, chat=True)
    export = export_to(
        real_campaign(every=10), tmp_path / "export", val_fraction=0.0, tokenizer=str(tokenizer_path), max_length=256
    )
    assert export.stats["overlong"] > 0, "long hh-rlhf conversations do not fit 256 tokens"
    train = load_dataset(
        "parquet", data_files=str(tmp_path / "export" / "train.parquet"), cache_dir=str(tmp_path / "c")
    )
    trainer = dpo_trainer(tmp_path, tokenizer, train["train"])
    prepared = trainer.train_dataset
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(prepared.column_names)
    # TRL silently drops rows whose prompt alone fills max_length: the export counted exactly those.
    assert len(prepared) == export.stats["exported"] - export.stats["prompt_fills_max_length"]
    # and the rows it will truncate are the ones the export called overlong
    truncated = sum(
        max(len(r["prompt_ids"]) + len(r["chosen_ids"]), len(r["prompt_ids"]) + len(r["rejected_ids"])) > 256
        for r in prepared
    )
    assert truncated == export.stats["overlong"] - export.stats["prompt_fills_max_length"]
    trainer.train()
    assert trainer.state.log_history[0]["loss"] > 0


@pytest.mark.slow
def test_dpo_trainer_takes_a_string_export_with_a_validation_split(tmp_path):
    from datasets import load_dataset

    campaign = make_campaign("Stories", pairs=0)
    for i in range(24):
        add_pair(
            campaign,
            f"Once upon a time, there was a cat number {i}",
            " who loved to play.",
            " who was sad.",
            sampled="text",
        )
    judge_all(campaign, make_user("ann"), lambda c: "a")
    tokenizer, tokenizer_path = tiny_tokenizer(tmp_path, chat=False)
    export = export_to(
        campaign, tmp_path / "export", val_fraction=0.3, seed=1, tokenizer=str(tokenizer_path), max_length=64
    )
    assert export.stats["overlong"] == 0
    files = {split: str(tmp_path / "export" / f"{split}.parquet") for split in ("train", "validation")}
    dataset = load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "c"))
    trainer = dpo_trainer(tmp_path, tokenizer, dataset["train"], dataset["validation"], max_length=64)
    assert len(trainer.train_dataset) == export.stats["rows"]["train"]
    assert len(trainer.eval_dataset) == export.stats["rows"]["validation"]
    trainer.train()
    assert "eval_loss" in trainer.evaluate()
