from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.errors import command_errors
from core.interrupts import sigterm_as_exit
from core.options import options_add_arguments, options_from_arguments
from core.progress import TerminalProgress
from generation.run_config import RunConfig
from generation.services import RunSummary, engines_any_server, generation_run_create, generation_run_execute


class Command(BaseCommand):
    help = (
        "Sample candidate responses for prompts (JSONL or Parquet) and add them to a campaign as comparisons. "
        "Rerunning continues where a crashed or interrupted run stopped."
    )
    # Django's system checks take about a second here, for nothing this command needs (`manage.py check` runs
    # them); generation is measured against a bare vLLM script (bench/generate.py).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="Campaign name.")
        parser.add_argument("--create-campaign", action="store_true", help="Create the campaign if it does not exist.")
        options_add_arguments(parser, RunConfig, required=["model"], title="run and engine options")

    def handle(self, *args: Any, **options: Any) -> None:
        progress = TerminalProgress(self.stdout, unit="prompt", desc="generating")
        try:
            with command_errors(), sigterm_as_exit():
                config = RunConfig.from_mapping(options_from_arguments(RunConfig, options))
                run = generation_run_create(
                    campaign_name=options["campaign"],
                    config=config,
                    create_campaign=options["create_campaign"],
                    any_server=True,  # whoever runs the command holds OPENAI_API_KEY already
                )
                self.stdout.write(f"Generation run {run.pk} for campaign {run.campaign.name!r}.")
                summary = generation_run_execute(run=run, engines=engines_any_server, progress=progress)
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
            + (f", {s.skipped_unstorable} responses that cannot be stored" if s.skipped_unstorable else "")
            + (f"; {s.repeated_in_file} repeated row(s) in the file ignored" if s.repeated_in_file else "")
            + "."
        )
        self.stdout.write(
            f"Tokens: {s.tokens_generated} generated ({s.resamples} resampled candidate(s)) in "
            f"{s.generation_seconds:.1f} s: {s.tokens_per_second:.0f} tokens/s; {s.elapsed_seconds:.1f} s in all."
        )
        if s.truncated:
            self.stdout.write(
                self.style.WARNING(
                    f"{s.truncated} of the {s.candidates} candidate(s) stopped at the token limit (finish_reason "
                    "length): annotators see them marked as cut off, and exports leave out their pairs unless "
                    "keep_truncated is set. Raise --max-tokens to let the answers end."
                )
            )
        if s.skips:
            self.stdout.write(self.style.WARNING("Skipped prompts:"))
            for line in s.skips:
                self.stdout.write(f"  - {line}")
