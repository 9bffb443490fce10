"""`manage.py generate_pairs` end to end against a bare vLLM script doing the same sampling; and (`--backends`) the
`vllm` backend's tokens/s against the `transformers` backend's.

End to end (the default): the same PROMPTS story prompts x N slots, the same SamplingParams (per-slot
temperatures, top_p, max_tokens, and the seed generate_pairs derives for each candidate), the same engine
settings, each program in its own process, timed from its start to its exit (wall, and CPU seconds of the
process: user + system, all threads):

- bare: `LLM(**kwargs)`, then one `LLM.generate` (or `LLM.chat` for a model with a chat template) over every
  request: what vLLM does alone, imports and engine start included. With `--freeze` it first freezes the
  garbage collector's heap (`gc.freeze()`), as `VllmBackend` does before it starts the engine.
- generate_pairs: `manage.py generate_pairs --create-campaign` into a fresh campaign of a scratch SQLite
  database (migrated before the timing): Django, the prompts file, the engine, storing every candidate and
  comparison.

After one untimed warm-up of the bare script (the first engine start in a fresh cache folder does more), the
two alternate (bare first in odd repeats, generate_pairs first in even ones), so that the machine's load
weighs on both alike. The stored candidates' texts are compared with the bare script's, seed by seed.

    .venv/bin/python bench/generate.py                                   # 768 prompts x 2 x 96 tokens, 2 repeats
    .venv/bin/python bench/generate.py --prompts 64 --max-tokens 32 --repeat 1      # quicker
    .venv/bin/python bench/generate.py --project ../main --repeat 1      # another checkout's generate_pairs
    .venv/bin/python bench/generate.py --backends --prompts 64 --max-tokens 64      # vllm vs transformers

On a machine without a GPU the engine gets the CPU settings of ../shared/VLLM_ON_CPU.md (both programs).
"""

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = ROOT.parent / "shared" / "models" / "stories260K"
BACKENDS = ("vllm", "transformers")

OPENINGS = ["Once upon a time, there was a", "One day, a little", "Lily went to the park with a", "Tom found a"]
THINGS = ["cat", "dog", "bird", "frog", "bear", "fish", "ball", "tree", "boat", "cake", "star", "duck", "box", "hat"]
COLOURS = ["", "red ", "big ", "small ", "happy ", "blue ", "old ", "funny "]


