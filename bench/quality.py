"""The quality report at 10k, 100k and 1M judgments: seconds and peak memory, building it and rendering its page.

For each size a fresh database (SQLite in a temporary directory, or PostgreSQL with --db postgres) is
filled with a campaign of N judgments through `bulk_create`: N/4 pairs, each judged by 3 of 6 annotators
and once by an AI judge (so overlap 3, 4 judgments per pair). The pairs are tuned-vs-base (the tuned model
on side a or b at random, as `generate_pairs --model-b` writes them), answers of 60 to 600 characters;
people agree with a hidden truth most of the time, skip 5%, say tie or both bad now and then; one of them
favours the left side, one clicks through in a second; the judgments are spread over 30 days.

Then, in a process of its own: `campaign_quality_report` (as the API answers it), then the staff page
`/quality/campaigns/<id>/` rendered through the Django test client (after one request for the campaign
list, which loads the templates and middleware), each timed; then both again under `tracemalloc`. Time:
wall-clock seconds, and the process's CPU seconds beside them (on a shared machine the wall clock also
counts waiting for a core; with SQLite the database works inside the process, so its CPU time is the
whole cost; with PostgreSQL the server's work is not in it). Memory: "peak RSS" is the process's peak
resident set size (`getrusage(RUSAGE_SELF)`, Python and the database driver's native buffers alike),
"+RSS" how far it rose over the RSS just before the report (Django imported, connected); "py peak" the
Python heap's peak during report and page (`tracemalloc`, which also slows Python down, so it is not
timed).

    .venv/bin/python bench/quality.py --quick                         # 1k and 10k judgments
    .venv/bin/python bench/quality.py --sizes 10000,100000,1000000    # the table in docs/quality.md
    .venv/bin/python bench/quality.py --db postgres --postgres-url postgres://.../prefstudio_bench_quality

PostgreSQL: the database at --postgres-url is dropped and created again for each size (the role needs
CREATEDB), and analysed once filled.
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
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES = "postgres://prefstudio:prefstudio@127.0.0.1:5432/prefstudio_bench_quality"
ANNOTATORS = 6
HUMAN_VOTES = 3


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def django_setup(data_dir: Path, database_url: str | None) -> None:
    os.environ["PREFSTUDIO_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.pop("DATABASE_URL", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def recreate_postgres_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


# ---------------------------------------------------------------------------------------------------------
# The roles, each run in its own process


def generate(data_dir: Path, database_url: str | None, judgments: int, seed: int) -> dict:
    import random
    from datetime import UTC, datetime, timedelta

    django_setup(data_dir, database_url)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from annotator.models import Campaign, Candidate, Comparison, Judgment, Prompt

    call_command("migrate", verbosity=0)
    # Judgments spread over 30 days: the fill sets created_at itself.
    Judgment._meta.get_field("created_at").auto_now_add = False
    rng = random.Random(seed)
    words = ["the", "a", "cat", "dog", "ran", "sat", "on", "mat", "and", "then", "over", "under", "happy", "sad",
             "tree", "sun", "rain", "code", "list", "why", "how"]  # fmt: skip
    pool = [" ".join(rng.choices(words, k=rng.randint(12, 120))) for _ in range(997)]
    User = get_user_model()
    people = [User.objects.create_user(f"rater{i}") for i in range(ANNOTATORS)]
    lefty, hasty = people[0], people[1]
    judge = User.objects.create_user("ai-judge-bench", is_active=False)
    User.objects.create_user("staff", password="staff", is_staff=True, is_superuser=True)
    campaign = Campaign.objects.create(name="bench", overlap=HUMAN_VOTES)
    pairs, batch = judgments // (HUMAN_VOTES + 1), 2000
    start_day = datetime(2025, 1, 1, 9, tzinfo=UTC)
    outcomes = ["truth"] * 75 + ["other"] * 10 + ["tie"] * 7 + ["both_bad"] * 3 + ["skip"] * 5
    started = time.perf_counter()
    for start in range(0, pairs, batch):
        ids = range(start, min(start + batch, pairs))
        prompts = [Prompt(campaign=campaign, messages=[{"role": "user", "content": f"Q{i}"}], content_hash=f"{i}")
                   for i in ids]  # fmt: skip
        Prompt.objects.bulk_create(prompts)
        candidates, tuned_sides = [], []
        for i, prompt in zip(ids, prompts, strict=True):
            tuned_side = rng.choice("ab")
            tuned_sides.append(tuned_side)
            for side in "ab":
                tuned = side == tuned_side
                candidates.append(
                    Candidate(
                        prompt=prompt,
                        text=f"{pool[(i * 7 + ord(side)) % 997]} ({side}{i})",
                        model_name="tuned" if tuned else "base",
                        metadata={"model": "a" if tuned else "b"},
                    )
                )
        Candidate.objects.bulk_create(candidates)
        comparisons = [
            Comparison(prompt=prompt, candidate_a=candidates[2 * k], candidate_b=candidates[2 * k + 1])
            for k, prompt in enumerate(prompts)
        ]
        Comparison.objects.bulk_create(comparisons)
        rows = []
        for comparison, tuned_side in zip(comparisons, tuned_sides, strict=True):
            truth = tuned_side if rng.random() < 0.7 else rng.choice("ab")
            day = start_day + timedelta(days=rng.randrange(30), seconds=rng.randrange(8 * 3600))
            for k, user in enumerate(rng.sample(people, HUMAN_VOTES)):
                shown_left = rng.choice("ab")
                outcome = rng.choice(outcomes)
                verdict = {"truth": truth, "other": "b" if truth == "a" else "a"}.get(outcome, outcome)
                if user == lefty and verdict in "ab" and rng.random() < 0.6:
                    verdict = shown_left
                duration = None if rng.random() < 0.02 else int(rng.lognormvariate(9.5, 0.6))
                if user == hasty and duration is not None:
                    duration = rng.randint(400, 1500)
                rows.append(
                    Judgment(
                        comparison=comparison, annotator=user, verdict=verdict, shown_left=shown_left,
                        duration_ms=duration, created_at=day + timedelta(minutes=k),
                    )
                )  # fmt: skip
            consistent = rng.random() < 0.8
            rows.append(
                Judgment(
                    comparison=comparison, annotator=judge, verdict=truth if consistent else "tie", shown_left="a",
                    source="ai", details={"consistent": consistent, "unparseable": int(rng.random() < 0.01)},
                    created_at=day + timedelta(hours=1),
                )
            )  # fmt: skip
        Judgment.objects.bulk_create(rows)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # the statistics autovacuum would gather after such a load
    return {
        "campaign": campaign.pk,
        "pairs": pairs,
        "judgments": Judgment.objects.count(),
        "seconds": time.perf_counter() - started,
    }


def report(data_dir: Path, database_url: str | None, campaign_id: int) -> dict:
    import tracemalloc

    django_setup(data_dir, database_url)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from annotator.models import Campaign
    from quality.report import campaign_quality_report

    settings.ALLOWED_HOSTS = ["testserver"]
    campaign = Campaign.objects.get(pk=campaign_id)
    client = Client()
    client.force_login(get_user_model().objects.get(username="staff"))
    url = reverse("quality:campaign_quality", args=[campaign.pk])
    assert client.get(reverse("quality:campaign_list")).status_code == 200  # templates, middleware, session
    connection.ensure_connection()
    start_rss = rss_mib()

    started, started_cpu = time.perf_counter(), time.process_time()
    built = campaign_quality_report(campaign=campaign)
    report_seconds, report_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    started, started_cpu = time.perf_counter(), time.process_time()
    page = client.get(url)
    page_seconds, page_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    assert page.status_code == 200, page.status_code
    peak_rss = peak_rss_mib()

    tracemalloc.start()
    campaign_quality_report(campaign=campaign)
    client.get(url)
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "report_seconds": report_seconds,
        "report_cpu_seconds": report_cpu,
        "page_seconds": page_seconds,
        "page_cpu_seconds": page_cpu,
        "start_rss_mib": start_rss,
        "peak_rss_mib": peak_rss,
        "python_peak_mib": python_peak / 2**20,
        "human_judgments": built["progress"]["human_judgments"],
        "alpha": built["agreement"]["krippendorff_alpha"],
    }


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
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="Dropped and created again per size.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="Where the SQLite databases go (default: a temporary one).")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role:
        role, data_dir, database_url, *rest = args.role
        database_url = database_url or None
        if role == "generate":
            result = generate(Path(data_dir), database_url, int(rest[0]), int(rest[1]))
        else:
            result = report(Path(data_dir), database_url, int(rest[0]))
        print(json.dumps(result))
        return

    sizes = [1000, 10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-quality-", dir=args.workdir))
    database_url = args.postgres_url if args.db == "postgres" else ""
    print(f"{args.db}: report = campaign_quality_report, page = GET /quality/campaigns/<id>/", flush=True)
    print(
        f"{'judgments':>10} {'pairs':>8} {'report s':>9} {'(cpu s)':>8} {'page s':>7} {'(cpu s)':>8} "
        f"{'peak RSS MiB':>13} {'+RSS MiB':>9} {'py peak MiB':>12} {'fill s':>7}",
        flush=True,
    )
    try:
        for size in sizes:
            data_dir = workdir / f"n{size}"
            if database_url:
                recreate_postgres_database(database_url)
            generated = run_role("generate", str(data_dir), database_url, str(size), str(args.seed))
            measured = run_role("report", str(data_dir), database_url, str(generated["campaign"]))
            print(
                f"{generated['judgments']:>10} {generated['pairs']:>8} {measured['report_seconds']:>9.2f} "
                f"{measured['report_cpu_seconds']:>8.2f} {measured['page_seconds']:>7.2f} "
                f"{measured['page_cpu_seconds']:>8.2f} {measured['peak_rss_mib']:>13.0f} "
                f"{measured['peak_rss_mib'] - measured['start_rss_mib']:>9.0f} "
                f"{measured['python_peak_mib']:>12.1f} {generated['seconds']:>7.1f}",
                flush=True,
            )
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
