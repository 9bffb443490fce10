"""Faults under load: gunicorn killed, the database stopped, annotators gone with pairs in hand.

Simulated annotators (threads, 50 by default) work through the API against gunicorn in a closed loop: GET
the next pair, think, POST a judgment. A request that gets no answer, or a 5xx, is sent again after the pause
the server's Retry-After asks for (else 0.25, 0.5, 1, 2 s); a submit is sent again until it is answered. One
fault is injected mid-run:

- kill: SIGKILL to gunicorn's master and every worker at once, then gunicorn started again, as a supervisor
  (systemd's Restart=always) does.
- db-down: PostgreSQL stopped with `pg_ctlcluster ... stop -m immediate` (a crash, for its sessions) and
  started again DOWN seconds later; the app is not restarted. SQLite has no server: there another process
  holds the write lock for DOWN seconds instead (a backup, a long import).
- leases: the kill again, and LEAVERS annotators who hold a pair leave for good without judging it. Leases
  last LEASE seconds, the campaign is small, and the run goes on until it is done: every pair must end with
  `overlap` judgments, the abandoned ones taken by others once their leases expired.

Then the database is checked. acknowledged: submits the server answered with a judgment (201, or 200 with the
first one for a repeat). lost: acknowledged judgments that are not stored. duplicated: two judgments by one
annotator on one pair, or a repeat answered with another judgment than the stored one. over overlap: pairs
with more judgments than the overlap. fault over: seconds from the fault until gunicorn was started again, PostgreSQL
accepted connections again, SQLite's lock was released. service back: seconds from the fault until the first
success of a request sent after it. Status codes: every answer the clients saw, per endpoint ("refused", "reset":
no answer at all). resent: judgments acknowledged only after they were sent more than once.

    .venv/bin/python bench/faults.py                           # every fault on SQLite and PostgreSQL
    .venv/bin/python bench/faults.py --db sqlite --fault kill --annotators 20

PostgreSQL: --postgres-url names the database the runs use (dropped and created again, with a template
beside it: the role needs CREATEDB) and --postgres-cluster the cluster that db-down stops and starts again
(the script runs pg_ctlcluster: run it as root or postgres). Stopping a cluster stops it for everyone using
it: point both at a cluster of your own if others share the machine.
"""

import argparse
import collections
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from annotate import PYTHON, ROOT, free_port, migrate, populate, start_server  # bench/annotate.py

FAULTS = ["kill", "db-down", "leases"]
CHOICES = ["left", "right", "tie", "both_bad"]  # no skip: a skip takes no slot, and every pair must fill up
RESEND = {500, 502, 503, 504}


@dataclass
class Answer:
    status: int | str  # the HTTP status, or what happened instead: "refused", "reset", "timeout"
    body: bytes
    retry_after: float | None
    sent: float
    answered: float

    @property
    def ok(self) -> bool:
        return isinstance(self.status, int) and 200 <= self.status < 300


