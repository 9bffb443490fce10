"""The glue between a checked DPORunConfig and TRL: load, (SFT warm start,) DPO, save.

Read top to bottom, `dpo_train` does what users otherwise write by hand around `DPOTrainer`; each step that
takes more than a few lines lives beside it: the process, device and threads (`device.py`), the checkpoint a
resumed run continues from (`resume.py`), the SFT warm start whose result becomes the reference model
(`warm_start.py`), LoRA with an optional merge (`lora.py`), scoring from full logits on CPU (`cpu_logps.py`),
metrics per logging step and the NaN stop (`callbacks.py`). Heavy imports (torch, transformers, trl, peft) stay
inside functions so the web process never loads them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError
from training.config import DPORunConfig, trl_dpo_config
from training.cpu_logps import score_from_full_logits
from training.data import (
    PreferenceData,
    data_format_check,
    length_report,
    parquet_dataset,
    read_rows,
    rows_dataset,
)
from training.device import DeviceInfo, detect_device, is_main_process, set_threads, world_size
from training.lora import lora_config, lora_dropout_restore, merge_adapter_from_disk
from training.resume import latest_checkpoint
from training.warm_start import sft_warm_start

logger = logging.getLogger(__name__)

MERGED_DIR = "merged"
METRICS_FILE = "metrics.jsonl"
FINAL_METRICS_FILE = "final_metrics.json"


@dataclass
class TrainingResult:
    global_step: int
    final_metrics: dict[str, Any]
    model_dir: Path  # what AutoModelForCausalLM.from_pretrained loads (the adapter's directory with --lora)
    merged_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)


def dpo_train(
    config: DPORunConfig,
    data: PreferenceData,
    *,
    resume: bool = False,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[DeviceInfo, list[str]], None] | None = None,
    extra_callbacks: list | None = None,
) -> TrainingResult:
    """Train `config.model` with DPO on `data` into `config.output`; return the final metrics."""
    from trl import DPOTrainer

    from training.callbacks import MetricsCallback, metrics_truncate

    set_threads(config)
    device = detect_device(config)
    output_dir = Path(config.output)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(output_dir) if resume else None

    tokenizer = _tokenizer(config, data)
    train_rows = read_rows(data.train.path)
    eval_rows = read_rows(data.validation.path) if data.validation else None
    warnings = _length_warnings(config, data, tokenizer, train_rows, eval_rows) + _sharding_warnings(device)
    if on_start is not None:
        on_start(device, warnings)
    _log_start(config, data, device)

    model_path = str(sft_warm_start(config, device, tokenizer, train_rows)) if config.sft_epochs else config.model

    metrics_path = output_dir / METRICS_FILE
    if is_main_process():  # the other ranks write nothing here
        if resume_from is not None:
            metrics_truncate(metrics_path, after_step=resume_from[0])
        elif metrics_path.exists():
            metrics_path.unlink()
    args = trl_dpo_config(
        config, output_dir=str(output_dir), on_gpu=device.on_gpu, bf16=device.bf16, has_eval=eval_rows is not None
    )
    # Several processes precomputing reference log-probs must share one on-disk dataset cache (TRL writes
    # them next to the dataset's cache files; an in-memory dataset gets a private temporary directory).
    shared = config.precompute_ref_logps and world_size() > 1
    trainer = DPOTrainer(
        model=model_path,
        args=args,
        train_dataset=parquet_dataset(data.train.path) if shared else rows_dataset(train_rows),
        eval_dataset=(
            None if eval_rows is None else parquet_dataset(data.validation.path) if shared else rows_dataset(eval_rows)
        ),
        processing_class=tokenizer,
        peft_config=lora_config(config) if config.lora else None,
        callbacks=[MetricsCallback(metrics_path, on_record), *(extra_callbacks or [])],
    )
    if config.lora:
        lora_dropout_restore(trainer.model, config.lora_dropout or 0.0)
    if not device.on_gpu:
        score_from_full_logits(trainer, config)

    train_output = trainer.train(resume_from_checkpoint=str(resume_from[1]) if resume_from else None)
    final_metrics = {key: value for key, value in train_output.metrics.items() if key != "epoch"}
    if eval_rows is not None:
        final_metrics.update(_final_evaluation(trainer))

    trainer.save_model(str(output_dir))  # gathers sharded weights (ZeRO-3, FSDP) on every rank
    merged_dir = None
    if config.lora and config.merge:
        merged_dir = output_dir / MERGED_DIR
        if trainer.accelerator.is_main_process:
            merge_adapter_from_disk(output_dir, merged_dir, tokenizer)
        trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        (output_dir / FINAL_METRICS_FILE).write_text(json.dumps(final_metrics, indent=2) + "\n")
    return TrainingResult(
        global_step=trainer.state.global_step,
        final_metrics=final_metrics,
        model_dir=output_dir,
        merged_dir=merged_dir,
        warnings=warnings,
    )


def _tokenizer(config: DPORunConfig, data: PreferenceData) -> Any:
    """The model's tokenizer, with a pad token, fit for the data's format."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model)
    except (OSError, ValueError) as error:  # no such model, or no usable tokenizer files in it
        raise InputError(
            f"--model {config.model}: no tokenizer could be loaded ({error}). Give a local model directory (with "
            "config.json and tokenizer files) or a model id available offline."
        ) from None
    if tokenizer.pad_token is None:  # stories260K, Llama and others ship without one
        tokenizer.pad_token = tokenizer.eos_token
    data_format_check(
        data, tokenizer, model=config.model, allow_string_rows=config.allow_string_rows_with_chat_template
    )
    return tokenizer


