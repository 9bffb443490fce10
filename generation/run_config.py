"""The full configuration of a generation run: every field documents itself, and the run stores it as JSON."""

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.errors import InputError
from generation.provenance import model_check
from generation.sampling import PAIRS_MODES
from llm.base import BACKENDS, EngineOptions

ENGINE_FIELDS = (
    "revision",
    "dtype",
    "max_model_len",
    "tensor_parallel_size",
    "gpu_memory_utilization",
    "kv_cache_bytes",
    "base_url",
    "concurrency",
    "openai_api",
)


@dataclass
class RunConfig:
    model: str  # a local Hugging Face model folder or a hub id (openai backend: the server's model name)
    prompts_file: str = ""  # JSONL or Parquet of prompts; may be empty with fill_campaign
    file_format: str | None = None  # "jsonl" or "parquet"; default: from the file's extension
    fill_campaign: bool = False  # also generate for prompts already in the campaign that have no comparisons
    model_b: str = ""  # a second model: every comparison then pairs an answer of `model` with one of it
    backend: str = "vllm"  # vllm, openai or transformers
    n: int = 2  # candidates per prompt
    temperatures: list[float] = field(default_factory=lambda: [1.0])  # one value, or one per candidate slot
    top_p: list[float] = field(default_factory=lambda: [1.0])  # one value, or one per candidate slot
    max_tokens: int = 256  # new tokens per candidate at most
    seed: int = 0  # every candidate's seed is derived from it, the prompt and the slot
    pairs: str = "all"  # with n > 2: "all" pairs, or "random" (pairs_per_prompt of them per prompt)
    pairs_per_prompt: int = 1
    max_resamples: int = 3  # how often an empty or duplicate candidate is sampled again before giving up
    batch_size: int = 64  # prompts generated and committed together; a crash loses at most one batch
    # Engine options (see llm.base.EngineOptions); None: the default for the machine.
    revision: str = ""
    dtype: str | None = None
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    kv_cache_bytes: int | None = None
    base_url: str = ""
    concurrency: int = 8
    openai_api: str = "auto"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def two_models(self) -> bool:
        return bool(self.model_b)

    @staticmethod
    def engine_fields(options: EngineOptions) -> dict[str, Any]:
        """The engine fields of a RunConfig, from EngineOptions (e.g. parsed by llm.cli)."""
        return {name: getattr(options, name) for name in ENGINE_FIELDS}

    def engine_options(self) -> EngineOptions:
        options = {name: getattr(self, name) for name in ENGINE_FIELDS}
        if options["gpu_memory_utilization"] is None and self.two_models:
            # Two vLLM engines share the GPU; the default 0.9 would leave none for the second.
            options["gpu_memory_utilization"] = 0.45
        return EngineOptions(**options)

    def engine_options_b(self) -> EngineOptions:
        """Model B: the same engine settings, without model A's revision."""
        options = self.engine_options()
        return EngineOptions(**{**asdict(options), "revision": ""})

    def validate(self) -> None:
        """Refuse settings that cannot work, with a message naming the option and the fix."""
        if self.backend not in BACKENDS:
            raise InputError(f"--backend {self.backend!r}: use one of {', '.join(BACKENDS)}.")
        if self.n < 2:
            raise InputError(f"--n is {self.n}: a comparison needs at least 2 candidates per prompt.")
        for name, values in (("--temperatures", self.temperatures), ("--top-p", self.top_p)):
            if len(values) not in (1, self.n):
                raise InputError(f"{name} has {len(values)} values: give one, or one per candidate (--n {self.n}).")
        if any(not math.isfinite(t) or t < 0 for t in self.temperatures):
            raise InputError(f"--temperatures {self.temperatures}: a temperature is a number, 0 (greedy) or more.")
        if any(not 0 < p <= 1 for p in self.top_p):  # NaN fails this comparison too
            raise InputError(f"--top-p {self.top_p}: top-p lies in (0, 1].")
        greedy = [slot for slot in range(self.n) if self.temperatures[slot % len(self.temperatures)] == 0]
        sides = [slot % 2 if self.two_models else 0 for slot in greedy]
        if len(sides) != len(set(sides)):
            raise InputError(
                f"--temperatures {self.temperatures}: two candidates of one model at temperature 0 are the same "
                "text (greedy decoding), so no pair could be made. Give them different temperatures."
            )
        for name, value in (("--max-tokens", self.max_tokens), ("--batch-size", self.batch_size)):
            if value < 1:
                raise InputError(f"{name} is {value}: it must be at least 1.")
        if self.max_resamples < 0:
            raise InputError(f"--max-resamples is {self.max_resamples}: use 0 or more.")
        if self.pairs not in PAIRS_MODES:
            raise InputError(f"--pairs {self.pairs!r}: use one of {', '.join(PAIRS_MODES)}.")
        if self.pairs_per_prompt < 1:
            raise InputError(f"--pairs-per-prompt is {self.pairs_per_prompt}: it must be at least 1.")
        if not self.prompts_file and not self.fill_campaign:
            raise InputError("Nothing to generate for: give --prompts FILE, or --fill-campaign.")
        if self.backend == "openai":
            if not self.base_url:
                raise InputError("The openai backend needs --base-url, e.g. http://127.0.0.1:8000/v1.")
        else:
            model_check(self.model, what="--model")
            if self.model_b:
                model_check(self.model_b, what="--model-b")
