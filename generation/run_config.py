"""The full configuration of a generation run, declared once: the engine options (llm.base.EngineOptions) and the
run's own. `generate_pairs`' flags and the staff form derive from it; the run stores it as JSON."""

import math
from dataclasses import dataclass, fields
from typing import Any

from core.errors import InputError
from core.options import option
from generation.sampling import PAIRS_MODES
from llm.base import EngineOptions
from llm.provenance import model_check


@dataclass(frozen=True)
class RunConfig(EngineOptions):
    model: str = option("", "A local Hugging Face model folder or a hub id (openai backend: the served model name).")
    model_b: str = option(
        "", "A second model: every comparison pairs an answer of the model with one of it.", label="Second model"
    )
    prompts_file: str = option(
        "", "A JSONL or Parquet file of prompts, one per row.", flag="prompts", label="Prompts file"
    )
    file_format: str | None = option(
        None, "jsonl or parquet (default: from the file's extension).", choices=("jsonl", "parquet"), flag="format"
    )
    fill_campaign: bool = option(False, "Also generate for the campaign's prompts that have no comparisons yet.")
    n: int = option(2, "Candidates per prompt.", label="Candidates per prompt")
    temperatures: list[float] = option(default_factory=lambda: [1.0], help="One value, or one per candidate: 0.7,1.1")
    top_p: list[float] = option(default_factory=lambda: [1.0], help="One value, or one per candidate.", label="Top-p")
    max_tokens: int = option(256, "New tokens per candidate at most.")
    seed: int = option(0, "Every candidate's seed is derived from it, the prompt and the slot.")
    pairs: str = option(
        "all", "With n > 2: all pairs, or random ones (pairs_per_prompt per prompt).", choices=PAIRS_MODES
    )
    pairs_per_prompt: int = option(1, "With pairs random: how many per prompt.")
    max_resamples: int = option(3, "How often an empty or duplicate candidate is sampled again before giving up.")
    batch_size: int = option(
        64,
        "Finished prompts written together (at least every 5 s too); engines without a scheduler of their own "
        "(openai, transformers) also get this many prompts per call.",
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """A run's stored configuration (keys it no longer knows are ignored)."""
        known = cls.option_names()
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def two_models(self) -> bool:
        return bool(self.model_b)

    def engine_options(self) -> EngineOptions:
        options = {f.name: getattr(self, f.name) for f in fields(EngineOptions)}
        if options["gpu_memory_utilization"] is None and self.two_models:
            # Two vLLM engines share the GPU; the default 0.9 would leave none for the second.
            options["gpu_memory_utilization"] = 0.45
        return EngineOptions(**options)

    def engine_options_b(self) -> EngineOptions:
        """Model B: the same engine settings, without model A's revision."""
        return EngineOptions(**{**self.engine_options().as_dict(), "revision": ""})

    def problems(self) -> list[str]:
        """Settings that cannot work, each naming the option and the fix."""
        problems = super().problems()
        if self.n < 2:
            problems.append(f"`n` is {self.n}: a comparison needs at least 2 candidates per prompt.")
        for name, values in (("temperatures", self.temperatures), ("top_p", self.top_p)):
            if len(values) not in (1, self.n):
                problems.append(f"`{name}` has {len(values)} values: give one, or one per candidate (`n` {self.n}).")
        if any(not math.isfinite(t) or t < 0 for t in self.temperatures):
            problems.append(f"`temperatures` {self.temperatures}: a temperature is a number, 0 (greedy) or more.")
        if any(not 0 < p <= 1 for p in self.top_p):  # NaN fails this comparison too
            problems.append(f"`top_p` {self.top_p}: top-p lies in (0, 1].")
        if self.temperatures and len(self.temperatures) in (1, self.n):
            greedy = [slot for slot in range(self.n) if self.temperatures[slot % len(self.temperatures)] == 0]
            sides = [slot % 2 if self.two_models else 0 for slot in greedy]
            if len(sides) != len(set(sides)):
                problems.append(
                    f"`temperatures` {self.temperatures}: two candidates of one model at temperature 0 are the same "
                    "text (greedy decoding), so no pair could be made. Give them different temperatures."
                )
        for name in ("max_tokens", "batch_size", "pairs_per_prompt"):
            if getattr(self, name) < 1:
                problems.append(f"`{name}` is {getattr(self, name)}: it must be at least 1.")
        if self.max_resamples < 0:
            problems.append(f"`max_resamples` is {self.max_resamples}: use 0 or more.")
        if self.pairs not in PAIRS_MODES:
            problems.append(f"`pairs` {self.pairs!r}: use one of {', '.join(PAIRS_MODES)}.")
        if not self.prompts_file and not self.fill_campaign:
            problems.append("Nothing to generate for: give `prompts_file` FILE, or `fill_campaign`.")
        if self.backend == "openai":
            if not self.base_url:
                problems.append("The openai backend needs `base_url`, e.g. http://127.0.0.1:8000/v1.")
        else:
            for name in ("model", "model_b"):
                if name == "model" or getattr(self, name):
                    try:
                        model_check(getattr(self, name), what=f"`{name}`")
                    except InputError as error:
                        problems.append(error.message)
        return problems[:1]  # one at a time, as the command has always answered
