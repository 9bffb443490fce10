"""The SFT warm start: fine-tune on prompt -> chosen before DPO, saved whole or not at all, reused on resume."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from training.config import DPORunConfig, trainer_kwargs
from training.data import rows_dataset
from training.device import DeviceInfo, is_main_process
from training.lora import lora_config, merge_adapter_from_disk

logger = logging.getLogger(__name__)

SFT_DIR = "sft"


def sft_warm_start(config: DPORunConfig, device: DeviceInfo, tokenizer, train_rows: list[dict[str, Any]]) -> Path:
    """Fine-tune on prompt -> chosen first and return the saved model, which DPO then trains and uses as its
    reference (SFT-then-DPO converges faster and more stably than DPO from a base model).

    With --lora the SFT adapter is merged into the weights, so the DPO adapter starts from the SFT model.
    A resumed run reuses a finished warm start."""
    from trl import SFTConfig, SFTTrainer

    sft_dir = Path(config.output) / SFT_DIR
    if (sft_dir / "config.json").is_file():  # only a resumed run of the same settings gets here (resume_check)
        logger.info("Reusing the SFT warm start in %s", sft_dir)
        return sft_dir
    if is_main_process():  # what a crash during an earlier save left
        for leftover in (SFT_DIR + ".partial", SFT_DIR + ".merged"):
            shutil.rmtree(sft_dir.with_name(leftover), ignore_errors=True)
    args = SFTConfig(
        **trainer_kwargs(config, output_dir=str(sft_dir), on_gpu=device.on_gpu, bf16=device.bf16),
        num_train_epochs=config.sft_epochs,
        learning_rate=config.sft_learning_rate or config.resolved_learning_rate,
        save_strategy="no",
    )
    rows = [{"prompt": row["prompt"], "completion": row["chosen"]} for row in train_rows]
    trainer = SFTTrainer(
        model=config.model,
        args=args,
        train_dataset=rows_dataset(rows),
        processing_class=tokenizer,
        peft_config=lora_config(config) if config.lora else None,
    )
    trainer.train()
    # Saved under a temporary name, renamed when complete: a crash never leaves a half SFT model to reuse.
    partial = sft_dir.with_name(SFT_DIR + ".partial")
    trainer.save_model(str(partial))  # gathers sharded weights on every rank
    if trainer.accelerator.is_main_process:
        if config.lora:
            merged = partial.with_name(SFT_DIR + ".merged")
            merge_adapter_from_disk(partial, merged, tokenizer)
            shutil.rmtree(partial)
            partial = merged
        tokenizer.save_pretrained(str(partial))
        partial.rename(sft_dir)
    trainer.accelerator.wait_for_everyone()
    return sft_dir
