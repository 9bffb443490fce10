"""Export time and peak memory for 10k, 100k and 1M judgments, against the floor of writing the same rows.

For each database (`--databases sqlite,postgres`) and size: a fresh database (SQLite in a temporary
directory; on PostgreSQL a new database on the `--postgres` server, dropped after) is filled with N judgments (VOTES per
pair, 3 by default: N/3 pairs, one prompt each, a quarter of them multi-turn so the export is
conversational), written straight in executemany and one INSERT ... SELECT (a million judgments in about a
minute). Then, each in its own process (`--repeat N` runs each N times and keeps the fastest, the usual
estimate on a machine other work shares):

- export: `dataset_export_create` + `dataset_export_run`, as `manage.py export_preferences` runs them;
- floor: the exported rows read into an in-memory pyarrow table, then only `pq.write_table` timed (same
  zstd compression): what writing these bytes costs without a database, aggregation or streaming.

"cpu s" is the process's CPU time (user + system, every thread), "load" the 1-minute load average before
the export: on a shared machine they tell how much of the wall time was the export's own. Memory is the
process's peak resident set size (`getrusage(RUSAGE_SELF).ru_maxrss`, read at the end of
that process), so it counts Python, SQLite's and Arrow's native buffers alike; "start" is the RSS just
before the export begins (Django, pyarrow imported). A streaming export should show a flat peak; the floor,
which holds the whole table, grows with N.

    .venv/bin/python bench/export.py --quick                        # 1k and 10k judgments, seconds
    .venv/bin/python bench/export.py --sizes 10000,100000,1000000 --repeat 3   # the issue's table (minutes)
    .venv/bin/python bench/export.py --databases sqlite,postgres               # both (PostgreSQL: --postgres URL)
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgres://prefstudio:prefstudio@127.0.0.1:5432/prefstudio"


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def django_setup(data_dir: Path, database_url: str = "") -> None:
    """Django on the bench's database: SQLite in data_dir, or the PostgreSQL database at database_url."""
    os.environ["PREFSTUDIO_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.pop("DATABASE_URL", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# ---------------------------------------------------------------------------------------------------------
# The roles, each run in its own process


def generate(data_dir: Path, judgments: int, votes: int, seed: int, database_url: str) -> dict:
    import random

    django_setup(data_dir, database_url)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction

    from annotator.models import Campaign, Judgment

    call_command("migrate", verbosity=0)
    rng = random.Random(seed)
    words = ["the", "a", "cat", "dog", "ran", "sat", "on", "mat", "and", "then", "over", "under", "happy", "sad",
             "tree", "sun", "rain", "code", "list", "why", "how"]  # fmt: skip
    pool = [" ".join(rng.choices(words, k=rng.randint(60, 140))) for _ in range(997)]
    users = [get_user_model().objects.create_user(f"bench{i}") for i in range(votes)]
    campaign = Campaign.objects.create(name="bench", overlap=votes)
    pairs = judgments // votes
    started = time.perf_counter()
    with transaction.atomic():
        fill(campaign, users, pairs=pairs, pool=pool, seed=seed)
    return {"pairs": pairs, "judgments": Judgment.objects.count(), "seconds": time.perf_counter() - started}


def fill(campaign: Any, users: list, *, pairs: int, pool: list[str], seed: int, batch: int = 20000) -> None:
    """`pairs` pairs, one prompt each (a quarter of them multi-turn), judged by every user: rows written straight
    in executemany and INSERT ... SELECT (bulk_create spends minutes per million rows preparing values)."""
    import json

    from annotator.models import Candidate, Comparison, Prompt
    from core.conversations import conversation_hash

    params = json.dumps({"temperature": 0.8, "top_p": 0.95, "max_tokens": 256})
    for start in range(0, pairs, batch):  # a fresh database: pair i is prompt i + 1, candidates 2i + 1 and 2i + 2
        ids = range(start, min(start + batch, pairs))
        prompts = []
        for i in ids:
            messages = [{"role": "user", "content": f"Question {i}: {pool[i % 997][:200]}?"}]
            if i % 4 == 0:
                messages = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}, *messages]
            prompts.append({"id": i + 1, "campaign_id": campaign.pk, "messages": json.dumps(messages),
                            "content_hash": conversation_hash(messages)})  # fmt: skip
        rows_insert(Prompt, prompts)
        rows_insert(
            Candidate,
            [
                {"id": 2 * i + k + 1, "prompt_id": i + 1, "text": f"{pool[(i * 7 + ord(side)) % 997]} ({side}{i})",
                 "model_name": f"bench-model-{side}", "backend": "bench", "sampling_params": params, "seed": i}
                for i in ids
                for k, side in enumerate("ab")
            ],
        )  # fmt: skip
        rows_insert(
            Comparison,
            [
                {
                    "id": i + 1,
                    "prompt_id": i + 1,
                    "campaign_id": campaign.pk,
                    "candidate_a_id": 2 * i + 1,
                    "candidate_b_id": 2 * i + 2,
                }
                for i in ids
            ],
        )
    judgments_insert(campaign=campaign, users=users, seed=seed)


