"""Annotators hammering a real server: judgments/s and next/submit latency, on SQLite and PostgreSQL.

Starts gunicorn (not the dev server, with the production settings of config/gunicorn.conf.py unless
--workers/--threads/--worker-class say otherwise) on a fresh database with a campaign of PAIRS pairs, runs N
simulated annotators through the API for a fixed time, then checks the database: every 201 the server gave
must be a stored judgment (lost = 0), and no pair may hold more judgments than the overlap or two from one
annotator (duplicates = 0).

Each annotator loops GET next, (think), POST a judgment; with --submit-next, POST a judgment with ?next=1,
whose answer brings the next pair (one request per judgment instead of two).

Besides judgments/s and latencies it reports the server's CPU per judgment: the CPU time (user + system) the
gunicorn processes spent during the timed window, from /proc through psutil, divided by the judgments, and
on PostgreSQL the same for the database's server processes serving the bench database; and the SQL
statements per call, which the server counts while PREFSTUDIO_COUNT_QUERIES=1 (core/querycount.py: one
counter on Django's cursor, answered in an X-Queries header).

    .venv/bin/python bench/annotate.py                       # SQLite and PostgreSQL, 20 annotators, 20 s
    .venv/bin/python bench/annotate.py --db sqlite --annotators 50 --seconds 30
    .venv/bin/python bench/annotate.py --annotators 200 --think-uniform 3,10 --seconds 60   # human pace
    .venv/bin/python bench/annotate.py --submit-next         # the one-request loop

PostgreSQL: --postgres-url (default postgres://prefstudio:prefstudio@127.0.0.1:5432/prefstudio_bench);
the role needs CREATEDB (see .ci/run). The database is dropped and created again.
"""

import argparse
import http.client
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
GUNICORN_CONFIG = "config/gunicorn.conf.py"  # the production configuration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def recreate_postgres_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def prepare(env: dict, annotators: int, pairs: int, overlap: int) -> list[str]:
    """Migrate a fresh database and create the campaign and annotators; return their API tokens."""
    migrate(env)
    return populate(env, annotators, pairs, overlap)


