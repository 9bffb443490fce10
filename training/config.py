"""`DPORunConfig`: every setting of a DPO run, documented field by field, validated, saved beside the outputs.

A run is a file: the command line, a YAML/JSON config file (`--config`) and `output/run_config.json` all fill
the same dataclass, so `train_dpo --config output/run_config.json` reruns a run. Names follow the hosted
preference-tuning APIs (`n_epochs`, `batch_size`, `learning_rate_multiplier`); `trl_dpo_config` maps them to
TRL's `DPOConfig` in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from core.options import Options, option

# Base learning rates that `learning_rate_multiplier` scales. DPO moves a model with far smaller steps than
# SFT: 1e-6 is TRL's default for full fine-tuning (Zephyr used 5e-7), and a LoRA adapter, which starts at
# zero and has few parameters, takes about ten times more (TRL's LoRA example: 5e-6 vs 5e-7). Tiny models
# need much more still: stories260K moves at 5e-4 (a multiplier of 500, or `--learning-rate 5e-4`).
BASE_LEARNING_RATE_FULL = 1e-6
BASE_LEARNING_RATE_LORA = 1e-5

# TRL 1.16's DPO loss variants (`DPOConfig.loss_type`).
LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
PRECISIONS = ("auto", "bf16", "fp32")
LORA_DEFAULTS = {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05}


# transformers' SchedulerType values (a test keeps this list equal to the installed transformers').
LR_SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
    "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay", "greedy",
)  # fmt: skip
# The DPO losses of TRL 1.16 that read label_smoothing.
SMOOTHED_LOSSES = {"robust", "exo_pair", "aot", "aot_unpaired"}
# What output/run_config.json adds for the record: derived, not an input (a config file may hold it).
RUN_RECORD_KEYS = ("resolved",)
# What may change when a run is resumed: how it runs, not what it trains.
RESUMABLE_CHANGES = {
    "num_threads", "gradient_checkpointing", "logging_steps", "eval_steps", "save_steps", "save_total_limit",
    "report_to",
}  # fmt: skip


@dataclass
class DPORunConfig(Options):
    """Everything that defines a DPO run. Field names are the config-file keys; `--n-epochs` is `n_epochs`."""

    options_heading: ClassVar[str] = "Invalid training configuration"

    # What to train on, from what, into where
    data: str | None = option(
        None,
        help=(
            "The preference data: an export directory (train.parquet, optional validation.parquet), one "
            "Parquet file, or an export's id from the database."
        ),
    )
    model: str | None = option(None, help=("The base model: a local directory or a Hugging Face model id."))
    output: str | None = option(
        None,
        help=("Output directory: trained model or adapter, tokenizer, run_config.json, metrics, checkpoints."),
    )
    allow_string_rows_with_chat_template: bool = option(
        False,
        help=(
            "Train on plain-string rows although the model's tokenizer has a chat template (refused by default: "
            "the model would learn from text without the template it chats in). For raw completions the model "
            "sampled without its template."
        ),
    )

    # Hyperparameters, named as in the hosted preference-tuning APIs
    n_epochs: int = option(2, help=("Passes over the training set."))
    beta: float = option(
        0.1,
        help=("How far the model may drift from the reference: higher keeps it closer. Must be > 0 and <= 2."),
    )
    batch_size: int = option(8, help=("Preference pairs per device per step."))
    learning_rate_multiplier: float | None = option(
        None,
        help=(
            f"Scales the base learning rate ({BASE_LEARNING_RATE_FULL:g} for full fine-tuning, "
            f"{BASE_LEARNING_RATE_LORA:g} for LoRA). Default 1. Give this or --learning-rate, not both."
        ),
    )
    learning_rate: float | None = option(
        None, help=("Absolute peak learning rate (instead of --learning-rate-multiplier).")
    )
    max_length: int = option(
        1024,
        help=("Tokens per prompt + response; longer ones are truncated, rows whose prompt fills it dropped."),
    )
    gradient_accumulation_steps: int = option(1, help=("Batches summed per optimizer step."))
    seed: int = option(42, help=("Seed for shuffling, dropout and adapter initialisation."))
    warmup_ratio: float = option(0.0, help=("Fraction of steps to warm the learning rate up over."))
    lr_scheduler_type: str = option("linear", help=("Learning-rate schedule (linear, cosine, ...)."))

    # The loss
    loss_type: list[str] = option(
        default_factory=lambda: ["sigmoid"],
        help=(
            "DPO loss variant(s): " + ", ".join(LOSS_TYPES) + ". Several, comma-separated, combine with --loss-weights."
        ),
    )
    loss_weights: list[float] | None = option(
        None, help=("One weight per --loss-type when combining several (default: 1 each).")
    )
    label_smoothing: float = option(
        0.0,
        help=("Probability that a label is flipped, for the robust loss (in [0, 0.5)); EXO's epsilon."),
    )
    rpo_alpha: float | None = option(
        None,
        help=(
            "Adds alpha x NLL on the chosen responses (RPO), the remedy for DPO drifting to out-of-distribution "
            "outputs; 1.0 is the paper's value."
        ),
    )

    # LoRA
    lora: bool = option(False, help=("Train a LoRA adapter instead of every weight."))
    lora_r: int | None = option(None, help=("LoRA rank (default 16; only with --lora)."))
    lora_alpha: int | None = option(None, help=("LoRA scaling alpha (default 32; only with --lora)."))
    lora_dropout: float | None = option(None, help=("LoRA dropout (default 0.05; only with --lora)."))
    merge: bool = option(False, help=("With --lora, also save merged full weights in output/merged/."))

    # Speed and memory
    precompute_ref_logps: bool = option(
        False,
        help=("Compute the reference log-probs once before training and free the reference model."),
    )
    precision: str = option(
        "auto",
        help=("bf16 or fp32; auto = bf16 on a GPU that supports it, fp32 on CPU."),
        choices=PRECISIONS,
    )
    gradient_checkpointing: bool | None = option(
        None,
        help=(
            "Recompute activations in the backward pass: less memory, slower. Default: on on a GPU, off on a CPU "
            "(where it makes a step 1.8x slower)."
        ),
    )
    num_threads: int | None = option(
        None,
        help=("Torch CPU threads (default: PREFSTUDIO_TORCH_THREADS, else torch's choice)."),
    )

    # Length of the run, checkpoints, logs
    max_steps: int | None = option(None, help=("Stop after this many optimizer steps (smoke runs)."))
    sft_epochs: float = option(0, help=("SFT epochs on prompt + chosen response before DPO (a warm start); 0 = none."))
    sft_learning_rate: float | None = option(
        None, help=("SFT learning rate (default: the DPO learning rate); only with --sft-epochs.")
    )
    logging_steps: int = option(10, help=("Optimizer steps between two metric records."))
    eval_steps: int | None = option(
        None,
        help=("Steps between evaluations on the validation set (default: --save-steps); always at the end."),
    )
    save_steps: int = option(200, help=("Steps between checkpoints (output/checkpoint-N/)."))
    save_total_limit: int | None = option(2, help=("Checkpoints kept (oldest deleted); none = all."))
    report_to: str = option("none", help=("Where TRL also reports: none, tensorboard, wandb (comma-separated)."))

    # -----------------------------------------------------------------------------------------------------

    def __post_init__(self) -> None:
        if isinstance(self.loss_type, str):
            self.loss_type = [part.strip() for part in self.loss_type.split(",") if part.strip()]
        if self.lora:
            for name, default in LORA_DEFAULTS.items():
                if getattr(self, name) is None:
                    setattr(self, name, default)

    @property
    def base_learning_rate(self) -> float:
        return BASE_LEARNING_RATE_LORA if self.lora else BASE_LEARNING_RATE_FULL

    @property
    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return self.base_learning_rate * (self.learning_rate_multiplier or 1.0)

    @property
    def trl_losses(self) -> tuple[list[str], list[float]]:
        """TRL's `loss_type` and `loss_weights`: RPO is the sigmoid loss plus alpha x the SFT (NLL) loss."""
        weights = list(self.loss_weights) if self.loss_weights else [1.0] * len(self.loss_type)
        types_ = list(self.loss_type)
        if self.rpo_alpha:
            types_.append("sft")
            weights.append(self.rpo_alpha)
        return types_, weights

    def problems(self) -> list[str]:
        """Every problem at once, each with the fix."""
        problems: list[str] = []
        for name in ("data", "model", "output"):
            if not getattr(self, name):
                problems.append(f"`{name}` is missing: give `{name}` or '{name}' in the config file.")
        if not (0 < self.beta <= 2):
            problems.append(
                f"`beta` is {self.beta:g}: it must be > 0 and <= 2 (0.1 is the usual value; higher keeps the model "
                "closer to the reference)."
            )
        positive = [
            "n_epochs",
            "batch_size",
            "max_length",
            "gradient_accumulation_steps",
            "logging_steps",
            "save_steps",
            "eval_steps",
            "max_steps",
            "num_threads",
            "save_total_limit",
            "lora_r",
            "lora_alpha",
        ]
        for name in positive:
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"`{name}` is {value}: it must be a whole number >= 1.")
        if self.learning_rate is not None and self.learning_rate_multiplier is not None:
            problems.append(
                "Give `learning_rate` or `learning_rate_multiplier`, not both: the multiplier scales the base "
                f"learning rate ({self.base_learning_rate:g})."
            )
        for name in ("learning_rate", "learning_rate_multiplier", "sft_learning_rate"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                problems.append(f"`{name}` is {value:g}: it must be a positive number.")
        unknown = [loss for loss in self.loss_type if loss not in LOSS_TYPES]
        if unknown or not self.loss_type:
            problems.append(
                f"`loss_type` {','.join(self.loss_type) or '(empty)'}: unknown loss "
                f"{', '.join(map(repr, unknown)) or 'type'}; choose from {', '.join(LOSS_TYPES)}."
            )
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            problems.append(
                f"`loss_weights` has {len(self.loss_weights)} weight(s) for {len(self.loss_type)} loss type(s): "
                "give one weight per `loss_type`."
            )
        if not (0 <= self.label_smoothing < 0.5):
            problems.append(f"`label_smoothing` is {self.label_smoothing:g}: it must be in [0, 0.5).")
        elif self.label_smoothing and not set(self.loss_type) & SMOOTHED_LOSSES:
            problems.append(
                f"`label_smoothing` {self.label_smoothing:g} does nothing with `loss_type` "
                f"{','.join(self.loss_type)}: TRL reads it only for {', '.join(sorted(SMOOTHED_LOSSES))}."
            )
        if self.lr_scheduler_type not in LR_SCHEDULERS:
            problems.append(f"`lr_scheduler_type` {self.lr_scheduler_type!r}: choose from {', '.join(LR_SCHEDULERS)}.")
        if "exo_pair" in self.loss_type and self.label_smoothing == 0:
            problems.append("`loss_type` exo_pair needs `label_smoothing` > 0 (the EXO paper uses 1e-3).")
        if self.rpo_alpha is not None and not self.rpo_alpha > 0:
            problems.append(f"`rpo_alpha` is {self.rpo_alpha:g}: it must be > 0 (1.0 is the paper's value).")
        if self.rpo_alpha and "sft" in self.loss_type:
            problems.append("`rpo_alpha` adds the sft loss already: drop 'sft' from `loss_type` or drop `rpo_alpha`.")
        if not self.lora:
            given = [f"`{name}`" for name in (*LORA_DEFAULTS, "merge") if getattr(self, name) not in (None, False)]
            if given:
                problems.append(f"{', '.join(given)} only make(s) sense with `lora`: add `lora` or remove them.")
        elif self.lora_dropout is not None and not (0 <= self.lora_dropout < 1):
            problems.append(f"`lora_dropout` is {self.lora_dropout:g}: it must be in [0, 1).")
        if self.sft_epochs < 0:
            problems.append(f"`sft_epochs` is {self.sft_epochs:g}: it must be >= 0.")
        if self.sft_learning_rate is not None and not self.sft_epochs:
            problems.append("`sft_learning_rate` only makes sense with `sft_epochs` > 0.")
        if not (0 <= self.warmup_ratio < 1):
            problems.append(f"`warmup_ratio` is {self.warmup_ratio:g}: it must be in [0, 1).")
        return problems


def build_config(*, file_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> DPORunConfig:
    """Defaults, then a config file's values (`DPORunConfig.from_file`), then the command line's; checked."""
    return DPORunConfig.from_mapping({**(file_values or {}), **(overrides or {})})


def trainer_kwargs(config: DPORunConfig, *, output_dir: str, on_gpu: bool, bf16: bool) -> dict[str, Any]:
    """What TRL's DPOConfig and SFTConfig share: steps, learning rate, device, precision, logging.

    DPOConfig's defaults are for GPUs: bf16 and gradient checkpointing on. On CPU bf16 fails ("Your setup doesn't
    support bf16/gpu") unless use_cpu, and checkpointing makes a step 1.8x slower. TRL loads a model given by
    path in float32 unless told otherwise; with bf16 the policy and the reference load in bfloat16 (half the
    memory, no float32 master copy under autocast)."""
    return {
        "output_dir": output_dir,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "lr_scheduler_type": config.lr_scheduler_type,
        "warmup_steps": config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        "seed": config.seed,
        "max_length": config.max_length,
        "bf16": bf16,
        "use_cpu": not on_gpu,
        "model_init_kwargs": {"dtype": "bfloat16"} if bf16 else None,
        "gradient_checkpointing": on_gpu if config.gradient_checkpointing is None else config.gradient_checkpointing,
        "logging_steps": config.logging_steps,
        "report_to": [part.strip() for part in config.report_to.split(",") if part.strip()],
    }


def trl_dpo_kwargs(config: DPORunConfig, *, output_dir: str, on_gpu: bool, bf16: bool, has_eval: bool) -> dict:
    """A DPORunConfig as TRL's DPOConfig arguments: the one place where our names meet TRL's."""
    loss_type, loss_weights = config.trl_losses
    eval_steps = config.eval_steps or config.save_steps
    return {
        **trainer_kwargs(config, output_dir=output_dir, on_gpu=on_gpu, bf16=bf16),
        "num_train_epochs": config.n_epochs,
        "max_steps": config.max_steps or -1,
        "per_device_eval_batch_size": config.batch_size,
        "learning_rate": config.resolved_learning_rate,
        "beta": config.beta,
        "loss_type": loss_type,
        "loss_weights": loss_weights,
        "label_smoothing": config.label_smoothing,
        "precompute_ref_log_probs": config.precompute_ref_logps,
        # The default filter drops NaN/inf losses from what is logged, which would hide a diverging run.
        "logging_nan_inf_filter": False,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": eval_steps if has_eval else None,
    }


def trl_dpo_config(config: DPORunConfig, *, output_dir: str, on_gpu: bool, bf16: bool, has_eval: bool) -> Any:
    from trl import DPOConfig

    return DPOConfig(**trl_dpo_kwargs(config, output_dir=output_dir, on_gpu=on_gpu, bf16=bf16, has_eval=has_eval))