class Client:
    """One annotator's keep-alive connection; a failed request closes it and the next one reconnects."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> Answer:
        sent = time.time()
        try:
            self.conn.request(method, path, body=json.dumps(body) if body else None, headers=self.headers)
            response = self.conn.getresponse()
            content = response.read()
            retry_after = response.getheader("Retry-After")
            return Answer(response.status, content, float(retry_after) if retry_after else None, sent, time.time())
        except (OSError, http.client.HTTPException) as error:
            self.conn.close()
            return Answer(failure_name(error), b"", None, sent, time.time())

    def close(self) -> None:
        self.conn.close()


def failure_name(error: Exception) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected):
        return "reset"  # the connection died before the answer ...
    if isinstance(error, http.client.IncompleteRead):
        return "reset"  # ... or halfway through it
    if isinstance(error, TimeoutError):
        return "timeout"
    return type(error).__name__


def pause(answer: Answer, failures: int, rng: random.Random) -> float:
    """How long to wait before sending again: what Retry-After asks, else a doubling pause; spread by up to 25%."""
    base = answer.retry_after if answer.retry_after is not None else min(0.25 * 2**failures, 2.0)
    return base * (1 + 0.25 * rng.random())


@dataclass
class Run:
    port: int
    campaign_id: int
    think_s: float
    stop_at: float  # no new pair after this
    until_done: bool  # go on until the campaign has nothing left (stop_at is then a safety limit)
    idle_s: float  # ... which is when every annotator got "nothing left" (204) for this long
    leavers: set[int]
    fault_started: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: list[tuple[str, Answer]] = field(default_factory=list)  # ("next" or "submit", its answer)
    served: list[tuple[int, int, float]] = field(default_factory=list)  # annotator, comparison, when
    acks: list[tuple[int, int, int, int]] = field(default_factory=list)  # annotator, comparison, judgment, tries
    left: list[tuple[int, int]] = field(default_factory=list)  # annotator, the comparison they held when they left

    def record(self, what: str, answer: Answer) -> Answer:
        with self.lock:
            self.answers.append((what, answer))
        return answer


def annotator(run: Run, index: int, token: str) -> None:
    rng = random.Random(index)
    client = Client(run.port, token)
    failures = 0
    idle_since = None
    try:
        while time.time() < run.stop_at:
            answer = run.record("next", client.call("GET", f"/api/campaigns/{run.campaign_id}/next/"))
            if answer.status == 204:
                idle_since = idle_since or answer.answered
                if not run.until_done or answer.answered - idle_since > run.idle_s:
                    return
                time.sleep(0.5)
                continue
            idle_since = None
            if answer.status != 200:
                time.sleep(pause(answer, failures, rng))
                failures += 1
                continue
            failures = 0
            pair = json.loads(answer.body)["id"]
            with run.lock:
                run.served.append((index, pair, answer.answered))
            if run.think_s:
                time.sleep(rng.expovariate(1 / run.think_s))
            if not submit(run, client, index, pair, rng):
                return  # left, the pair leased to them and unjudged
    finally:
        client.close()


def submit(run: Run, client: Client, index: int, pair: int, rng: random.Random) -> bool:
    """Judge the pair, sending the judgment again until it is answered; False if the annotator left instead."""
    choice = rng.choice(CHOICES)
    tries = 0
    while True:
        if index in run.leavers and run.fault_started.is_set():
            with run.lock:
                run.left.append((index, pair))
            return False
        answer = run.record("submit", client.call("POST", f"/api/comparisons/{pair}/judgments/", {"choice": choice}))
        tries += 1
        if answer.status in (200, 201):
            with run.lock:
                run.acks.append((index, pair, json.loads(answer.body)["id"], tries))
            return True
        if not (isinstance(answer.status, str) or answer.status in RESEND):
            return True  # refused (409: the hold expired and others filled the pair meanwhile): not acknowledged
        if time.time() > run.stop_at + 60:
            return True  # never answered: not acknowledged either
        time.sleep(pause(answer, tries - 1, rng))


# ---------------------------------------------------------------------------------------------------------
# The faults: when each began, and when it was over (gunicorn started again, PostgreSQL accepting connections
# again, SQLite's lock released).


def gunicorn_kill(server: subprocess.Popen) -> float:
    """SIGKILL to the master and every worker, all at once (nothing gets to shut down cleanly)."""
    pids = [server.pid]
    for task in Path(f"/proc/{server.pid}/task").iterdir():
        pids += [int(pid) for pid in (task / "children").read_text().split()]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    began = time.time()
    server.wait()
    return began


def database_down(db: dict, seconds: float) -> tuple[float, float]:
    if db["engine"] == "postgres":
        import psycopg

        cluster = db["cluster"]
        subprocess.run(["pg_ctlcluster", *cluster, "stop", "-m", "immediate"], check=True)
        began = time.time()
        try:
            time.sleep(seconds)
        finally:
            starting = subprocess.Popen(["pg_ctlcluster", *cluster, "start"])
        while True:  # crash recovery first: "the database system is starting up" until it is done
            try:
                psycopg.connect(db["url"], connect_timeout=1).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.05)
        over = time.time()
        if starting.wait() != 0:
            raise SystemExit(f"pg_ctlcluster {' '.join(cluster)} start failed: start the cluster by hand")
        return began, over
    holder = sqlite3.connect(db["path"], isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    began = time.time()
    time.sleep(seconds)
    holder.execute("COMMIT")
    holder.close()
    return began, time.time()


# ---------------------------------------------------------------------------------------------------------
# One run: a fresh copy of the migrated database, the annotators, the fault, the check.


def database_fresh(db: dict, template: dict) -> dict:
    """A run's database: a copy of the migrated template (migrating takes longer than a run's setup)."""
    if db["engine"] == "postgres":
        import psycopg

        admin = urlparse(db["url"])._replace(path="/postgres").geturl()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db["name"]}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db["name"]}" TEMPLATE "{template["name"]}"')
        return {**db, "env": {"DATABASE_URL": db["url"]}}
    folder = Path(tempfile.mkdtemp(prefix="prefstudio-faults-"))
    shutil.copy(template["path"], folder / "db.sqlite3")
    return {**db, "path": folder / "db.sqlite3", "folder": folder, "env": {"PREFSTUDIO_DATA_DIR": str(folder)}}


def check_database(env: dict, run: Run, overlap: int) -> dict:
    """What the database holds against what the clients were told."""
    facts = Path(tempfile.mkstemp(prefix="prefstudio-faults-", suffix=".json")[1])
    facts.write_text(json.dumps({"acks": run.acks, "left": run.left, "overlap": overlap}))
    script = f"""