def migrate(env: dict) -> None:
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def populate(env: dict, annotators: int, pairs: int, overlap: int) -> list[str]:
    """Create the campaign "Bench" and the annotators bench0, bench1, ...; return their API tokens, in order."""
    script = f"""
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from annotator.models import Candidate, Comparison, Prompt
from annotator.services import campaign_create
from core.conversations import conversation_hash
campaign = campaign_create(name="Bench", overlap={overlap})
prompts = Prompt.objects.bulk_create([
    Prompt(campaign=campaign, messages=[{{"role": "user", "content": f"Question {{i}}?"}}],
           content_hash=conversation_hash([{{"role": "user", "content": f"Question {{i}}?"}}]))
    for i in range({pairs})])
candidates = Candidate.objects.bulk_create([
    Candidate(prompt=p, text=f"Answer {{side}} to question {{p.pk}}: " + "lorem ipsum " * 40, backend="bench")
    for p in prompts for side in "ab"])
Comparison.objects.bulk_create([
    Comparison(prompt=p, candidate_a=candidates[2 * i], candidate_b=candidates[2 * i + 1])
    for i, p in enumerate(prompts)])
User = get_user_model()
users = User.objects.bulk_create([User(username=f"bench{{i}}") for i in range({annotators})])
tokens = [Token.objects.create(user=u).key for u in users]
from django.db import connection
if connection.vendor == "postgresql":
    # Fresh planner statistics after the bulk load, as autovacuum would gather within a minute.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotator_prompt, annotator_comparison, annotator_judgment, annotator_assignment")
print(json.dumps(tokens))
"""
    out = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_server(
    env: dict,
    port: int,
    workers: int | None = None,
    threads: int | None = None,
    log: IO | None = None,
    preload: bool = False,
    worker_class: str | None = None,
    app: str = "config.wsgi",
    config: str | None = None,
) -> subprocess.Popen:
    """Start gunicorn and return once it answers: with the gunicorn configuration file `config` if given
    (this bench gives the production one, config/gunicorn.conf.py), `workers`, `threads` and `worker_class`
    overriding it; without one, gthread workers keeping connections 75 s (bench/faults.py). Its output goes
    to `log`, if given; `preload` loads the app before forking the workers."""
    defaults = [] if config else ["--worker-class=gthread", "--keep-alive=75"]
    server = subprocess.Popen(
        [
            str(Path(PYTHON).parent / "gunicorn"),
            *([f"--config={config}"] if config else defaults),
            app,
            f"--bind=127.0.0.1:{port}",
            *([f"--workers={workers}"] if workers else []),
            *([f"--threads={threads}"] if threads else []),
            *([f"--worker-class={worker_class}"] if worker_class else []),
            "--log-level=warning",
            *(["--preload"] if preload else []),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("gunicorn did not come up within 60 s")


class ApiClient:
    """A keep-alive HTTP/1.1 client on the standard library: light, so the load generator leaves the
    CPUs to the server. `queries` collects the server's X-Queries header per path kind, when it sends one."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.last_queries: int | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=json.dumps(body) if body else None, headers=self.headers)
                response = self.conn.getresponse()
                queries = response.getheader("X-Queries")
                self.last_queries = int(queries) if queries is not None else None
                return response.status, response.read()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # The server closed an idle keep-alive connection: reconnect and send again, as a browser
                # does (safe here: next is a read, and a repeated submit records nothing twice).
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def cpu_seconds(processes: list) -> dict[int, float]:
    """User + system CPU seconds of each process (by pid) that still runs."""
    import psutil

    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


def server_processes(server: subprocess.Popen, postgres_database: str | None) -> tuple[list, list]:
    """gunicorn's processes (its master and workers), and the PostgreSQL server processes connected to the
    bench database (their command line names it)."""
    import psutil

    master = psutil.Process(server.pid)
    gunicorn = [master, *master.children(recursive=True)]
    postgres = []
    if postgres_database:
        for process in psutil.process_iter(["cmdline"]):
            words = " ".join(process.info["cmdline"] or []).split()
            # "postgres: [CLUSTER:] USER DATABASE HOST(PORT) STATE", the cluster name on Debian ("15/main:").
            if words[:1] == ["postgres:"] and postgres_database in words[2:4]:
                postgres.append(process)
    return gunicorn, postgres


def run_annotators(
    port: int,
    tokens: list[str],
    seconds: float,
    think: Callable[[random.Random], float],
    submit_next: bool,
    on_start: Callable[[], None],
) -> dict:
    """Run the annotators for `seconds` after they are all connected (`on_start` is called then, and once
    more when the last one has stopped). `think(rng)` is the pause, in seconds, before each submit."""
    probe = ApiClient(port, tokens[0])
    campaign_id = json.loads(probe.request("GET", "/api/campaigns/")[1])["results"][0]["id"]
    probe.close()
    next_path = f"/api/campaigns/{campaign_id}/next/"
    next_ms: list[float] = []
    submit_ms: list[float] = []
    next_queries: list[int] = []
    submit_queries: list[int] = []
    created: list[int] = []
    warm_up: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    clock: dict[str, float] = {}

    def start_clock() -> None:  # runs once, when every annotator is connected and waiting
        on_start()
        clock["started"] = time.monotonic()
        clock["stop_at"] = clock["started"] + seconds

    start = threading.Barrier(len(tokens) + 1, action=start_clock)
    choices = ["left", "right", "left", "right", "tie", "both_bad"]

    def ask_next(client: ApiClient) -> dict | None:
        """GET next, timed; the pair, or None when there is none (or an error, recorded)."""
        t0 = time.perf_counter()
        code, body = client.request("GET", next_path)
        elapsed = (time.perf_counter() - t0) * 1000
        with lock:
            next_ms.append(elapsed)
            if client.last_queries is not None:
                next_queries.append(client.last_queries)
            if code not in (200, 204):
                errors.append(f"next {code}: {body[:200]!r}")
        return json.loads(body) if code == 200 else None

    def annotator(token: str, seed: int) -> None:
        rng = random.Random(seed)
        client = ApiClient(port, token)
        try:
            # Warm-up, untimed: connect, and run the workers' code paths once (a next and a skip, recorded and
            # checked like the others; with --submit-next the skip's answer brings the first pair).
            code, body = client.request("GET", next_path)
            pair = json.loads(body) if code == 200 else None
            if pair is not None:
                path = f"/api/comparisons/{pair['id']}/judgments/" + ("?next=1" if submit_next else "")
                code, body = client.request("POST", path, {"choice": "skip"})
                answer = json.loads(body) if code in (200, 201) else {}
                with lock:
                    warm_up.append(answer["judgment"]["id"] if submit_next else answer["id"])
                pair = answer.get("next") if submit_next else None
            start.wait()
            # People don't all click at the same instant: with think times, each starts a random part of one
            # think time in (else the first requests would all arrive at once, a burst no team makes).
            time.sleep(rng.uniform(0, think(rng)))
            while time.monotonic() < clock["stop_at"]:
                if pair is None:
                    pair = ask_next(client)
                    if pair is None:
                        break
                pause = think(rng)
                if pause:
                    time.sleep(pause)
                path = f"/api/comparisons/{pair['id']}/judgments/" + ("?next=1" if submit_next else "")
                t2 = time.perf_counter()
                code, body = client.request("POST", path, {"choice": rng.choice(choices)})
                t3 = time.perf_counter()
                answer = json.loads(body) if code in (200, 201) else {}
                with lock:
                    submit_ms.append((t3 - t2) * 1000)
                    if client.last_queries is not None:
                        submit_queries.append(client.last_queries)
                    if code == 201:
                        created.append(answer["judgment"]["id"] if submit_next else answer["id"])
                    else:
                        errors.append(f"submit {code}: {body[:200]!r}")
                pair = answer.get("next") if submit_next else None
                if submit_next and pair is None and code in (200, 201):
                    break  # nothing left now (a Retry-After would say when to ask again: the bench stops)
        except Exception as error:  # a dead annotator must show in the table, not vanish
            errors.append(f"annotator {seed}: {error!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=annotator, args=(t, i)) for i, t in enumerate(tokens)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    on_start()
    elapsed = time.monotonic() - clock["started"]
    return {
        "elapsed": elapsed,
        "next_ms": next_ms,
        "submit_ms": submit_ms,
        "next_queries": next_queries,
        "submit_queries": submit_queries,
        "created": created,
        "warm_up": warm_up,
        "errors": errors,
    }


def check_database(env: dict, created: list[int], overlap: int) -> dict:
    script = f"""
import json
from django.db.models import Count
from annotator.models import Judgment
created = set(json.loads({json.dumps(created)!r}))
stored = set(Judgment.objects.values_list("id", flat=True))
per_pair = Judgment.objects.exclude(verdict="skip").values("comparison").annotate(n=Count("id"))
over = sum(1 for row in per_pair if row["n"] > {overlap})
twice = Judgment.objects.values("comparison", "annotator").annotate(n=Count("id")).filter(n__gt=1).count()
print(json.dumps({{"lost": len(created - stored), "duplicates": over + twice, "stored": len(stored)}}))
"""
    out = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def think_time(args: argparse.Namespace) -> Callable[[random.Random], float]:
    if args.think_uniform:
        low, high = args.think_uniform
        return lambda rng: rng.uniform(low, high)
    if args.think_ms:
        mean = args.think_ms / 1000
        return lambda rng: rng.expovariate(1 / mean)
    return lambda rng: 0.0


def bench(db: str, args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="prefstudio-bench-"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "PREFSTUDIO_DATA_DIR": str(workdir)}
    env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    env.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))  # gunicorn refuses the development key
    postgres_database = None
    if db == "postgres":
        recreate_postgres_database(args.postgres_url)
        env["DATABASE_URL"] = args.postgres_url
        postgres_database = urlparse(args.postgres_url).path.lstrip("/")
    else:
        env.pop("DATABASE_URL", None)
    env["DATABASE_CONN_MAX_AGE"] = "60"  # persistent connections, as a production deployment would use
    if args.count_queries:
        env["PREFSTUDIO_COUNT_QUERIES"] = "1"
    try:
        tokens = prepare(env, args.annotators, args.pairs, args.overlap)
        port = free_port()
        app = "config.wsgi"
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            env["PREFSTUDIO_PROFILE_DIR"] = str(Path(args.profile).resolve())
            app = "bench.profiled_wsgi"
        server = start_server(
            env, port, args.workers, args.threads, worker_class=args.worker_class, app=app, config=GUNICORN_CONFIG
        )
        try:
            snapshots: list[tuple[dict, dict, float]] = []

            def snapshot() -> None:
                gunicorn, postgres = server_processes(server, postgres_database)
                snapshots.append((cpu_seconds(gunicorn), cpu_seconds(postgres), time.monotonic()))

            load_before = Path("/proc/loadavg").read_text().split()[:3]
            result = run_annotators(port, tokens, args.seconds, think_time(args), args.submit_next, snapshot)
            result["load"] = (load_before, Path("/proc/loadavg").read_text().split()[:3])
        finally:
            server.terminate()
            server.wait(timeout=30)
        (web0, db0, _), (web1, db1, _) = snapshots
        # A process that started during the window (a new PostgreSQL connection) counts from 0.
        result["web_cpu_s"] = sum(web1.values()) - sum(web0.get(pid, 0.0) for pid in web1)
        result["db_cpu_s"] = sum(db1.values()) - sum(db0.get(pid, 0.0) for pid in db1)
        result.update(check_database(env, result["created"] + result["warm_up"], args.overlap))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def print_profile(directory: Path, db: str) -> None:
    """Print the server's profile (every worker's, summed), by own time and by cumulative time."""
    import pstats

    files = sorted(directory.glob("*.prof"))
    if not files:
        print(f"[{db}] no profile was written", file=sys.stderr)
        return
    stats = pstats.Stats(*map(str, files))
    print(f"\n[{db}] server profile, {len(files)} workers:")
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(45)
    for file in files:
        file.rename(file.parent / f"{file.stem}.{db}.done")


def mean_or_dash(values: list[int]) -> str:
    return f"{statistics.mean(values):.1f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--overlap", type=int, default=2)
    think = parser.add_mutually_exclusive_group()
    think.add_argument("--think-ms", type=float, default=0, help="Mean think time before each submit (exponential).")
    think.add_argument(
        "--think-uniform",
        type=lambda text: tuple(float(x) for x in text.split(",")),
        metavar="LOW,HIGH",
        help="Think time before each submit drawn uniformly from LOW to HIGH seconds (human pace: 3,10).",
    )
    parser.add_argument("--submit-next", action="store_true", help="POST judgments with ?next=1: one request each.")
    parser.add_argument("--workers", type=int, help="gunicorn worker processes (default: config/gunicorn.conf.py)")
    parser.add_argument("--threads", type=int, help="threads per gunicorn worker (default: config/gunicorn.conf.py)")
    parser.add_argument("--worker-class", help="gunicorn worker class (default: config/gunicorn.conf.py)")
    parser.add_argument(
        "--no-count-queries",
        dest="count_queries",
        action="store_false",
        help="Do not have the server count its SQL statements (PREFSTUDIO_COUNT_QUERIES).",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="Profile the server (cProfile in each worker, one thread each: bench/profiled_wsgi.py), write the "
        "statistics to DIR and print the functions that took the most time.",
    )
    parser.add_argument("--postgres-url", default="postgres://prefstudio:prefstudio@127.0.0.1:5432/prefstudio_bench")
    args = parser.parse_args()
    if args.profile and (args.threads or 1) != 1:
        parser.error("--profile needs one thread per worker (--threads 1): cProfile profiles one thread.")

    rows = []
    for db in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        result = bench(db, args)
        judgments = len(result["submit_ms"])
        per_judgment = judgments or float("nan")
        rows.append(
            [
                db,
                str(args.annotators),
                f"{judgments / result['elapsed']:.1f}",
                f"{statistics.median(result['next_ms']):.1f}" if result["next_ms"] else "-",
                f"{percentile(result['next_ms'], 99):.1f}" if result["next_ms"] else "-",
                f"{statistics.median(result['submit_ms']):.1f}" if result["submit_ms"] else "-",
                f"{percentile(result['submit_ms'], 99):.1f}" if result["submit_ms"] else "-",
                f"{1000 * result['web_cpu_s'] / per_judgment:.2f}",
                f"{1000 * result['db_cpu_s'] / per_judgment:.2f}" if db == "postgres" else "-",
                mean_or_dash(result["next_queries"]),
                mean_or_dash(result["submit_queries"]),
                str(len(result["errors"])),
                str(result["lost"]),
                str(result["duplicates"]),
                "{} -> {}".format(*(" ".join(load) for load in result["load"])),
            ]
        )
        for error in result["errors"][:5]:
            print(f"[{db}] {error}", file=sys.stderr)
        if args.profile:
            print_profile(Path(args.profile), db)
    header = ["db", "annotators", "judgments/s", "next p50 ms", "next p99 ms", "submit p50 ms", "submit p99 ms"]
    header += ["web CPU ms/j", "db CPU ms/j", "next queries", "submit queries", "errors", "lost", "duplicates"]
    header += ["loadavg before -> after"]
    if args.think_uniform:
        pace = f"think time uniform {args.think_uniform[0]:g}-{args.think_uniform[1]:g} s"
    else:
        pace = f"think time {args.think_ms:.0f} ms"
    server = f"gunicorn {args.workers or 'config'} workers x {args.threads or 'config'} threads"
    server += f" ({args.worker_class or 'config'})"
    loop = "submit?next=1" if args.submit_next else "next + submit"
    print(
        f"\n{args.seconds:.0f} s, {server}, {loop}, {args.pairs} pairs, overlap {args.overlap}, {pace}, "
        f"{os.cpu_count()} CPUs\n"
    )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