def _column_defaults(model: type, given: set[str]) -> dict[str, Any]:
    """The stored value of each column of `model` not in `given`: its model default (now for auto_now_add)."""
    from django.db import connection
    from django.utils import timezone

    defaults = {}
    for field in model._meta.concrete_fields:
        if field.attname not in given:
            value = timezone.now() if getattr(field, "auto_now_add", False) else field.get_default()
            defaults[field.column] = field.get_db_prep_save(value, connection)
    return defaults


def rows_insert(model: type, rows: list[dict[str, Any]]) -> None:
    """Rows given as {attname: value as stored}, in one executemany; every other column gets its default. Model
    objects and bulk_create cost minutes for a million rows, spent preparing each value in Python."""
    from django.db import connection

    defaults = _column_defaults(model, set(rows[0]))
    names = [model._meta.get_field(name).column for name in rows[0]] + list(defaults)
    columns = ", ".join(connection.ops.quote_name(name) for name in names)
    fixed = tuple(defaults.values())
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {model._meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(names))})",  # noqa: S608
            [(*row.values(), *fixed) for row in rows],
        )


def judgments_insert(*, campaign: Any, users: list, seed: int) -> None:
    """Every user's judgment of every pair, in one INSERT ... SELECT: each pair has a true side, and each vote is
    that side 75% of the time, the other 10%, a tie 7%, both bad 3% and a skip 5%, drawn from a hash of (pair,
    user, seed). Columns the bench does not set get their default."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotator.models import Comparison, Judgment, Prompt

    draw = f"((c.id * 2654435761 + u.id * 40503 + {seed} * 97) %% 4294967291) %% 100"  # %%: a literal %
    truth = f"(((c.id * 2246822519 + {seed}) %% 4294967291) %% 2)"
    given = {
        "comparison_id": "c.id",
        "annotator_id": "u.id",
        "verdict": f"CASE WHEN {draw} < 75 THEN (CASE {truth} WHEN 0 THEN 'a' ELSE 'b' END) "
        f"WHEN {draw} < 85 THEN (CASE {truth} WHEN 0 THEN 'b' ELSE 'a' END) WHEN {draw} < 92 THEN 'tie' "
        f"WHEN {draw} < 95 THEN 'both_bad' ELSE 'skip' END",
        "shown_left": "CASE (c.id + u.id) %% 2 WHEN 0 THEN 'a' ELSE 'b' END",
    }
    defaults = _column_defaults(Judgment, {"id", *given})
    columns = ", ".join(connection.ops.quote_name(name) for name in [*given, *defaults])
    values = ", ".join([*given.values(), *["%s"] * len(defaults)])
    tables = (Judgment._meta.db_table, Comparison._meta.db_table, Prompt._meta.db_table,
              get_user_model()._meta.db_table)  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {tables[0]} ({columns}) SELECT {values} FROM {tables[1]} c "  # noqa: S608
            f"JOIN {tables[2]} p ON p.id = c.prompt_id CROSS JOIN {tables[3]} u "
            f"WHERE p.campaign_id = %s AND u.id IN ({', '.join(['%s'] * len(users))}) ORDER BY c.id, u.id",
            [*defaults.values(), campaign.pk, *(user.pk for user in users)],
        )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return usage.ru_utime + usage.ru_stime


def export(data_dir: Path, out_dir: Path, database_url: str) -> dict:
    django_setup(data_dir, database_url)
    import exports.pipeline  # noqa: F401  (pyarrow and the pipeline imported before the clock starts)
    from annotator.models import Campaign
    from exports.services import dataset_export_create, dataset_export_run

    start_rss = rss_mb()
    started, cpu = time.perf_counter(), cpu_seconds()
    record = dataset_export_create(campaign=Campaign.objects.get(name="bench"), options={}, out_dir=out_dir)
    dataset_export_run(export=record)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    files = [entry["path"] for name, entry in record.files.items() if name != "card"]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
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
    started, cpu = time.perf_counter(), cpu_seconds()
    for index, table in enumerate(tables):
        pq.write_table(table, out_dir / f"floor-{index}.parquet", compression="zstd")
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu,
        "start_rss_mb": start_rss,
        "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------------------------------------------------
# The driver


def run_role(*args: str, database_url: str = "") -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--role", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BENCH_DATABASE_URL": database_url},
    )
    if result.returncode != 0:
        raise SystemExit(f"bench role {args[0]} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(database: str, size: int, data_dir: Path, url: str, args: argparse.Namespace) -> None:
    """Fill a database with `size` judgments, export it and write the floor; print one line of the table."""
    generated = run_role("generate", str(data_dir), str(size), str(args.votes), str(args.seed), database_url=url)
    load = os.getloadavg()[0]
    runs = [run_role("export", str(data_dir), str(data_dir / "export"), database_url=url) for _ in range(args.repeat)]
    exported = min(runs, key=lambda run: run["seconds"])
    floored = min(
        (run_role("floor", json.dumps(exported["files"]), str(data_dir)) for _ in range(args.repeat)),
        key=lambda run: run["seconds"],
    )
    print(
        f"{database:>8} {generated['judgments']:>10} {generated['pairs']:>8} {exported['rows']:>8} "
        f"{exported['seconds']:>9.2f} {exported['cpu_seconds']:>8.2f} {floored['seconds']:>8.2f} "
        f"{floored['cpu_seconds']:>8.2f} {exported['seconds'] / floored['seconds']:>6.1f} "
        f"{exported['cpu_seconds'] / floored['cpu_seconds']:>6.1f} "
        f"{max(run['peak_rss_mb'] for run in runs):>15.0f} {exported['start_rss_mb']:>10.0f} "
        f"{floored['peak_rss_mb']:>14.0f} {exported['bytes'] / 2**20:>8.1f} {generated['seconds']:>7.1f} "
        f"{load:>5.1f}",
        flush=True,
    )
    shutil.rmtree(data_dir)


@contextmanager
def bench_database(database: str, size: int, server: str) -> Iterator[str]:
    """The database URL to fill ("" for SQLite, in the data directory): on PostgreSQL a fresh database on
    `server`, dropped afterwards."""
    if database == "sqlite":
        yield ""
        return
    import psycopg

    name = f"bench_export_n{size}_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="Judgments per run, comma-separated.")
    parser.add_argument("--quick", action="store_true", help="Sizes 1000,10000: a check that the bench runs.")
    parser.add_argument("--votes", type=int, default=3, help="Judgments per pair (default 3).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="Where the databases go (default: a temporary directory).")
    parser.add_argument(
        "--repeat", type=int, default=1, help="Run the export and the floor this many times each; the fastest counts."
    )
    parser.add_argument(
        "--databases", default="sqlite", help="sqlite, postgres or both (comma-separated; default sqlite)."
    )
    parser.add_argument(
        "--postgres",
        default=POSTGRES,
        help="PostgreSQL URL of a role that may CREATE DATABASE: each size gets a fresh database, dropped after.",
    )
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role:
        role, *rest = args.role
        url = os.environ.get("BENCH_DATABASE_URL", "")
        if role == "generate":
            result = generate(Path(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]), url)
        elif role == "export":
            result = export(Path(rest[0]), Path(rest[1]), url)
        else:
            result = floor(json.loads(rest[0]), Path(rest[1]))
        print(json.dumps(result))
        return

    sizes = [1000, 10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-export-", dir=args.workdir))
    databases = [name.strip() for name in args.databases.split(",")]
    if unknown := set(databases) - {"sqlite", "postgres"}:
        raise SystemExit(f"--databases: unknown {', '.join(sorted(unknown))}; use sqlite, postgres or both.")
    header = " ".join(
        f"{name:>{width}}"
        for name, width in [("db", 8), ("judgments", 10), ("pairs", 8), ("rows", 8), ("export s", 9), ("(cpu s)", 8),
                            ("floor s", 8), ("(cpu s)", 8), ("ratio", 6), ("(cpu)", 6), ("export peak MB", 15),
                            ("(start MB)", 10), ("floor peak MB", 14), ("file MB", 8), ("fill s", 7), ("load", 5)]
    )  # fmt: skip
    print(header, flush=True)
    try:
        for database in databases:
            for size in sizes:
                with bench_database(database, size, args.postgres) as url:
                    measure(database, size, workdir / f"{database}-n{size}", url, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
