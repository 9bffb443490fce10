from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.errors import command_errors
from core.options import options_add_arguments, options_from_arguments
from training.config import RUN_RECORD_KEYS, DPORunConfig, build_config

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
        options_add_arguments(parser, DPORunConfig, title="training options")
        # Shorthands for --precision.
        precision = parser.add_mutually_exclusive_group()
        precision.add_argument(
            "--bf16", dest="precision", action="store_const", const="bf16", help="bf16 mixed precision (GPU default)."
        )
        precision.add_argument(
            "--fp32", dest="precision", action="store_const", const="fp32", help="fp32 (CPU default)."
        )

    def handle(self, *args: Any, config: Path | None, resume: bool, **options: Any) -> None:
        from training.services import dpo_run

        with command_errors():
            file_values = DPORunConfig.from_file(config, ignore=RUN_RECORD_KEYS) if config else {}
            run_config = build_config(file_values=file_values, overrides=options_from_arguments(DPORunConfig, options))
            run, result = dpo_run(config=run_config, resume=resume)
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
