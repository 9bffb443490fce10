from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotator.models import Campaign
from core.errors import command_errors
from core.interrupts import sigterm_as_exit
from core.options import options_add_arguments, options_from_arguments
from exports.aggregation import DROP_HELP, Drop
from exports.formats import REFUSAL_HELP, Refusal
from exports.options import ExportOptions
from exports.services import dataset_export_create, dataset_export_run


class Command(BaseCommand):
    help = (
        "Export a campaign's preferences as train/validation Parquet for TRL's DPOTrainer (or OpenAI JSONL) "
        "with a dataset card (README.md), split by prompt. Files appear only when the whole export succeeded."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="Campaign name.")
        parser.add_argument("--out", required=True, type=Path, help="Output directory (created if needed).")
        parser.add_argument("--user", help="Username to record as the one who exported (default: nobody).")
        options_add_arguments(parser, ExportOptions, title="export options")

    def handle(self, *args, campaign: str, out: Path, user: str | None, **options) -> None:
        found = Campaign.objects.filter(name=campaign).first()
        if found is None:
            names = ", ".join(repr(n) for n in Campaign.objects.order_by("name").values_list("name", flat=True)[:20])
            raise CommandError(f"No campaign named {campaign!r}. Campaigns: {names or 'none yet'}.")
        created_by = None
        if user:
            created_by = get_user_model().objects.filter(username=user).first()
            if created_by is None:
                raise CommandError(f"No user named {user!r} (--user).")
        try:
            with command_errors(), sigterm_as_exit():
                export = dataset_export_create(
                    campaign=found,
                    options=options_from_arguments(ExportOptions, options),
                    created_by=created_by,
                    out_dir=out,
                )
                dataset_export_run(export=export)
        except OSError as error:  # a full disk, a directory that became unwritable...
            raise CommandError(f"The export could not be written to {out}: {error}. Nothing was kept.") from None
        self._report(export)

    def _report(self, export) -> None:
        stats = export.stats
        rows = stats["rows"]
        self.stdout.write(
            self.style.SUCCESS(
                f"Export {export.pk} of campaign {export.campaign.name!r} ({stats['format']}): {stats['exported']} "
                f"row(s), train {rows['train']}, validation {rows['validation']}, in {export.out_dir}"
            )
        )
        self.stdout.write(f"  {stats['format_reason']}")
        for reason, n in stats["dropped"].items():
            if n:
                self.stdout.write(f"  dropped {n} pair(s) that {DROP_HELP[Drop(reason)]}")
        for reason, n in stats["refused"].items():
            self.stdout.write(self.style.WARNING(f"  refused {n} row(s): {REFUSAL_HELP[Refusal(reason)]}"))
        if stats["truncated"] and export.options["keep_truncated"]:
            self.stdout.write(
                self.style.WARNING(
                    f"  kept {stats['truncated']} row(s) with a response cut off at its token limit (keep_truncated)"
                )
            )
        if export.options.get("max_length") is not None:
            self.stdout.write(
                f"  {stats['overlong']} row(s) longer than {export.options['max_length']} tokens, "
                f"{stats['prompt_fills_max_length']} whose prompt alone fills it"
                + (" (dropped)" if export.options["drop_overlong"] else " (kept: TRL will truncate them)")
            )
        gate = stats.get("judge_gate")
        if gate is not None and not gate["enabled"]:
            self.stdout.write(
                self.style.WARNING(
                    "  AI verdicts counted unchecked: the campaign audits none of its judge's pairs "
                    "(judge_audit_size 0)"
                )
            )
        for judge in gate["judges"] if gate else ():
            kappa, consistency = (f"{v:.3f}" if v is not None else "–" for v in (judge["kappa"], judge["consistency"]))
            self.stdout.write(
                f"  judge gate passed: {judge['judge']} kappa {kappa} (n={judge['n']} audit pairs, thresholds "
                f"{gate['min_kappa']} over {gate['min_pairs']}), consistency {consistency} (threshold "
                f"{gate['min_consistency']})"
            )
        for entry in export.files.values():
            self.stdout.write(f"  {Path(entry['path']).name}  {entry.get('rows', '-')} rows  sha256 {entry['sha256']}")
