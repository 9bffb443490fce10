import argparse
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import StudioError
from training.config import build_config, coerce_value, config_fields, default_value, field_type, load_config_file

# Fields with a hand-written option (or none): precision is --bf16 / --fp32 (or --precision).
CUSTOM = {"precision"}
SHOWN_METRICS = ("train_loss", "eval_loss", "eval_rewards/accuracies", "eval_rewards/margins", "train_runtime")


class Command(BaseCommand):
    help = (
        "DPO training on an export with TRL's DPOTrainer: --data EXPORT_DIR_OR_PARQUET_OR_ID --model PATH_OR_ID "
        "--output DIR. Options can also come from a YAML/JSON file (--config); flags override it. Runs under "
        "`accelerate launch` / `torchrun` for several GPUs. See docs/training.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--config", type=Path, help="A YAML or JSON file of options (flags override it).")
        parser.add_argument(
            "--resume", action="store_true", help="Continue the run in --output from its last checkpoint."
        )
        for f in config_fields():
            if f.name in CUSTOM:
                continue
            base, _ = field_type(f.name)
            flag = "--" + f.name.replace("_", "-")
            help_text = f.metadata.get("help", "")
            default = default_value(f.name)
            if default not in (None, False, []):
                shown = ",".join(map(str, default)) if isinstance(default, list) else default
                help_text += f" Default: {shown}."
            if base is bool:
                parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, help=help_text)
            elif base is list:
                parser.add_argument(flag, dest=f.name, metavar="A,B", help=help_text)
            else:
                parser.add_argument(flag, dest=f.name, type=base, help=help_text)
        precision = parser.add_mutually_exclusive_group()
        precision.add_argument(
            "--bf16",
            dest="precision",
            action="store_const",
            const="bf16",
            help="bf16 mixed precision (the default on GPU).",
        )
        precision.add_argument(
            "--fp32", dest="precision", action="store_const", const="fp32", help="fp32 (the default on CPU)."
        )
        precision.add_argument(
            "--precision", dest="precision", choices=["auto", "bf16", "fp32"], help="auto (default), bf16 or fp32."
        )
        parser.set_defaults(**{f.name: None for f in config_fields()})

    def handle(self, *args: Any, config: Path | None, resume: bool, **options: Any) -> None:
        from training.services import dpo_run

        names = {f.name for f in config_fields()}
        try:
            overrides = {
                name: coerce_value(name, value, where="the command line") if field_type(name)[0] is list else value
                for name, value in options.items()
                if name in names and value is not None
            }
            file_values = load_config_file(config) if config else {}
            run_config = build_config(file_values=file_values, overrides=overrides)
            run, result = dpo_run(config=run_config, resume=resume)
        except StudioError as error:
            raise CommandError(error.message) from None
        for line in result.warnings:
            self.stderr.write(self.style.WARNING(line))
        shown = ", ".join(f"{key} {value:.4g}" for key, value in result.final_metrics.items() if key in SHOWN_METRICS)
        where = f"Merged weights in {result.merged_dir}. " if result.merged_dir else ""
        label = f"Training run {run.pk}" if run is not None else "Training"
        self.stdout.write(
            self.style.SUCCESS(
                f"{label} succeeded after {result.global_step} steps ({shown}). "
                f"{'Adapter' if run_config.lora else 'Model'} and tokenizer saved in {result.model_dir}. {where}"
            ).rstrip()
        )
