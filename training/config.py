"""`DPORunConfig`: every setting of a DPO run, documented field by field, validated, saved beside the outputs.

A run is a file: the command line, a YAML/JSON config file (`--config`) and `output/run_config.json` all fill
the same dataclass, so `train_dpo --config output/run_config.json` reruns a run. Names follow the hosted
preference-tuning APIs (`n_epochs`, `batch_size`, `learning_rate_multiplier`); `trl_dpo_config` maps them to
TRL's `DPOConfig` in one place.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import InputError

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


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


# transformers' SchedulerType values (a test keeps this list equal to the installed transformers').
LR_SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
    "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay", "greedy",
)  # fmt: skip
# The DPO losses of TRL 1.16 that read label_smoothing.
SMOOTHED_LOSSES = {"robust", "exo_pair", "aot", "aot_unpaired"}
# What may change when a run is resumed: how it runs, not what it trains.
RESUMABLE_CHANGES = {"num_threads", "logging_steps", "eval_steps", "save_steps", "save_total_limit", "report_to"}


@dataclass
class DPORunConfig:
    """Everything that defines a DPO run. Field names are the config-file keys; `--n-epochs` is `n_epochs`."""

    # What to train on, from what, into where
    data: str | None = field(
        default=None,
        metadata=_help(
            "The preference data: an export directory (train.parquet, optional validation.parquet), one "
            "Parquet file, or an export's id from the database."
        ),
    )
    model: str | None = field(
        default=None, metadata=_help("The base model: a local directory or a Hugging Face model id.")
    )
    output: str | None = field(
        default=None,
        metadata=_help("Output directory: trained model or adapter, tokenizer, run_config.json, metrics, checkpoints."),
    )

    # Hyperparameters, named as in the hosted preference-tuning APIs
    n_epochs: int = field(default=2, metadata=_help("Passes over the training set."))
    beta: float = field(
        default=0.1,
        metadata=_help("How far the model may drift from the reference: higher keeps it closer. Must be > 0 and <= 2."),
    )
    batch_size: int = field(default=8, metadata=_help("Preference pairs per device per step."))
    learning_rate_multiplier: float | None = field(
        default=None,
        metadata=_help(
            f"Scales the base learning rate ({BASE_LEARNING_RATE_FULL:g} for full fine-tuning, "
            f"{BASE_LEARNING_RATE_LORA:g} for LoRA). Default 1. Give this or --learning-rate, not both."
        ),
    )
    learning_rate: float | None = field(
        default=None, metadata=_help("Absolute peak learning rate (instead of --learning-rate-multiplier).")
    )
    max_length: int = field(
        default=1024,
        metadata=_help("Tokens per prompt + response; longer ones are truncated, rows whose prompt fills it dropped."),
    )
    gradient_accumulation_steps: int = field(default=1, metadata=_help("Batches summed per optimizer step."))
    seed: int = field(default=42, metadata=_help("Seed for shuffling, dropout and adapter initialisation."))
    warmup_ratio: float = field(default=0.0, metadata=_help("Fraction of steps to warm the learning rate up over."))
    lr_scheduler_type: str = field(default="linear", metadata=_help("Learning-rate schedule (linear, cosine, ...)."))

    # The loss
    loss_type: list[str] = field(
        default_factory=lambda: ["sigmoid"],
        metadata=_help(
            "DPO loss variant(s): "
            + ", ".join(LOSS_TYPES)
            + ". Several, comma-separated, combine with --loss-weights.",
            choices=LOSS_TYPES,
        ),
    )
    loss_weights: list[float] | None = field(
        default=None, metadata=_help("One weight per --loss-type when combining several (default: 1 each).")
    )
    label_smoothing: float = field(
        default=0.0,
        metadata=_help("Probability that a label is flipped, for the robust loss (in [0, 0.5)); EXO's epsilon."),
    )
    rpo_alpha: float | None = field(
        default=None,
        metadata=_help(
            "Adds alpha x NLL on the chosen responses (RPO), the remedy for DPO drifting to out-of-distribution "
            "outputs; 1.0 is the paper's value."
        ),
    )

    # LoRA
    lora: bool = field(default=False, metadata=_help("Train a LoRA adapter instead of every weight."))
    lora_r: int | None = field(default=None, metadata=_help("LoRA rank (default 16; only with --lora)."))
    lora_alpha: int | None = field(default=None, metadata=_help("LoRA scaling alpha (default 32; only with --lora)."))
    lora_dropout: float | None = field(default=None, metadata=_help("LoRA dropout (default 0.05; only with --lora)."))
    merge: bool = field(default=False, metadata=_help("With --lora, also save merged full weights in output/merged/."))

    # Speed and memory
    precompute_ref_logps: bool = field(
        default=False,
        metadata=_help("Compute the reference log-probs once before training and free the reference model."),
    )
    precision: str = field(
        default="auto",
        metadata=_help("bf16 or fp32; auto = bf16 on a GPU that supports it, fp32 on CPU.", choices=PRECISIONS),
    )
    gradient_checkpointing: bool = field(
        default=False, metadata=_help("Recompute activations in the backward pass: less memory, slower.")
    )
    num_threads: int | None = field(
        default=None,
        metadata=_help("Torch CPU threads (default: PREFSTUDIO_TORCH_THREADS, else torch's choice)."),
    )

    # Length of the run, checkpoints, logs
    max_steps: int | None = field(default=None, metadata=_help("Stop after this many optimizer steps (smoke runs)."))
    sft_epochs: float = field(
        default=0, metadata=_help("SFT epochs on prompt + chosen response before DPO (a warm start); 0 = none.")
    )
    sft_learning_rate: float | None = field(
        default=None, metadata=_help("SFT learning rate (default: the DPO learning rate); only with --sft-epochs.")
    )
    logging_steps: int = field(default=10, metadata=_help("Optimizer steps between two metric records."))
    eval_steps: int | None = field(
        default=None,
        metadata=_help("Steps between evaluations on the validation set (default: --save-steps); always at the end."),
    )
    save_steps: int = field(default=200, metadata=_help("Steps between checkpoints (output/checkpoint-N/)."))
    save_total_limit: int | None = field(default=2, metadata=_help("Checkpoints kept (oldest deleted); none = all."))
    report_to: str = field(
        default="none", metadata=_help("Where TRL also reports: none, tensorboard, wandb (comma-separated).")
    )

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

    def validate(self) -> DPORunConfig:
        """Raise one InputError listing every problem, each with the fix; return self when all is well."""
        problems: list[str] = []
        for name in ("data", "model", "output"):
            if not getattr(self, name):
                problems.append(f"{name} is missing: give --{name} or '{name}' in the config file.")
        if not (0 < self.beta <= 2):
            problems.append(
                f"beta is {self.beta:g}: it must be > 0 and <= 2 (0.1 is the usual value; higher keeps the model "
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
                problems.append(f"{_flag(name)} is {value}: it must be a whole number >= 1.")
        if self.learning_rate is not None and self.learning_rate_multiplier is not None:
            problems.append(
                "Give --learning-rate or --learning-rate-multiplier, not both: the multiplier scales the base "
                f"learning rate ({self.base_learning_rate:g})."
            )
        for name in ("learning_rate", "learning_rate_multiplier", "sft_learning_rate"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                problems.append(f"{_flag(name)} is {value:g}: it must be a positive number.")
        unknown = [loss for loss in self.loss_type if loss not in LOSS_TYPES]
        if unknown or not self.loss_type:
            problems.append(
                f"--loss-type {','.join(self.loss_type) or '(empty)'}: unknown loss "
                f"{', '.join(map(repr, unknown)) or 'type'}; choose from {', '.join(LOSS_TYPES)}."
            )
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            problems.append(
                f"--loss-weights has {len(self.loss_weights)} weight(s) for {len(self.loss_type)} loss type(s): "
                "give one weight per --loss-type."
            )
        if not (0 <= self.label_smoothing < 0.5):
            problems.append(f"--label-smoothing is {self.label_smoothing:g}: it must be in [0, 0.5).")
        elif self.label_smoothing and not set(self.loss_type) & SMOOTHED_LOSSES:
            problems.append(
                f"--label-smoothing {self.label_smoothing:g} does nothing with --loss-type "
                f"{','.join(self.loss_type)}: TRL reads it only for {', '.join(sorted(SMOOTHED_LOSSES))}."
            )
        if self.lr_scheduler_type not in LR_SCHEDULERS:
            problems.append(f"--lr-scheduler-type {self.lr_scheduler_type!r}: choose from {', '.join(LR_SCHEDULERS)}.")
        if "exo_pair" in self.loss_type and self.label_smoothing == 0:
            problems.append("--loss-type exo_pair needs --label-smoothing > 0 (the EXO paper uses 1e-3).")
        if self.rpo_alpha is not None and not self.rpo_alpha > 0:
            problems.append(f"--rpo-alpha is {self.rpo_alpha:g}: it must be > 0 (1.0 is the paper's value).")
        if self.rpo_alpha and "sft" in self.loss_type:
            problems.append("--rpo-alpha adds the sft loss already: drop 'sft' from --loss-type or drop --rpo-alpha.")
        if not self.lora:
            given = [_flag(name) for name in (*LORA_DEFAULTS, "merge") if getattr(self, name) not in (None, False)]
            if given:
                problems.append(f"{', '.join(given)} only make(s) sense with --lora: add --lora or remove them.")
        elif self.lora_dropout is not None and not (0 <= self.lora_dropout < 1):
            problems.append(f"--lora-dropout is {self.lora_dropout:g}: it must be in [0, 1).")
        if self.precision not in PRECISIONS:
            problems.append(f"precision is {self.precision!r}: choose from {', '.join(PRECISIONS)}.")
        if self.sft_epochs < 0:
            problems.append(f"--sft-epochs is {self.sft_epochs:g}: it must be >= 0.")
        if self.sft_learning_rate is not None and not self.sft_epochs:
            problems.append("--sft-learning-rate only makes sense with --sft-epochs > 0.")
        if not (0 <= self.warmup_ratio < 1):
            problems.append(f"--warmup-ratio is {self.warmup_ratio:g}: it must be in [0, 1).")
        if problems:
            raise InputError("Invalid training configuration:\n  - " + "\n  - ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def config_fields() -> list:
    """The dataclass fields in declaration order (the command builds its options from them)."""
    return list(fields(DPORunConfig))


def field_type(name: str) -> tuple[type, bool]:
    """(the base type of a field: int, float, bool, str or list, whether it may be None)."""
    hint = typing.get_type_hints(DPORunConfig)[name]
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) and type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    origin = typing.get_origin(base)
    return (list if origin is list else base), optional


def list_item_type(name: str) -> type:
    hint = typing.get_type_hints(DPORunConfig)[name]
    if typing.get_origin(hint) is not list:  # list[X] | None
        hint = next(a for a in typing.get_args(hint) if typing.get_origin(a) is list)
    return typing.get_args(hint)[0]


def coerce_value(name: str, value: Any, *, where: str) -> Any:
    """Check (and gently convert) one value from a config file against the field's type."""
    base, optional = field_type(name)
    if value is None:
        if optional:
            return None
        raise InputError(f"{where}: {name} cannot be null.")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif base is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 5e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif base is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    elif base is list:
        item = list_item_type(name)
        items = [part.strip() for part in value.split(",")] if isinstance(value, str) else value
        if isinstance(items, list):
            try:
                return [item(x) for x in items]
            except (TypeError, ValueError):
                pass
        raise InputError(f"{where}: {name} must be a list of {item.__name__} (or a comma-separated string).")
    raise InputError(f"{where}: {name} must be {_type_words(base)}, not {value!r}.")


