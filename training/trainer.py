"""The glue between a checked DPORunConfig and TRL: load, (SFT warm start,) DPO, save.

Read top to bottom, `dpo_train` does what users otherwise write by hand around `DPOTrainer`: CPU-safe
precision and threads, the tokenizer's missing pad token, the rows TRL would drop without a word, an SFT warm
start whose result becomes the reference model, LoRA with an optional merge, metrics per logging step, a NaN
stop, resume from the last checkpoint. Heavy imports (torch, transformers, trl, peft) stay inside functions so
the web process never loads them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError
from training.config import RESUMABLE_CHANGES, DPORunConfig, trl_dpo_config
from training.data import PreferenceData, length_report, read_rows

logger = logging.getLogger(__name__)

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
SFT_DIR = "sft"
MERGED_DIR = "merged"
METRICS_FILE = "metrics.jsonl"
RUN_CONFIG_FILE = "run_config.json"
THREADS_ENV = "PREFSTUDIO_TORCH_THREADS"
# On CPU, score tokens from full logits when they take at most this much memory (see plain_lm_head).
PLAIN_LOGITS_MAX_BYTES = 1 << 30
REPORT_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}


@dataclass
class DeviceInfo:
    on_gpu: bool
    bf16: bool
    description: str
    world_size: int = 1


@dataclass
class TrainingResult:
    global_step: int
    final_metrics: dict[str, Any]
    model_dir: Path  # what AutoModelForCausalLM.from_pretrained loads (the adapter's directory with --lora)
    merged_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------
# Process-level facts: rank, device, threads, checkpoints


def is_main_process() -> bool:
    """False on the non-main ranks of `accelerate launch` / `torchrun`, which must not write the run's record."""
    return os.environ.get("RANK", "0") == "0"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def set_threads(config: DPORunConfig) -> int | None:
    """Apply --num-threads (or PREFSTUDIO_TORCH_THREADS). With another process busy on a 2-core machine, torch's
    default of 2 threads can make a step 10x slower than 1 thread, so it must be easy to choose."""
    import torch

    threads = config.num_threads
    if not threads and os.environ.get(THREADS_ENV):
        try:
            threads = int(os.environ[THREADS_ENV])
        except ValueError:
            raise InputError(f"{THREADS_ENV}={os.environ[THREADS_ENV]!r} is not a number of threads.") from None
    if threads:
        torch.set_num_threads(threads)
    return threads


def detect_device(config: DPORunConfig) -> DeviceInfo:
    import torch

    on_gpu = torch.cuda.is_available()
    if config.precision == "bf16":
        if not (on_gpu and torch.cuda.is_bf16_supported()):
            raise InputError(
                "--bf16 needs a GPU that computes in bfloat16, and there is none here: use --fp32 (or leave the "
                "precision to auto)."
            )
        bf16 = True
    elif config.precision == "fp32":
        bf16 = False
    else:  # auto: bf16 where the GPU does it natively, fp32 on CPU (no speed-up there, and TRL's default fails)
        bf16 = on_gpu and torch.cuda.is_bf16_supported()
    name = torch.cuda.get_device_name(0) if on_gpu else f"CPU ({torch.get_num_threads()} threads)"
    description = f"{world_size()} x {name}" if world_size() > 1 else name
    return DeviceInfo(on_gpu=on_gpu, bf16=bf16, description=description, world_size=world_size())


def checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (trainer_state.json is written last), by step."""
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        match = CHECKPOINT.match(child.name)
        if match and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> tuple[int, Path]:
    found = checkpoints(output_dir)
    if not found:
        raise InputError(
            f"--resume: {output_dir} holds no checkpoint to resume from (checkpoint-N/ with trainer_state.json). "
            "Start the run without --resume."
        )
    return found[-1]


def output_check(output_dir: Path, *, resume: bool, config: DPORunConfig) -> None:
    """Refuse to mix a new run into the outputs of another; --resume needs a checkpoint of the same run."""
    if resume:
        latest_checkpoint(output_dir)
        resume_check(output_dir, config)
        return
    earlier = ("adapter_config.json", "config.json", SFT_DIR)
    if checkpoints(output_dir) or any((output_dir / name).exists() for name in earlier):
        raise InputError(
            f"{output_dir} already holds a trained model, checkpoints or an SFT warm start: pass --resume to "
            "continue that run, or choose another --output."
        )


def resume_check(output_dir: Path, config: DPORunConfig) -> None:
    """--resume continues the same training: only how it runs (threads, logging, saving) may change."""
    saved_path = output_dir / RUN_CONFIG_FILE
    if not saved_path.is_file():
        return  # killed before it was written: nothing to compare with
    saved = json.loads(saved_path.read_text())
    changed = [
        f"{'--' + name.replace('_', '-')} {saved.get(name)!r} -> {value!r}"
        for name, value in config.to_dict().items()
        if name not in RESUMABLE_CHANGES and name != "output" and name in saved and saved[name] != value
    ]
    if changed:
        raise InputError(
            f"--resume continues the run in {output_dir} with the settings in its {RUN_CONFIG_FILE}, but these "
            f"differ: {'; '.join(changed)}. Resume with the same settings (e.g. --config {saved_path}), or "
            "start a new run in another --output."
        )


def reporting_check(config: DPORunConfig) -> None:
    """--report-to passes through to TRL; say which package is missing before anything loads."""
    import importlib.util

    for target in (part.strip() for part in config.report_to.split(",")):
        if target in REPORT_PACKAGES and importlib.util.find_spec(REPORT_PACKAGES[target]) is None:
            raise InputError(
                f"--report-to {target} needs the {REPORT_PACKAGES[target]} package, which is not installed: "
                f"add it to requirements.txt and install it, or use --report-to none."
            )


# ---------------------------------------------------------------------------------------------------------
# Training


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
    from transformers import AutoTokenizer
    from trl import DPOTrainer

    from training.callbacks import MetricsCallback, metrics_truncate

    set_threads(config)
    device = detect_device(config)
    output_dir = Path(config.output)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(output_dir) if resume else None

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model)
    except (OSError, ValueError) as error:  # no such model, or no usable tokenizer files in it
        raise InputError(
            f"--model {config.model}: no tokenizer could be loaded ({error}). Give a local model directory (with "
            "config.json and tokenizer files) or a model id available offline."
        ) from None
    if tokenizer.pad_token is None:  # stories260K, Llama and others ship without one
        tokenizer.pad_token = tokenizer.eos_token
    if data.format == "conversational" and not tokenizer.chat_template:
        raise InputError(
            f"{data.train.path} is conversational (lists of messages) but {config.model}'s tokenizer has no chat "
            "template to render them: use a chat model, or export plain strings."
        )
    train_rows = read_rows(data.train.path)
    eval_rows = read_rows(data.validation.path) if data.validation else None
    warnings = _length_warnings(config, data, tokenizer, train_rows, eval_rows)
    if on_start is not None:
        on_start(device, warnings)
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

    model_path = config.model
    if config.sft_epochs:
        model_path = str(sft_warm_start(config, device, tokenizer, train_rows))

    metrics_path = output_dir / METRICS_FILE
    if is_main_process():  # the other ranks write nothing here
        if resume_from is not None:
            metrics_truncate(metrics_path, after_step=resume_from[0])
        elif metrics_path.exists():
            metrics_path.unlink()
    args = trl_dpo_config(
        config,
        output_dir=str(output_dir),
        on_gpu=device.on_gpu,
        bf16=device.bf16,
        has_eval=eval_rows is not None,
    )
    # Several processes precomputing reference log-probs must share one on-disk dataset cache (TRL writes
    # them next to the dataset's cache files; an in-memory dataset gets a private temporary directory).
    shared = config.precompute_ref_logps and world_size() > 1
    trainer = DPOTrainer(
        model=model_path,
        args=args,
        train_dataset=_dataset_from_file(data.train.path) if shared else _dataset(train_rows),
        eval_dataset=(
            None if eval_rows is None else _dataset_from_file(data.validation.path) if shared else _dataset(eval_rows)
        ),
        processing_class=tokenizer,
        peft_config=lora_config(config) if config.lora else None,
        callbacks=[MetricsCallback(metrics_path, on_record), *(extra_callbacks or [])],
    )
    if config.lora:
        lora_dropout_restore(trainer.model, config.lora_dropout or 0.0)
    if not device.on_gpu and _logits_bytes(trainer, config) <= PLAIN_LOGITS_MAX_BYTES:
        for model in (trainer.model, trainer.ref_model):
            if model is not None:
                plain_lm_head(model.get_base_model() if hasattr(model, "get_base_model") else model)
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
        (output_dir / "final_metrics.json").write_text(json.dumps(final_metrics, indent=2) + "\n")
    return TrainingResult(
        global_step=trainer.state.global_step,
        final_metrics=final_metrics,
        model_dir=output_dir,
        merged_dir=merged_dir,
        warnings=warnings,
    )


def _logits_bytes(trainer, config: DPORunConfig) -> int:
    """Peak memory of scoring one batch from full logits: the fp32 logits of its chosen and rejected
    sequences at max_length, about 4 times over (logits, log_softmax, their product, the gradients)."""
    vocab = trainer.model.get_output_embeddings().weight.shape[0]
    return 4 * (4 * 2 * config.batch_size * config.max_length * vocab)


def plain_lm_head(model) -> None:
    """Let TRL's `fused_lm_head=True` calls score tokens from the full logits, as a hand-written loop does.

    TRL 1.16 computes per-token log-probs in tiles without ever holding the (batch, length, vocab) logits, and
    recomputes them in the backward pass: right for GPUs and big vocabularies, but on CPU, where the tiles are
    folded by torch ops over every position, it costs 10-17% of a step on small models (measured: stories260K,
    a 5.8M Llama). This wraps TRL's patched forward and returns the same FusedCausalLMOutput fields (log-probs
    with gradient; entropy, mean logit and top-1 for the metrics, without). Used only on CPU and when a batch's
    logits fit in PLAIN_LOGITS_MAX_BYTES; tests check that it logs the same metrics as TRL's path."""
    import types

    import torch
    from trl.trainer.utils import FusedCausalLMOutput

    fused_forward = model.forward  # TRL's, from add_fused_lm_head

    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kw):
        if not fused_lm_head or labels is None or shift_labels is not None or kw.get("output_router_logits"):
            return fused_forward(
                *args,
                fused_lm_head=fused_lm_head,
                labels=labels,
                shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch,
                **kw,
            )
        kw["use_cache"] = False
        logits = fused_forward(*args, **kw).logits[:, :-1].float()  # position t predicts token t + 1
        labels = labels[:, 1:]
        mask = labels != -100
        all_logps = torch.log_softmax(logits, dim=-1)
        log_probs = all_logps.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1).masked_fill(~mask, 0)
        with torch.no_grad():
            entropy = -(all_logps.exp() * all_logps).sum(-1).masked_fill(~mask, 0)
            mean_logits = logits.mean(-1).masked_fill(~mask, 0)
            is_top1 = (logits.argmax(-1) == labels) & mask
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count,
            log_probs=log_probs,
            entropy=entropy,
            mean_logits=mean_logits,
            is_top1=is_top1,
            label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)


