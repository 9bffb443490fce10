"""Export time and peak memory for 10k, 100k and 1M judgments, against the floor of writing the same rows.

For each size: a fresh SQLite database in a temporary directory is filled with N judgments (VOTES per
pair, 3 by default: N/3 pairs, one prompt each, a quarter of them multi-turn so the export is
conversational), straight through `bulk_create`. Then, each in its own process:

- export: `dataset_export_create` + `dataset_export_run`, as `manage.py export_preferences` runs them;
- floor: the exported rows read into an in-memory pyarrow table, then only `pq.write_table` timed (same
  zstd compression): what writing these bytes costs without a database, aggregation or streaming.

Memory is the process's peak resident set size (`getrusage(RUSAGE_SELF).ru_maxrss`, read at the end of
that process), so it counts Python, SQLite's and Arrow's native buffers alike; "start" is the RSS just
before the export begins (Django, pyarrow imported). A streaming export should show a flat peak; the floor,
which holds the whole table, grows with N.

    .venv/bin/python bench/export.py --quick                        # 1k and 10k judgments, seconds
    .venv/bin/python bench/export.py --sizes 10000,100000,1000000   # the issue's table (1M: a few minutes)
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def django_setup(data_dir: Path) -> None:
    os.environ["PREFSTUDIO_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# ---------------------------------------------------------------------------------------------------------
# The roles, each run in its own process


def generate(data_dir: Path, judgments: int, votes: int, seed: int) -> dict:
    import random

    django_setup(data_dir)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from annotator.models import Campaign, Candidate, Comparison, Judgment, Prompt
    from core.conversations import conversation_hash

    call_command("migrate", verbosity=0)
    rng = random.Random(seed)
    words = [
        "the",
        "a",
        "cat",
        "dog",
        "ran",
        "sat",
        "on",
        "mat",
        "and",
        "then",
        "over",
        "under",
        "happy",
        "sad",
        "tree",
        "sun",
        "rain",
        "code",
        "list",
        "why",
        "how",
    ]
    pool = [" ".join(rng.choices(words, k=rng.randint(60, 140))) for _ in range(997)]
    users = [get_user_model().objects.create_user(f"bench{i}") for i in range(votes)]
    campaign = Campaign.objects.create(name="bench", overlap=votes)
    pairs, batch = judgments // votes, 2000
    outcomes = ["truth"] * 75 + ["other"] * 10 + ["tie"] * 7 + ["both_bad"] * 3 + ["skip"] * 5
    started = time.perf_counter()
    for start in range(0, pairs, batch):
        ids = range(start, min(start + batch, pairs))
        prompts = []
        for i in ids:
            messages = [{"role": "user", "content": f"Question {i}: {pool[i % 997][:200]}?"}]
            if i % 4 == 0:
                messages = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}, *messages]
            prompts.append(Prompt(campaign=campaign, messages=messages, content_hash=conversation_hash(messages)))
        Prompt.objects.bulk_create(prompts)
        candidates = []
        for i, prompt in zip(ids, prompts, strict=True):
            for side in "ab":
                candidates.append(
                    Candidate(
                        prompt=prompt,
                        text=f"{pool[(i * 7 + ord(side)) % 997]} ({side}{i})",
                        model_name=f"bench-model-{side}",
                        backend="bench",
                        sampling_params={"temperature": 0.8, "top_p": 0.95, "max_tokens": 256},
                        seed=i,
                    )
                )
        Candidate.objects.bulk_create(candidates)
        comparisons = [
            Comparison(prompt=prompt, candidate_a=candidates[2 * k], candidate_b=candidates[2 * k + 1])
            for k, prompt in enumerate(prompts)
        ]
        Comparison.objects.bulk_create(comparisons)
        rows = []
        for comparison in comparisons:
            truth = rng.choice("ab")
            for user in users:
                outcome = rng.choice(outcomes)
                verdict = {"truth": truth, "other": "b" if truth == "a" else "a"}.get(outcome, outcome)
                rows.append(
                    Judgment(comparison=comparison, annotator=user, verdict=verdict, shown_left=rng.choice("ab"))
                )
        Judgment.objects.bulk_create(rows)
    return {"pairs": pairs, "judgments": Judgment.objects.count(), "seconds": time.perf_counter() - started}


def export(data_dir: Path, out_dir: Path) -> dict:
    django_setup(data_dir)
    import exports.pipeline  # noqa: F401  (pyarrow and the pipeline imported before the clock starts)
    from annotator.models import Campaign
    from exports.services import dataset_export_create, dataset_export_run

    start_rss = rss_mb()
    started = time.perf_counter()
    record = dataset_export_create(campaign=Campaign.objects.get(name="bench"), options={}, out_dir=out_dir)
    dataset_export_run(export=record)
    seconds = time.perf_counter() - started
    files = [entry["path"] for name, entry in record.files.items() if name != "card"]
    return {
        "seconds": seconds,
        "rows": record.stats["exported"],
        "format": record.stats["format"],
        "files": files,
        "bytes": sum(Path(f).stat().st_size for f in files),
        "start_rss_mb": start_rss,
        "peak_rss_mb": peak_rss_mb(),
    }


def floor(files: list[str], out_dir: Path) -> dict:
    import pyarrow.parquet as pq

    tables = [pq.read_table(path) for path in files]
    start_rss = rss_mb()
    started = time.perf_counter()
    for index, table in enumerate(tables):
        pq.write_table(table, out_dir / f"floor-{index}.parquet", compression="zstd")
    return {"seconds": time.perf_counter() - started, "start_rss_mb": start_rss, "peak_rss_mb": peak_rss_mb()}


# ---------------------------------------------------------------------------------------------------------
# The driver


def run_role(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--role", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"bench role {args[0]} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="Judgments per run, comma-separated.")
    parser.add_argument("--quick", action="store_true", help="Sizes 1000,10000: a check that the bench runs.")
    parser.add_argument("--votes", type=int, default=3, help="Judgments per pair (default 3).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="Where the databases go (default: a temporary directory).")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role:
        role, *rest = args.role
        if role == "generate":
            result = generate(Path(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]))
        elif role == "export":
            result = export(Path(rest[0]), Path(rest[1]))
        else:
            result = floor(json.loads(rest[0]), Path(rest[1]))
        print(json.dumps(result))
        return

    sizes = [1000, 10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-export-", dir=args.workdir))
    header = (
        f"{'judgments':>10} {'pairs':>8} {'rows':>8} {'export s':>9} {'floor s':>8} {'ratio':>6} "
        f"{'export peak MB':>15} {'(start MB)':>10} {'floor peak MB':>14} {'file MB':>8} {'fill s':>7}"
    )
    print(header, flush=True)
    try:
        for size in sizes:
            data_dir = workdir / f"n{size}"
            generated = run_role("generate", str(data_dir), str(size), str(args.votes), str(args.seed))
            exported = run_role("export", str(data_dir), str(data_dir / "export"))
            floored = run_role("floor", json.dumps(exported["files"]), str(data_dir))
            print(
                f"{generated['judgments']:>10} {generated['pairs']:>8} {exported['rows']:>8} "
                f"{exported['seconds']:>9.2f} {floored['seconds']:>8.2f} "
                f"{exported['seconds'] / floored['seconds']:>6.1f} {exported['peak_rss_mb']:>15.0f} "
                f"{exported['start_rss_mb']:>10.0f} {floored['peak_rss_mb']:>14.0f} "
                f"{exported['bytes'] / 2**20:>8.1f} {generated['seconds']:>7.1f}",
                flush=True,
            )
            shutil.rmtree(data_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
