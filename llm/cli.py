"""Command-line options shared by the commands that start a model (generate_pairs, judge_pairs)."""

import os
from typing import Any

from django.core.management.base import CommandParser

from llm.base import BACKENDS, EngineOptions


def add_engine_arguments(parser: CommandParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="vllm")
    parser.add_argument("--revision", default="", help="Hub revision of --model (recorded as provenance).")
    engine = parser.add_argument_group("engine (default: the engine's on a GPU, measured settings on a CPU)")
    engine.add_argument("--dtype")
    engine.add_argument("--max-model-len", type=int)
    engine.add_argument("--tensor-parallel-size", type=int, default=1)
    engine.add_argument("--gpu-memory-utilization", type=float)
    engine.add_argument("--kv-cache-mib", type=int, help="vLLM KV-cache size (CPU default 64).")
    engine.add_argument("--threads", type=int, help="CPU threads for torch (sets OMP_NUM_THREADS).")
    engine.add_argument("--base-url", default="", help="openai: the server, e.g. http://127.0.0.1:8000/v1.")
    engine.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight.")
    engine.add_argument("--openai-api", choices=["auto", "chat", "completions"], default="auto")


def engine_options_from(options: dict[str, Any]) -> EngineOptions:
    """EngineOptions from parsed command options; sets OMP_NUM_THREADS when --threads is given."""
    if options.get("threads"):
        os.environ["OMP_NUM_THREADS"] = str(options["threads"])
    return EngineOptions(
        revision=options["revision"],
        dtype=options["dtype"],
        max_model_len=options["max_model_len"],
        tensor_parallel_size=options["tensor_parallel_size"],
        gpu_memory_utilization=options["gpu_memory_utilization"],
        kv_cache_bytes=options["kv_cache_mib"] << 20 if options["kv_cache_mib"] else None,
        base_url=options["base_url"],
        concurrency=options["concurrency"],
        openai_api=options["openai_api"],
    )