def _final_evaluation(trainer) -> dict[str, Any]:
    """The validation metrics at the last step: Trainer's own when it evaluated there, else one more pass."""
    step = trainer.state.global_step
    logged = [e for e in trainer.state.log_history if e.get("step") == step and "eval_loss" in e]
    evaluation = logged[-1] if logged else trainer.evaluate()
    return {key: value for key, value in evaluation.items() if key not in ("epoch", "step")}


def _length_warnings(config, data, tokenizer, train_rows, eval_rows) -> list[str]:
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


def _dataset(rows: list[dict[str, Any]]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def _dataset_from_file(path: Path):
    from datasets import Dataset

    return Dataset.from_parquet(str(path), columns=["prompt", "chosen", "rejected"])


def lora_dropout_restore(model, p: float) -> None:
    """TRL's disable_dropout (on by default, right for the policy/reference comparison) also zeroes the
    LoRA adapter's dropout: give the adapter back the dropout it was configured with."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout) and ".lora_dropout." in f".{name}.":
            module.p = p


def lora_config(config: DPORunConfig):
    from peft import LoraConfig

    # "all-linear": every linear layer but the output head, which TRL refuses (it reads lm_head.weight directly).
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def merge_adapter_from_disk(adapter_dir: Path, merged_dir: Path, tokenizer) -> None:
    """Fold a saved adapter into its base weights: a plain model AutoModelForCausalLM loads without peft.
    From the files, not from the trainer's model, whose weights may be sharded across processes."""
    from peft import AutoPeftModelForCausalLM

    merged = AutoPeftModelForCausalLM.from_pretrained(str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(merged_dir))
    tokenizer.save_pretrained(str(merged_dir))


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
        output_dir=str(sft_dir),
        num_train_epochs=config.sft_epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.sft_learning_rate or config.resolved_learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        seed=config.seed,
        max_length=config.max_length,
        bf16=device.bf16,
        use_cpu=not device.on_gpu,
        gradient_checkpointing=config.gradient_checkpointing,
        logging_steps=config.logging_steps,
        save_strategy="no",
        report_to=[part.strip() for part in config.report_to.split(",") if part.strip()],
    )
    rows = [{"prompt": row["prompt"], "completion": row["chosen"]} for row in train_rows]
    trainer = SFTTrainer(
        model=config.model,
        args=args,
        train_dataset=_dataset(rows),
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