import json
from django.db.models import Count
from annotator.models import Assignment, Comparison, Judgment
facts = json.loads(open({str(facts)!r}).read())
stored = {{}}
for username, comparison, judgment in Judgment.objects.values_list("annotator__username", "comparison_id", "id"):
    stored.setdefault((int(username.removeprefix("bench")), comparison), []).append(judgment)
ids = {{judgment for judgments in stored.values() for judgment in judgments}}
acks = facts["acks"]
lost = sum(1 for _, _, judgment, _ in acks if judgment not in ids)
twice = sum(1 for judgments in stored.values() if len(judgments) > 1)
answered_with_another = sum(1 for a, c, judgment, _ in acks if judgment in ids and stored[(a, c)] != [judgment])
over = (
    Judgment.objects.exclude(verdict="skip").values("comparison").annotate(n=Count("id"))
    .filter(n__gt=facts["overlap"]).count()
)
abandoned = [  # the leases the leavers held when they left (a submit sent just before may have been recorded)
    (comparison, lease.expires_at.timestamp())
    for index, comparison in facts["left"]
    if (index, comparison) not in stored
    for lease in Assignment.objects.filter(annotator__username=f"bench{{index}}", comparison_id=comparison)
]
print(json.dumps({{
    "lost": lost,
    "duplicated": twice + answered_with_another,
    "over": over,
    "unjudged": Comparison.objects.filter(human_votes__lt=facts["overlap"]).count(),
    "abandoned": abandoned,
}}))
"""
    try:
        out = subprocess.run(
            [PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
    finally:
        facts.unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])


def lease_returns(run: Run, abandoned: list[tuple[int, float]], back: float) -> dict[str, list[float]]:
    """For each abandoned lease that expired while the server was up, seconds from its expiry until its pair was
    next handed to an annotator; for one that expired while the server was down, seconds from the server's
    return. A pair never handed out again (judgments sent before the lease expired filled it) counts in neither.
    """
    returns: dict[str, list[float]] = {"up": [], "down": []}
    for pair, expires_at in abandoned:
        after = [when for _, served, when in run.served if served == pair and when >= expires_at]
        if after:
            returns["up" if expires_at >= back else "down"].append(min(after) - max(expires_at, back))
    return returns


def fault_run(db: dict, template: dict, fault: str, args: argparse.Namespace) -> dict:
    db = database_fresh(db, template)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **db["env"]}
    env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    env["DATABASE_CONN_MAX_AGE"] = "60"  # persistent connections, as a production deployment would use
    leases = fault == "leases"
    if leases:
        env["PREFSTUDIO_LEASE_SECONDS"] = str(args.lease_seconds)
    try:
        tokens = populate(env, args.annotators, args.lease_pairs if leases else args.pairs, args.overlap)
        with tempfile.TemporaryFile() as log:
            run, began, over = annotators_through_fault(db, env, fault, tokens, log, args)
            if any(answer.status == 500 for _, answer in run.answers):
                log.seek(0)
                print(f"[{db['engine']} {fault}] 500s; the server's log ends:", file=sys.stderr)
                print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)
        result = check_database(env, run, args.overlap)
    finally:
        if "folder" in db:
            shutil.rmtree(db["folder"], ignore_errors=True)
    answers = [answer for _, answer in run.answers]
    back = [answer.answered for answer in answers if answer.ok and answer.sent >= began]
    result.update(
        acknowledged=len(run.acks),
        resent=sum(1 for *_, tries in run.acks if tries > 1),
        over_s=over - began,
        back_s=min(back) - began if back else None,
        statuses={
            what: collections.Counter(str(answer.status) for kind, answer in run.answers if kind == what)
            for what in ("next", "submit")
        },
        returns=lease_returns(run, result["abandoned"], min(back, default=began)),
        seconds=max(answer.answered for answer in answers) - min(answer.sent for answer in answers),
    )
    return result


def annotators_through_fault(
    db: dict, env: dict, fault: str, tokens: list[str], log: IO, args: argparse.Namespace
) -> tuple[Run, float, float]:
    """Start gunicorn and the annotators, inject the fault, wait for the annotators to finish."""
    port = free_port()
    server = start_server(env, port, args.workers, args.threads, log, args.preload)
    try:
        probe = Client(port, tokens[0])
        while not (answer := probe.call("GET", "/api/campaigns/")).ok:  # a worker may still be starting
            time.sleep(0.2)
        campaign_id = json.loads(answer.body)["results"][0]["id"]
        probe.close()
        leases = fault == "leases"
        started = time.time()
        run = Run(
            port=port,
            campaign_id=campaign_id,
            think_s=args.think_ms / 1000,
            stop_at=started + (args.seconds * 6 if leases else args.seconds),
            until_done=leases,
            idle_s=args.lease_seconds + 2,
            leavers=set(range(args.leavers)) if leases else set(),
        )
        threads = [threading.Thread(target=annotator, args=(run, i, token)) for i, token in enumerate(tokens)]
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, started + args.fault_at - time.time()))
        if fault == "db-down":
            began, over = database_down(db, args.down_seconds)
        else:
            run.fault_started.set()
            began = gunicorn_kill(server)
            over = time.time()  # started again at once; how long it takes to serve is the service's part
            server = start_server(env, port, args.workers, args.threads, log, args.preload)
        if not leases:
            run.stop_at = max(run.stop_at, over + args.after)
        for thread in threads:
            thread.join()
        return run, began, over
    finally:
        server.terminate()
        server.wait(timeout=30)


def template_database(engine: str, args: argparse.Namespace) -> tuple[dict, dict]:
    """The database the runs use and a migrated template to copy it from."""
    if engine == "postgres":
        import psycopg

        parsed = urlparse(args.postgres_url)
        name = parsed.path.lstrip("/")
        db = {"engine": engine, "url": args.postgres_url, "name": name, "cluster": args.postgres_cluster.split()}
        template = {"name": f"{name}_template"}
        with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{template["name"]}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{template["name"]}"')
        url = parsed._replace(path=f"/{template['name']}").geturl()
        migrate({**os.environ, "DATABASE_URL": url})
        return db, template
    folder = Path(tempfile.mkdtemp(prefix="prefstudio-faults-template-"))
    env = {**os.environ, "PREFSTUDIO_DATA_DIR": str(folder)}
    env.pop("DATABASE_URL", None)
    try:
        migrate(env)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return {"engine": engine}, {"path": folder / "db.sqlite3", "folder": folder}


def template_drop(template: dict, args: argparse.Namespace) -> None:
    if "folder" in template:
        shutil.rmtree(template["folder"], ignore_errors=True)
        return
    import psycopg

    parsed = urlparse(args.postgres_url)
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{template["name"]}" WITH (FORCE)')
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')


FAULT_WORDS = {
    ("kill", "sqlite"): "kill -9 gunicorn (master + workers), restart",
    ("kill", "postgres"): "kill -9 gunicorn (master + workers), restart",
    ("db-down", "sqlite"): "another process holds the write lock {down} s",
    ("db-down", "postgres"): "stop -m immediate, start {down} s later",
    ("leases", "sqlite"): "kill -9 gunicorn, {leavers} annotators leave",
    ("leases", "postgres"): "kill -9 gunicorn, {leavers} annotators leave",
}


def median_max(values: list[float]) -> str:
    return f"{len(values)}: {statistics.median(values):.2f} / {max(values):.2f}" if values else "0"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--fault", choices=[*FAULTS, "all"], default="all")
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15, help="length of a kill or db-down run")
    parser.add_argument("--fault-at", type=float, default=5, help="seconds into the run")
    parser.add_argument("--down-seconds", type=float, default=5, help="how long the database stays down")
    parser.add_argument("--after", type=float, default=5, help="run at least this long after the fault")
    parser.add_argument("--pairs", type=int, default=5000, help="pairs in the campaign (kill, db-down)")
    parser.add_argument("--lease-pairs", type=int, default=150, help="pairs in the campaign (leases)")
    parser.add_argument("--lease-seconds", type=int, default=5, help="PREFSTUDIO_LEASE_SECONDS (leases)")
    parser.add_argument("--leavers", type=int, default=10, help="annotators who leave at the kill (leases)")
    parser.add_argument("--think-ms", type=float, default=1000, help="mean think time between next and submit")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--preload", action="store_true", help="gunicorn --preload: import the app once, then fork")
    parser.add_argument("--postgres-url", default="postgres://prefstudio:prefstudio@127.0.0.1:5432/prefstudio_faults")
    parser.add_argument("--postgres-cluster", default="15 main", help="version and name, for pg_ctlcluster")
    args = parser.parse_args()

    rows, lease_rows = [], []
    for engine in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        db, template = template_database(engine, args)
        try:
            for fault in FAULTS if args.fault == "all" else [args.fault]:
                result = fault_run(db, template, fault, args)
                words = FAULT_WORDS[fault, engine].format(down=f"{args.down_seconds:g}", leavers=args.leavers)
                statuses = "; ".join(
                    what + " " + ", ".join(f"{code} x{n}" for code, n in sorted(counts.items()))
                    for what, counts in result["statuses"].items()
                )
                back = "-" if result["back_s"] is None else f"{result['back_s']:.1f}"
                over = f"{result['over_s']:.1f}"
                rows.append(
                    [
                        engine,
                        words,
                        str(result["acknowledged"]),
                        str(result["resent"]),
                        str(result["lost"]),
                        str(result["duplicated"]),
                        str(result["over"]),
                        over,
                        back,
                        statuses,
                    ]
                )
                if fault == "leases":
                    returns = result["returns"]
                    lease_rows.append(
                        [
                            engine,
                            str(len(result["abandoned"])),
                            str(len(returns["up"]) + len(returns["down"])),
                            median_max(returns["up"]),
                            median_max(returns["down"]),
                            str(result["unjudged"]),
                            f"{result['seconds']:.0f}",
                        ]
                    )
        finally:
            template_drop(template, args)

    print(
        f"\n{args.annotators} annotators, overlap {args.overlap}, think time {args.think_ms:.0f} ms, gunicorn "
        f"{args.workers} workers x {args.threads} threads{' --preload' if args.preload else ''}, "
        f"fault {args.fault_at:g} s into a {args.seconds:g} s run, {os.cpu_count()} CPUs\n"
    )
    header = ["db", "fault", "acknowledged", "resent", "lost", "duplicated", "over overlap", "fault over s"]
    print_table([*header, "service back s", "status codes clients saw"], rows)
    if lease_rows:
        print(
            f"\nleases: {args.leavers} annotators leave at the kill, each holding a pair; leases of "
            f"{args.lease_seconds} s; {args.lease_pairs} pairs, run until none is left\n"
        )
        header = [
            "db",
            "abandoned leases",
            "handed out again",
            "expired, server up: n, median / max s after expiry",
            "expired, server down: n, ... after its return",
            "pairs left unjudged",
            "run s",
        ]
        print_table(header, lease_rows)


if __name__ == "__main__":
    main()
