"""Annotators hammering a real server: judgments/s and next/submit latency, on SQLite and PostgreSQL.

Starts gunicorn (not the dev server) on a fresh database with a campaign of PAIRS pairs, runs N simulated
annotators through the API for a fixed time (each: GET next, POST a judgment, again), then checks the
database: every 201 the server gave must be a stored judgment (lost = 0), and no pair may hold more
judgments than the overlap or two from one annotator (duplicates = 0).

    .venv/bin/python bench/annotate.py                       # SQLite and PostgreSQL, 20 annotators, 20 s
    .venv/bin/python bench/annotate.py --db sqlite --annotators 50 --seconds 30

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
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


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
    env: dict, port: int, workers: int, threads: int, log: IO | None = None, preload: bool = False
) -> subprocess.Popen:
    """Start gunicorn (its output to `log`, if given; the app loaded before forking the workers if `preload`)
    and return once it answers."""
    server = subprocess.Popen(
        [
            str(Path(PYTHON).parent / "gunicorn"),
            "config.wsgi",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            f"--threads={threads}",
            "--worker-class=gthread",
            "--keep-alive=75",  # as long as a browser keeps a connection, like nginx's default
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
    CPUs to the server."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=json.dumps(body) if body else None, headers=self.headers)
                response = self.conn.getresponse()
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


def run_annotators(port: int, tokens: list[str], seconds: float, think_ms: float) -> dict:
    probe = ApiClient(port, tokens[0])
    campaign_id = json.loads(probe.request("GET", "/api/campaigns/")[1])["results"][0]["id"]
    probe.close()
    next_ms: list[float] = []
    submit_ms: list[float] = []
    created: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    clock: dict[str, float] = {}

    def start_clock() -> None:  # runs once, when every annotator is connected and waiting
        clock["started"] = time.monotonic()
        clock["stop_at"] = clock["started"] + seconds

    start = threading.Barrier(len(tokens) + 1, action=start_clock)
    choices = ["left", "right", "left", "right", "tie", "both_bad"]

    def annotator(token: str, seed: int) -> None:
        rng = random.Random(seed)
        client = ApiClient(port, token)
        try:
            # Warm-up, untimed: connect, and run the workers' code paths once (the pair stays leased to us).
            client.request("GET", f"/api/campaigns/{campaign_id}/next/")
            start.wait()
            while time.monotonic() < clock["stop_at"]:
                t0 = time.perf_counter()
                code, body = client.request("GET", f"/api/campaigns/{campaign_id}/next/")
                t1 = time.perf_counter()
                if code == 204:
                    break
                if code != 200:
                    errors.append(f"next {code}: {body[:200]!r}")
                    break
                pair = json.loads(body)
                if think_ms:
                    time.sleep(rng.expovariate(1 / (think_ms / 1000)))
                t2 = time.perf_counter()
                code, body = client.request(
                    "POST", f"/api/comparisons/{pair['id']}/judgments/", {"choice": rng.choice(choices)}
                )
                t3 = time.perf_counter()
                with lock:
                    next_ms.append((t1 - t0) * 1000)
                    submit_ms.append((t3 - t2) * 1000)
                    if code == 201:
                        created.append(json.loads(body)["id"])
                    else:
                        errors.append(f"submit {code}: {body[:200]!r}")
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
    elapsed = time.monotonic() - clock["started"]
    return {"elapsed": elapsed, "next_ms": next_ms, "submit_ms": submit_ms, "created": created, "errors": errors}


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


def bench(db: str, args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="prefstudio-bench-"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "PREFSTUDIO_DATA_DIR": str(workdir)}
    env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    env.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))  # gunicorn refuses the development key
    if db == "postgres":
        recreate_postgres_database(args.postgres_url)
        env["DATABASE_URL"] = args.postgres_url
    else:
        env.pop("DATABASE_URL", None)
    env["DATABASE_CONN_MAX_AGE"] = "60"  # persistent connections, as a production deployment would use
    try:
        tokens = prepare(env, args.annotators, args.pairs, args.overlap)
        port = free_port()
        server = start_server(env, port, args.workers, args.threads)
        try:
            result = run_annotators(port, tokens, args.seconds, args.think_ms)
        finally:
            server.terminate()
            server.wait(timeout=30)
        result.update(check_database(env, result["created"], args.overlap))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--think-ms", type=float, default=0, help="Mean think time between next and submit.")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--postgres-url", default="postgres://prefstudio:prefstudio@127.0.0.1:5432/prefstudio_bench")
    args = parser.parse_args()

    rows = []
    for db in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        result = bench(db, args)
        judgments = len(result["submit_ms"])
        rows.append(
            [
                db,
                str(args.annotators),
                f"{judgments / result['elapsed']:.0f}",
                f"{statistics.median(result['next_ms']):.1f}",
                f"{percentile(result['next_ms'], 99):.1f}",
                f"{statistics.median(result['submit_ms']):.1f}",
                f"{percentile(result['submit_ms'], 99):.1f}",
                str(len(result["errors"])),
                str(result["lost"]),
                str(result["duplicates"]),
            ]
        )
        for error in result["errors"][:5]:
            print(f"[{db}] {error}", file=sys.stderr)
    header = ["db", "annotators", "judgments/s", "next p50 ms", "next p99 ms", "submit p50 ms", "submit p99 ms"]
    header += ["errors", "lost", "duplicates"]
    print(
        f"\n{args.seconds:.0f} s, gunicorn {args.workers} workers x {args.threads} threads, "
        f"{args.pairs} pairs, overlap {args.overlap}, think time {args.think_ms:.0f} ms, {os.cpu_count()} CPUs\n"
    )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
