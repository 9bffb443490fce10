"""The time of each step of one round on SmolLM2-135M-Instruct, as the proof test runs it, printed as a table.

The round is the one `tests/rounds/test_chat_model_round.py` runs (tests/rounds/chat_round.py: the settings,
the prompts, the annotator's rule): `manage.py round start`, `manage.py round advance --all` in its own process
(one vLLM engine per process, as the worker runs it), the pairs and then the blind evaluation labelled through
the annotation API. On a fresh SQLite database in a temporary folder; the model folder is
`manage.py prepare_smollm2`'s (built first if missing).

    .venv/bin/python bench/round.py                     # 60 training prompts x 4 answers, 48 held-out prompts
    .venv/bin/python bench/round.py --train 24 --held-out 16 --json round.json
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=60, help="Training prompts (default 60).")
    parser.add_argument("--held-out", type=int, default=48, help="Held-out evaluation prompts (default 48).")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="round-bench-"))
    database = folder / "db.sqlite3"
    os.environ.update(
        DATABASE_URL=f"sqlite:///{database}",
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_ALLOWED_HOSTS="testserver,localhost",
        VLLM_CACHE_ROOT=str(folder / "vllm-cache"),
        TMPDIR=str(folder),
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from llm.smollm2 import smollm2_prepare
    from rounds.models import Round
    from tests.rounds import chat_round

    call_command("migrate", verbosity=0)
    model = smollm2_prepare().folder
    train, held_out = chat_round.prompts_write(folder, train=args.train, held_out=args.held_out)
    manage = chat_round.Manage(
        env=chat_round.subprocess_env(database_url=os.environ["DATABASE_URL"], data_dir=folder / "data")
    )
    client = Client()
    client.force_login(get_user_model().objects.create_user("annotator"))
    labelling: dict[str, float] = {}

    def label(campaign_id: int, name: str) -> dict[str, int]:
        started = time.perf_counter()
        counts = chat_round.label_all(client, campaign_id)
        labelling[name] = time.perf_counter() - started
        return counts

    started = time.perf_counter()
    settings = chat_round.series_settings(model=model, train=train, held_out=held_out)
    manage("round", "start", "--series", "Bench", *settings, label="start")
    manage("round", "advance", "--series", "Bench", "--all", label="generate")
    done = Round.objects.get()
    pairs = label(done.campaign_id, "label")
    manage("round", "advance", "--series", "Bench", "--all", label="export, train, evaluate: generate")
    done.refresh_from_db()
    eval_votes = label(done.eval_campaign_id, "evaluate: label")
    manage("round", "advance", "--series", "Bench", label="win rate")
    total = time.perf_counter() - started
    done.refresh_from_db()
    print_table(done, manage.timings, labelling, pairs, eval_votes, total, args.json)
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def print_table(done, timings, labelling, pairs, eval_votes, total, json_path) -> None:
    from rounds.models import RoundStep

    steps = {job.step: job for job in RoundStep.objects.filter(round=done, status="succeeded")}

    def seconds(step: str) -> float:
        job = steps[step]
        return (job.finished_at - job.started_at).total_seconds()

    generation = done.generation_run.stats
    evaluation = done.eval_generation_run.stats
    training = done.training_run.final_metrics
    export = done.export.stats
    rows = [
        ("generate (vLLM, SmolLM2)", seconds("generate"),
         f"{generation['candidates']} answers, {generation['tokens_generated']} tokens, "
         f"{generation['tokens_per_second']:.0f} tokens/s while generating"),
        ("label (annotator, API)", labelling["label"],
         f"{sum(pairs.values())} pairs: {pairs['left'] + pairs['right']} decisive, {pairs['tie']} ties; "
         f"{sum(pairs.values()) / labelling['label']:.0f} judgments/s"),
        ("export", seconds("export"), f"{export['exported']} rows ({export['format']}), "
         f"{export['truncated']} pairs with a cut-off answer left out"),
        ("train (TRL DPO, CPU)", seconds("train"),
         f"{done.training_run.global_step} steps, {training.get('train_samples_per_second', 0):.2f} pairs/s, "
         f"loss {training.get('train_loss', float('nan')):.3f}"),
        ("evaluate: generate", seconds("eval_generate"),
         f"{evaluation['candidates']} answers, {evaluation['tokens_per_second']:.0f} tokens/s"),
        ("evaluate: label", labelling["evaluate: label"], f"{sum(eval_votes.values())} pairs"),
        ("whole round", total, f"win rate {done.win_rate:.2f} [{done.win_rate_low:.2f}, {done.win_rate_high:.2f}] "
         f"over {done.eval_pairs} pairs; manage.py processes {sum(timings.values()):.0f} s"),
    ]  # fmt: skip
    width = max(len(name) for name, _, _ in rows)
    print(f"{'step':<{width}}  {'seconds':>8}  figures")
    for name, value, detail in rows:
        print(f"{name:<{width}}  {value:>8.1f}  {detail}")
    if json_path:
        json_path.write_text(
            json.dumps([{"step": n, "seconds": round(v, 1), "figures": d} for n, v, d in rows], indent=2)
        )


if __name__ == "__main__":
    main()