def _type_words(base: type) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(base, base.__name__)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into checked field values (unknown keys are an error)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Config file {path}: no such file.")
    import yaml

    text = path.read_text(encoding="utf-8")
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        raw = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise InputError(f"Config file {path} is not valid {kind}: {error}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"Config file {path} must hold a mapping of option names to values.")
    raw = {str(key).replace("-", "_"): value for key, value in raw.items()}
    raw.pop("resolved", None)  # what run_config.json adds for the record: derived, not an input
    known = {f.name for f in config_fields()}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(
            f"Config file {path}: unknown option(s) {', '.join(unknown)}. Known options: {', '.join(sorted(known))}."
        )
    return {name: coerce_value(name, value, where=f"Config file {path}") for name, value in raw.items()}


def build_config(*, file_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> DPORunConfig:
    """Defaults, then the config file, then the command line; validated."""
    values = {**(file_values or {}), **(overrides or {})}
    return DPORunConfig(**values).validate()


def default_value(name: str) -> Any:
    f = next(f for f in config_fields() if f.name == name)
    if f.default is not MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def trl_dpo_config(
    config: DPORunConfig,
    *,
    output_dir: str,
    on_gpu: bool,
    bf16: bool,
    has_eval: bool,
) -> Any:
    """Map a DPORunConfig to TRL's DPOConfig: the one place where our names meet TRL's."""
    from trl import DPOConfig

    loss_type, loss_weights = config.trl_losses
    eval_steps = config.eval_steps or config.save_steps
    return DPOConfig(
        output_dir=output_dir,
        num_train_epochs=config.n_epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.resolved_learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        seed=config.seed,
        beta=config.beta,
        loss_type=loss_type,
        loss_weights=loss_weights,
        label_smoothing=config.label_smoothing,
        max_length=config.max_length,
        precompute_ref_log_probs=config.precompute_ref_logps,
        # DPOConfig's defaults are for GPUs: bf16 and gradient checkpointing on. On CPU bf16 fails ("Your setup
        # doesn't support bf16/gpu") unless use_cpu, and checkpointing makes a step 1.8x slower.
        bf16=bf16,
        use_cpu=not on_gpu,
        gradient_checkpointing=config.gradient_checkpointing,
        logging_steps=config.logging_steps,
        # The default filter drops NaN/inf losses from what is logged, which would hide a diverging run.
        logging_nan_inf_filter=False,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        report_to=[part.strip() for part in config.report_to.split(",") if part.strip()],
    )
