"""`manage.py load_demo_round`: a series on SmolLM2-135M-Instruct with every setting filled in, for `make demo`.

Round 1 waits at its first step: staff open Rounds, press the button, and watch it go. The demo annotators
label the round's pairs in the browser; the round then exports, trains, samples the tuned model against its
policy blind, and, once they have labelled those too, reports its win rate.
"""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from core.errors import command_errors
from llm.smollm2 import smollm2_prepare
from rounds.models import Series
from rounds.options import SeriesOptions
from rounds.services import series_start

DEMO_SERIES = "SmolLM2 demo"
DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_SETTINGS = {
    # As measured for the proof on these prompts' kind (tests/rounds/chat_round.py): at 160 new tokens most
    # short answers end, and the pairs with a cut-off answer are left out of training. People label: a 135M
    # model is no judge (tried: it picks a side by position, so both orders disagree and every pair is a tie).
    "n": 2,
    "temperatures": [0.8],
    "max_tokens": 160,
    "labelled_by": "people",
    "eval_labelled_by": "people",
    "guidelines": "Prefer the answer that is correct, to the point, and written as one short paragraph.",
    "val_fraction": 0.0,
    "n_epochs": 1,
    "batch_size": 4,
    "learning_rate": 2e-5,
    "max_length": 256,
    "kv_cache_mib": 256,
}


class Command(BaseCommand):
    help = "Create the demo series of rounds on SmolLM2-135M-Instruct (idempotent; prepares the model if needed)."

    def handle(self, *args: Any, **options: Any) -> None:
        existing = Series.objects.filter(name=DEMO_SERIES).first()
        if existing is not None:
            self.stdout.write(f"Demo series {DEMO_SERIES!r} exists (id {existing.pk}): nothing to do.")
            return
        with command_errors():
            model = str(smollm2_prepare().folder)
            settings = SeriesOptions.from_mapping(
                {
                    **DEMO_SETTINGS,
                    "base_model": model,
                    "prompts_file": str(DEMO_DIR / "prompts.jsonl"),
                    "eval_prompts_file": str(DEMO_DIR / "eval_prompts.jsonl"),
                }
            )
            round = series_start(name=DEMO_SERIES, options=settings)
        self.stdout.write(
            self.style.SUCCESS(f"Demo series {DEMO_SERIES!r}: round 1 (id {round.pk}) is ready to run from Rounds.")
        )
