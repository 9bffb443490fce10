import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import StudioError
from core.interrupts import sigterm_as_exit
from core.progress import TerminalProgress
from generation.run_config import RunConfig
from generation.sampling import PAIRS_MODES
from generation.services import RunSummary, generation_run_create, generation_run_execute
from llm.cli import add_engine_arguments, engine_options_from


def float_list(value: str) -> list[float]:
    try:
        return [float(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of numbers") from None


class Command(BaseCommand):
    help = (
        "Sample candidate responses for prompts (JSONL or Parquet) and add them to a campaign as comparisons. "
        "Rerunning continues where a crashed or interrupted run stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="Campaign name.")
        parser.add_argument("--create-campaign", action="store_true", help="Create the campaign if it does not exist.")
        parser.add_argument("--model", required=True, help="Model folder or hub id (openai: the served model name).")
        parser.add_argument("--model-b", default="", help="A second model: each comparison pairs it with --model.")
        parser.add_argument("--prompts", default="", help="A .jsonl or .parquet file of prompts.")
        parser.add_argument("--format", choices=["jsonl", "parquet"], help="Default: from the file extension.")
        parser.add_argument(
            "--fill-campaign", action="store_true", help="Also generate for campaign prompts that have no comparisons."
        )
        parser.add_argument("--n", type=int, default=2, help="Candidates per prompt (default 2).")
        parser.add_argument("--temperatures", type=float_list, default=[1.0], help="One, or one per candidate.")
        parser.add_argument("--top-p", type=float_list, default=[1.0], help="One, or one per candidate.")
        parser.add_argument("--max-tokens", type=int, default=256)
        parser.add_argument("--seed", type=int, default=0, help="Base of every candidate's seed (default 0).")
        parser.add_argument("--pairs", choices=PAIRS_MODES, default="all", help="With --n > 2: which pairs to compare.")
        parser.add_argument("--pairs-per-prompt", type=int, default=1, help="With --pairs random.")
        parser.add_argument("--max-resamples", type=int, default=3, help="For empty or identical responses.")
        parser.add_argument("--batch-size", type=int, default=64, help="Prompts per committed batch.")
        add_engine_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        config = RunConfig(
            **RunConfig.engine_fields(engine_options_from(options)),
            model=options["model"],
            prompts_file=options["prompts"],
            file_format=options["format"],
            fill_campaign=options["fill_campaign"],
            model_b=options["model_b"],
            backend=options["backend"],
            n=options["n"],
            temperatures=options["temperatures"],
            top_p=options["top_p"],
            max_tokens=options["max_tokens"],
            seed=options["seed"],
            pairs=options["pairs"],
            pairs_per_prompt=options["pairs_per_prompt"],
            max_resamples=options["max_resamples"],
            batch_size=options["batch_size"],
        )
        progress = TerminalProgress(self.stdout, unit="prompt", desc="generating")
        try:
            with sigterm_as_exit():
                run = generation_run_create(
                    campaign_name=options["campaign"], config=config, create_campaign=options["create_campaign"]
                )
                self.stdout.write(f"Generation run {run.pk} for campaign {run.campaign.name!r}.")
                summary = generation_run_execute(run=run, progress=progress)
        except StudioError as error:
            raise CommandError(error.message) from None
        finally:
            progress.close()
        self._report(summary)

    def _report(self, s: RunSummary) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"Generated for {s.generated} prompt(s): {s.candidates} candidate(s), {s.comparisons} comparison(s)."
            )
        )
        self.stdout.write(
            f"Prompts: {s.prompts} distinct; {s.generated} done now, {s.already_done} already done, "
            f"skipped: {s.skipped_too_long} too long, {s.skipped_duplicate} identical responses, "
            f"{s.skipped_empty} empty responses"
            + (f"; {s.repeated_in_file} repeated row(s) in the file ignored" if s.repeated_in_file else "")
            + "."
        )
        self.stdout.write(
            f"Tokens: {s.tokens_generated} generated ({s.resamples} resampled candidate(s)) in "
            f"{s.generation_seconds:.1f} s: {s.tokens_per_second:.0f} tokens/s; {s.elapsed_seconds:.1f} s in all."
        )
        if s.skips:
            self.stdout.write(self.style.WARNING("Skipped prompts:"))
            for line in s.skips:
                self.stdout.write(f"  - {line}")
