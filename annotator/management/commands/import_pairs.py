from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotator.importing import pairs_import_file
from core.errors import command_errors


class Command(BaseCommand):
    help = (
        "Import pairs of responses into a campaign (created if needed) from JSONL or Parquet rows with "
        "prompt (string or list of messages), response_a, response_b and optional metadata. "
        "A bad row stops the import and nothing from the file is written."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="A .jsonl or .parquet file.")
        parser.add_argument("--campaign", required=True, help="Campaign name; created if it does not exist.")
        parser.add_argument("--format", choices=["jsonl", "parquet"], help="Default: from the file extension.")

    def handle(self, *args, file: Path, campaign: str, format: str | None, **options) -> None:
        if not file.is_file():
            raise CommandError(f"{file}: no such file. Give the path of a .jsonl or .parquet file.")
        with command_errors(), file.open("rb") as stream:
            result = pairs_import_file(stream, name=str(file), campaign_name=campaign, file_format=format)
        verb = "Created" if result.campaign_created else "Updated"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} campaign {result.campaign.name!r} (id {result.campaign.pk}): "
                f"{result.imported} pair(s) imported from {result.rows} row(s)"
                + (f", {result.already_present} already present" if result.already_present else "")
                + "."
            )
        )