def prompts(count: int) -> list[str]:
    """Distinct story openings (4 x 14 x 8 = 448, then numbered)."""
    out = []
    for i in range(count):
        opening, thing = OPENINGS[i % len(OPENINGS)], THINGS[(i // len(OPENINGS)) % len(THINGS)]
        colour = COLOURS[(i // (len(OPENINGS) * len(THINGS))) % len(COLOURS)]
        lap = i // (len(OPENINGS) * len(THINGS) * len(COLOURS))
        out.append(f"{opening} {colour}{thing}" + (f" number {lap + 1}" if lap else ""))
    return out


# ---------------------------------------------------------------------------------------------------------
# End to end: generate_pairs against the bare script


def bare(job_path: str) -> None:
    """The bare vLLM script: nothing of the project, only vllm."""
    job = json.loads(Path(job_path).read_text())
    from vllm import LLM, SamplingParams

    if job.get("freeze"):  # what VllmBackend does before it starts the engine
        import gc

        gc.freeze()
    llm = LLM(**job["engine"])
    params = [SamplingParams(**p) for p in job["params"]]
    if getattr(llm.get_tokenizer(), "chat_template", None):
        outputs = llm.chat([[{"role": "user", "content": t}] for t in job["texts"]], params, use_tqdm=False)
    else:
        outputs = llm.generate(job["texts"], params, use_tqdm=False)
    texts = [o.outputs[0].text for o in outputs]
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    Path(job["out"]).write_text(json.dumps({"texts": texts, "tokens": tokens}))


def timed(command: list[str], *, env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, output) of a child process, from its start to its exit."""
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    if process.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} ... failed ({process.returncode}):\n{output[-4000:]}")
    return wall, usage.ru_utime + usage.ru_stime, output


def end_to_end(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from core.conversations import conversation_hash, conversation_normalize
    from generation.sampling import slot_seed, slots_plan
    from llm.base import EngineOptions
    from llm.vllm_engine import gpu_available, vllm_engine_kwargs

    texts = prompts(args.prompts)
    slots = slots_plan(
        n=args.n, temperatures=args.temperatures, top_ps=[args.top_p], max_tokens=args.max_tokens, two_models=False
    )
    bare_texts, params, seeds = [], [], []
    for text in texts:
        content_hash = conversation_hash(*conversation_normalize(text))
        for slot in slots:
            seed = slot_seed(base_seed=args.seed, content_hash=content_hash, slot=slot.index)
            s = slot.sampling
            bare_texts.append(text)
            seeds.append(seed)
            params.append({"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens, "seed": seed})
    engine = vllm_engine_kwargs(model=args.model, options=EngineOptions(), on_gpu=gpu_available())
    project = Path(args.project).resolve()

    with tempfile.TemporaryDirectory(prefix="bench-generate-") as scratch:
        scratch_path = Path(scratch)
        database = scratch_path / "bench.sqlite3"
        env = {
            **os.environ,
            "TMPDIR": scratch,
            "VLLM_CACHE_ROOT": str(scratch_path / "vllm-cache"),
            "HF_HUB_OFFLINE": "1",
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
            "DATABASE_URL": f"sqlite:///{database}",
        }
        env.setdefault("OMP_NUM_THREADS", "1")
        prompts_file = scratch_path / "prompts.jsonl"
        prompts_file.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
        job = scratch_path / "bare.json"
        bare_out = scratch_path / "bare-out.json"
        job.write_text(
            json.dumps(
                {"engine": engine, "texts": bare_texts, "params": params, "out": str(bare_out), "freeze": args.freeze}
            )
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=project, env=env, check=True, capture_output=True
        )
        # Untimed: the first engine start in a fresh cache folder does work the later ones do not.
        warmup = scratch_path / "warmup.json"
        warmup.write_text(
            json.dumps({"engine": engine, "texts": texts[:2], "params": params[:2], "out": str(scratch_path / "w")})
        )
        timed([sys.executable, __file__, "--bare", str(warmup)], env=env, cwd=project)

        rows = []
        for repeat in range(1, args.repeat + 1):
            order = ("bare", "generate_pairs") if repeat % 2 else ("generate_pairs", "bare")
            for program in order:
                load = os.getloadavg()[0]
                if program == "bare":
                    wall, cpu, _ = timed([sys.executable, __file__, "--bare", str(job)], env=env, cwd=project)
                    out = json.loads(bare_out.read_text())
                    rows.append(
                        {"repeat": repeat, "program": program, "wall": wall, "cpu": cpu, "load": load}
                        | {"tokens": out["tokens"], "rate": None, "texts": dict(zip(seeds, out["texts"], strict=True))}
                    )
                    continue
                campaign = f"bench-{repeat}-{time.time_ns()}"
                command = [
                    sys.executable, "manage.py", "generate_pairs", "--campaign", campaign, "--create-campaign",
                    "--model", args.model, "--prompts", str(prompts_file), "--n", str(args.n),
                    "--temperatures", ",".join(map(str, args.temperatures)), "--top-p", str(args.top_p),
                    "--max-tokens", str(args.max_tokens), "--seed", str(args.seed),
                ]  # fmt: skip
                wall, cpu, output = timed(command, env=env, cwd=project)
                found = re.search(r"Tokens: (\d+) generated .* in ([\d.]+) s: (\d+) tokens/s", output)
                with sqlite3.connect(database) as db:
                    stored = db.execute(
                        "SELECT c.seed, c.text FROM annotator_candidate c JOIN annotator_prompt p ON c.prompt_id = p.id"
                        " JOIN annotator_campaign k ON p.campaign_id = k.id WHERE k.name = ?",
                        (campaign,),
                    ).fetchall()
                rows.append(
                    {"repeat": repeat, "program": program, "wall": wall, "cpu": cpu, "load": load}
                    | {"tokens": int(found[1]) if found else 0, "rate": int(found[3]) if found else None}
                    | {"texts": dict(stored)}
                )

    print(
        f"model {Path(args.model).name}: {args.prompts} prompts x n={args.n}, max_tokens {args.max_tokens}, "
        f"temperatures {args.temperatures}, top_p {args.top_p}, seed {args.seed}, "
        f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, generate_pairs of {project}"
        + (", the bare script freezes the gc heap first" if args.freeze else "")
        + "\n"
    )
    print("| repeat | program | wall s | CPU s | tokens | tokens/s while generating | same text as bare | load |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for repeat in range(1, args.repeat + 1):
        pair = {row["program"]: row for row in rows if row["repeat"] == repeat}
        reference = pair["bare"]["texts"]
        for row in (row for row in rows if row["repeat"] == repeat):
            if row["program"] == "bare":
                same = "-"
            else:
                common = [seed for seed in row["texts"] if seed in reference]
                same = f"{sum(row['texts'][s] == reference[s] for s in common)} of {len(common)}"
            rate = f"{row['rate']:,}" if row["rate"] else "-"
            print(
                f"| {repeat} | {row['program']} | {row['wall']:.1f} | {row['cpu']:.1f} | {row['tokens']:,} | "
                f"{rate} | {same} | {row['load']:.2f} |"
            )
        ours, theirs = pair["generate_pairs"], pair["bare"]
        ratios.append((ours["wall"] / theirs["wall"], ours["cpu"] / theirs["cpu"]))
    for repeat, (wall, cpu) in enumerate(ratios, start=1):
        print(f"\nrepeat {repeat}: generate_pairs / bare: {wall:.3f}x wall, {cpu:.3f}x CPU", end="")
    print(
        f"\n\nmedian: {statistics.median(w for w, _ in ratios):.3f}x wall, "
        f"{statistics.median(c for _, c in ratios):.3f}x CPU (load average at the start of each program in the table)"
    )


# ---------------------------------------------------------------------------------------------------------
# --backends: tokens/s of the vllm backend against the transformers backend


def role(args: argparse.Namespace) -> dict:
    """Run one backend and return its figures (in its own process): start the engine (timed apart), one short
    warm-up request, then every request at once through `backend.generate()`, timed."""
    sys.path.insert(0, str(ROOT))
    from generation.sampling import derive_seed, slots_plan
    from llm.base import GenerationRequest, Sampling, backend_load

    slots = slots_plan(
        n=args.n, temperatures=args.temperatures, top_ps=[args.top_p], max_tokens=args.max_tokens, two_models=False
    )
    requests = [
        GenerationRequest(
            messages=[{"role": "user", "content": text}],
            sampling=slot.sampling,
            seed=derive_seed(args.seed, index, slot.index),
        )
        for index, text in enumerate(prompts(args.prompts))
        for slot in slots
    ]
    started = time.perf_counter()
    backend = backend_load(backend=args.role, model=args.model)
    start_seconds = time.perf_counter() - started
    backend.generate([GenerationRequest(prompt="Once upon a time", sampling=Sampling(max_tokens=4), seed=0)])
    started = time.perf_counter()
    results = backend.generate(requests)
    seconds = time.perf_counter() - started
    tokens = sum(r.completion_tokens for r in results)
    return {
        "backend": args.role,
        "requests": len(requests),
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "start_seconds": start_seconds,
    }


def backends(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as scratch:
        env = {
            **os.environ,
            "TMPDIR": scratch,
            "VLLM_CACHE_ROOT": str(Path(scratch) / "vllm-cache"),
            "HF_HUB_OFFLINE": "1",
        }
        env.setdefault("OMP_NUM_THREADS", "1")
        for backend in BACKENDS:
            command = [sys.executable, __file__, "--role", backend, *sys.argv[1:]]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{backend} failed:\n{done.stderr[-4000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

    print(
        f"model {Path(args.model).name}: {args.prompts} prompts x n={args.n}, max_tokens {args.max_tokens}, "
        f"temperatures {args.temperatures}, top_p {args.top_p}, seed {args.seed}, "
        f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}\n"
    )
    print("| backend | requests | tokens | seconds | tokens/s | engine start (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['backend']} | {row['requests']} | {row['tokens']} | {row['seconds']:.2f} | "
            f"{row['tokens_per_second']:,.0f} | {row['start_seconds']:.1f} |"
        )
    vllm, transformers = rows
    print(f"\nvllm / transformers: {vllm['tokens_per_second'] / transformers['tokens_per_second']:.1f}x tokens/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(TINY_MODEL))
    parser.add_argument("--prompts", type=int, default=768)
    parser.add_argument("--n", type=int, default=2, help="Candidates per prompt.")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--temperatures", type=lambda v: [float(t) for t in v.split(",")], default=[0.7, 1.1])
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--repeat", type=int, default=2, help="End to end: runs of each program, interleaved.")
    parser.add_argument("--project", default=str(ROOT), help="End to end: the checkout whose generate_pairs runs.")
    parser.add_argument(
        "--freeze", action="store_true", help="End to end: the bare script freezes the gc heap first, as VllmBackend."
    )
    parser.add_argument("--backends", action="store_true", help="vllm vs transformers tokens/s instead.")
    parser.add_argument("--role", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--bare", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare(args.bare)
    elif args.role:
        print(json.dumps(role(args)))
    elif args.backends:
        backends(args)
    else:
        end_to_end(args)


if __name__ == "__main__":
    main()
