"""Tokens per second of the `vllm` backend against the `transformers` backend: same model, prompts, sampling, seeds.

Each backend runs in its own process (`--role`), as `manage.py generate_pairs` would use it: start the
engine (timed apart), one short warm-up request, then every request at once (PROMPTS prompts x N slots,
per-slot temperatures, one derived seed per request) through `backend.generate()`, timed. Tokens/s is the
generated (completion) tokens over that time. vLLM batches the requests; the transformers fallback runs
them one by one, so that each seed alone fixes its text.

    .venv/bin/python bench/generate.py                                   # 64 prompts x 2 x 64 tokens, tiny model
    .venv/bin/python bench/generate.py --prompts 16 --max-tokens 32      # quicker
    OMP_NUM_THREADS=2 .venv/bin/python bench/generate.py --model PATH    # another model, 2 threads

On a machine without a GPU the vLLM engine gets the CPU settings of ../shared/VLLM_ON_CPU.md.
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
TINY_MODEL = ROOT.parent / "shared" / "models" / "stories260K"
BACKENDS = ("vllm", "transformers")

OPENINGS = ["Once upon a time, there was a", "One day, a little", "Lily went to the park with a", "Tom found a"]
THINGS = ["cat", "dog", "bird", "frog", "bear", "fish", "ball", "tree", "boat", "cake", "star", "duck", "box", "hat"]


def prompts(count: int) -> list[str]:
    return [f"{OPENINGS[i % len(OPENINGS)]} {THINGS[(i // len(OPENINGS)) % len(THINGS)]}" for i in range(count)]


def role(args: argparse.Namespace) -> dict:
    """Run one backend and return its figures (in its own process)."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(TINY_MODEL))
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=2, help="Candidates per prompt.")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperatures", type=lambda v: [float(t) for t in v.split(",")], default=[0.7, 1.1])
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--role", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        print(json.dumps(role(args)))
        return

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


if __name__ == "__main__":
    main()