def _length_warnings(
    config: DPORunConfig,
    data: PreferenceData,
    tokenizer: Any,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]] | None,
) -> list[str]:
    """Count, report and (when nothing would be left) refuse the rows TRL drops without a word."""
    warnings = []
    for file, rows in ((data.train, train_rows), (data.validation, eval_rows)):
        if file is None or rows is None:
            continue
        report = length_report(rows, tokenizer, config.max_length)
        if len(report.dropped) == len(rows):
            raise InputError(
                f"{file.path}: every row's prompt alone fills max_length={config.max_length} tokens, so TRL would "
                "drop them all. Raise --max-length."
            )
        warnings.extend(report.describe(file.path, config.max_length))
    for line in warnings:
        logger.warning(line)
    return warnings


def _sharding_warnings(device: DeviceInfo) -> list[str]:
    """accelerate (1.15) shards with FSDP only across GPUs (or other accelerators): an FSDP config launched on
    CPUs runs plain data parallel, every process holding the whole model. Say so rather than let it pass."""
    if device.on_gpu or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return []
    line = (
        "The accelerate config asks for FSDP, but there is no GPU: accelerate runs plain data parallel on CPUs "
        "(every process holds the whole model and optimizer)."
    )
    logger.warning(line)
    return [line]


def _log_start(config: DPORunConfig, data: PreferenceData, device: DeviceInfo) -> None:
    logger.info(
        "DPO of %s on %d pairs (%s validation) on %s: %d epoch(s), batch %d, learning rate %g, beta %g, loss %s%s",
        config.model,
        data.train.rows,
        data.validation.rows if data.validation else "no",
        device.description + (", bf16" if device.bf16 else ", fp32"),
        config.n_epochs,
        config.batch_size,
        config.resolved_learning_rate,
        config.beta,
        "+".join(config.trl_losses[0]),
        f", LoRA r={config.lora_r}" if config.lora else "",
    )


def _final_evaluation(trainer) -> dict[str, Any]:
    """The validation metrics at the last step: Trainer's own when it evaluated there, else one more pass."""
    step = trainer.state.global_step
    logged = [e for e in trainer.state.log_history if e.get("step") == step and "eval_loss" in e]
    evaluation = logged[-1] if logged else trainer.evaluate()
    return {key: value for key, value in evaluation.items() if key not in ("epoch", "step")}
