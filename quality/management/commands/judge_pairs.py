from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotator.models import Campaign
from core.errors import command_errors
from core.options import options_add_arguments, options_from_arguments
from core.progress import TerminalProgress
from llm.base import EngineOptions, backend_load
from quality.judging import judge_template_load
from quality.services import JudgeSummary, judge_pairs_run, judge_user_get_or_create


class Command(BaseCommand):
    help = (
        "Ask an LLM which response of each pair is better (AI feedback). Every pair is judged in both orders; "
        "if the two verdicts disagree the pair is recorded as an inconsistent tie. Verdicts are stored as "
        "judgments of an AI annotator, with the raw outputs. Rerunning goes on where a run stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="Campaign name.")
        parser.add_argument("--model", required=True, help="Judge model folder or hub id (openai: served name).")
        parser.add_argument("--template", help="Judging prompt file with $conversation, $response_1, $response_2.")
        parser.add_argument("--judge-name", default="", help="Username of the AI annotator (default from model).")
        parser.add_argument("--max-tokens", type=int, default=8, help="Tokens the judge may write (default 8).")
        parser.add_argument("--batch-size", type=int, default=32, help="Pairs judged and committed together.")
        parser.add_argument("--limit", type=int, help="Judge at most this many pairs.")
        options_add_arguments(parser, EngineOptions, title="engine (default: the engine's on a GPU, measured on a CPU)")

    def handle(self, *args: Any, **options: Any) -> None:
        campaign = Campaign.objects.filter(name=options["campaign"]).first()
        if campaign is None:
            raise CommandError(f"No campaign named {options['campaign']!r}: check the name (manage.py shell, admin).")
        progress = TerminalProgress(self.stdout, unit="pair", desc="judging")
        try:
            with command_errors():
                engine = EngineOptions.from_mapping(options_from_arguments(EngineOptions, options))
                template = judge_template_load(options["template"])
                judge = judge_user_get_or_create(model=options["model"], name=options["judge_name"])
                backend = backend_load(backend=engine.backend, model=options["model"], options=engine, any_server=True)
                try:
                    summary = judge_pairs_run(
                        campaign=campaign,
                        backend=backend,
                        template=template,
                        judge=judge,
                        max_tokens=options["max_tokens"],
                        batch_size=options["batch_size"],
                        limit=options["limit"],
                        progress=progress,
                    )
                finally:
                    backend.close()
        finally:
            progress.close()
        self._report(summary)

    def _report(self, s: JudgeSummary) -> None:
        self.stdout.write(
            self.style.SUCCESS(f"Judge {s.judge!r}: {s.judged} pair(s) judged now, {s.already_judged} already judged.")
        )
        self.stdout.write(
            f"Both orders agree: {s.consistent}; disagree (recorded as ties): {s.inconsistent}; "
            f"no verdict (unparseable answer): {s.unparseable_pairs}."
        )
        methods = ", ".join(f"{n} by {m}" for m, n in sorted(s.methods.items())) or "none"
        self.stdout.write(f"Answers read: {methods}; unparseable: {s.unparseable_answers}.")
        if s.too_long:
            self.stdout.write(self.style.WARNING(f"{s.too_long} pair(s) too long for the judge's context."))
        verdicts = ", ".join(f"{v}: {n}" for v, n in sorted(s.verdicts.items()))
        self.stdout.write(f"Verdicts: {verdicts or 'none'} ({s.seconds:.1f} s).")
        if s.uncertain_first:
            self.stdout.write(
                f"{s.uncertain_first} pair(s) the judge was unsure of (orders disagree, or near 50/50) go to people "
                "first."
            )
        if s.audit is not None:
            a = s.audit
            self.stdout.write(
                f"Audit sample: {a.pairs} of {a.size} pair(s) ({a.drawn} drawn now, seed {a.seed}), served to people "
                "first; exports count the judge's verdicts once it agrees with theirs (docs/judge.md)."
            )
