"""The settings every round of a series shares, declared once: `round start`'s flags, the staff form and the API
derive from `SeriesOptions`, and each step turns them into the options of the service it runs (generation's
RunConfig, the export's options, training's DPORunConfig), whose own rules check them too.

The series stores them as `as_dict()`; `from_stored` reads them back without checking the files again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from core.errors import InputError
from core.options import Options, option
from exports.options import ExportOptions
from generation.prompts import prompts_read_path
from generation.run_config import RunConfig
from llm.base import EngineOptions
from llm.provenance import model_check
from training.config import DPORunConfig

PEOPLE, AI, BOTH = "people", "ai", "both"
LABELLERS = (PEOPLE, AI, BOTH)
# Whose verdicts an export counts, for who labelled (exports.options.JUDGES): with both, the judge's verdict
# counts only on pairs no person judged.
EXPORT_JUDGES = {PEOPLE: "humans", AI: "ai", BOTH: "both"}
ENGINES = ("vllm", "transformers")  # local engines: a round's tuned model is a folder on this machine


@dataclass(frozen=True)
class SeriesOptions(Options):
    options_heading: ClassVar[str] = "Invalid round settings"

    # What to tune and on what
    base_model: str = option("", "The model round 1 samples from: a local Hugging Face folder or a hub id.")
    prompts_file: str = option(
        "", "Training prompts (JSONL or Parquet), sampled again every round.", flag="prompts", label="Prompts file"
    )
    eval_prompts_file: str = option(
        "",
        "Held-out prompts on which each tuned model meets its round's policy, blind.",
        flag="eval_prompts",
        label="Evaluation prompts file",
    )
    backend: str = option("vllm", "The engine that samples and judges: vllm or transformers.", choices=ENGINES)
    kv_cache_mib: int | None = option(None, "vLLM KV-cache size in MiB (CPU default 64; more lets it batch more).")
    threads: int | None = option(None, "CPU threads for the engines and for training (default: torch's choice).")

    # Sampling the pairs
    n: int = option(2, "Candidates per prompt.", label="Candidates per prompt")
    temperatures: list[float] = option(default_factory=lambda: [1.0], help="One value, or one per candidate: 0.7,1.1")
    max_tokens: int = option(256, "New tokens per candidate at most.")
    seed: int = option(0, "Seeds the candidates, the export's split and training.")

    # Who labels
    labelled_by: str = option(
        PEOPLE,
        "Who labels a round's pairs: people, ai (the AI judge), or both (the judge fills in what people left).",
        choices=LABELLERS,
    )
    judge_model: str = option("", "The AI judge: a local model folder or a hub id (needed for ai and both).")
    judge_template: str = option("", "A judging prompt file on the server (default: the built-in one).")
    overlap: int = option(1, "People per pair, in the rounds' campaigns.", label="People per pair")
    guidelines: str = option("", "Shown to people beside every pair, and to the judge.")

    # Export and training
    val_fraction: float = option(0.1, "Expected share of prompts held out for validation during training, in [0, 1).")
    keep_truncated: bool = option(
        False, "Also train on pairs with a response cut off at max_tokens (left out by default: they never ended)."
    )
    n_epochs: int = option(2, "Passes over a round's preferences.")
    beta: float = option(0.1, "How far the model may drift from its policy: higher keeps it closer. In (0, 2].")
    batch_size: int = option(8, "Preference pairs per step.")
    learning_rate: float | None = option(None, "Peak learning rate (default: training's, 1e-6).")
    max_length: int = option(1024, "Tokens per prompt + response in training.")
    max_steps: int | None = option(None, "Stop each training after this many steps (smoke runs).")

    # Evaluation: the tuned model against the round's policy
    eval_labelled_by: str = option(
        PEOPLE, "Who labels the evaluation: people, ai, or both.", choices=LABELLERS, label="Evaluation labelled by"
    )
    eval_temperature: float = option(0.7, "Both models' sampling temperature on the evaluation prompts.")
    eval_max_tokens: int | None = option(None, "New tokens per evaluation answer (default: max_tokens).")

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> SeriesOptions:
        """A series' stored settings, as they were checked when it was created (keys no longer known ignored)."""
        known = cls.option_names()
        return cls(**{key: value for key, value in data.items() if key in known})

    @property
    def uses_judge(self) -> bool:
        return bool({AI, BOTH} & {self.labelled_by, self.eval_labelled_by})

    def engine_options(self) -> EngineOptions:
        """How the round's engines start (sampling, evaluation and the judge)."""
        return EngineOptions(backend=self.backend, kv_cache_mib=self.kv_cache_mib, threads=self.threads)

    def generation_config(self, *, model: str) -> RunConfig:
        """The generation run of a round whose policy is `model`."""
        return RunConfig(
            **self.engine_options().as_dict(),
            model=model,
            prompts_file=self.prompts_file,
            n=self.n,
            temperatures=list(self.temperatures),
            max_tokens=self.max_tokens,
            seed=self.seed,
        )

    def eval_generation_config(self, *, tuned: str, policy: str) -> RunConfig:
        """The blind evaluation: one answer of the tuned model and one of its policy per held-out prompt."""
        return RunConfig(
            **self.engine_options().as_dict(),
            model=tuned,
            model_b=policy,
            prompts_file=self.eval_prompts_file,
            n=2,
            temperatures=[self.eval_temperature],
            max_tokens=self.eval_max_tokens or self.max_tokens,
            seed=self.seed,
        )

    def export_options(self) -> dict[str, Any]:
        return {
            "judges": EXPORT_JUDGES[self.labelled_by],
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "keep_truncated": self.keep_truncated,
        }

    def training_config(self, *, data: str, model: str, output: str) -> DPORunConfig:
        return DPORunConfig(
            data=data,
            model=model,
            output=output,
            n_epochs=self.n_epochs,
            beta=self.beta,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            max_length=self.max_length,
            max_steps=self.max_steps,
            seed=self.seed,
            num_threads=self.threads,
        )

    def problems(self) -> list[str]:
        """Everything wrong at once; the generation, export and training rules are theirs, on the same names."""
        problems: list[str] = []
        if self.backend not in ENGINES:
            problems.append(f"`backend` {self.backend!r}: use one of {', '.join(ENGINES)}.")
        try:
            model_check(self.base_model, what="`base_model`")
        except InputError as error:
            problems.append(error.message)
        hashes = {}
        for name in ("prompts_file", "eval_prompts_file"):
            path = getattr(self, name)
            if not path:
                problems.append(f"`{name}` is missing: give a JSONL or Parquet file of prompts.")
                continue
            try:
                hashes[name] = {row.content_hash for row in prompts_read_path(path).rows}
            except InputError as error:
                problems.append(f"`{name}`: {error.message}")
        shared = hashes.get("prompts_file", set()) & hashes.get("eval_prompts_file", set())
        if shared:
            problems.append(
                f"`eval_prompts_file` shares {len(shared)} prompt(s) with `prompts_file`: evaluation prompts must be "
                "held out from training, or the win rate measures memory."
            )
        if self.uses_judge:
            if not self.judge_model:
                problems.append("`judge_model` is missing: labelling by ai or both needs the AI judge's model.")
            else:
                try:
                    model_check(self.judge_model, what="`judge_model`")
                except InputError as error:
                    problems.append(error.message)
        if self.judge_template:
            from quality.judging import judge_template_load  # reads the annotation models

            try:
                judge_template_load(self.judge_template)
            except InputError as error:
                problems.append(f"`judge_template`: {error.message}")
        if self.overlap < 1:
            problems.append(f"`overlap` is {self.overlap}: each pair needs at least 1 person.")
        if not (math.isfinite(self.eval_temperature) and self.eval_temperature >= 0):
            problems.append(f"`eval_temperature` is {self.eval_temperature}: use 0 (greedy) or more.")
        if self.eval_max_tokens is not None and self.eval_max_tokens < 1:
            problems.append(f"`eval_max_tokens` is {self.eval_max_tokens}: it must be at least 1.")
        # The services' own rules on the same names: sampling, the split, the hyperparameters (the models and
        # the prompts files were checked above).
        sampling = RunConfig(model="-", prompts_file="-", n=self.n, temperatures=list(self.temperatures),
                             max_tokens=self.max_tokens)  # fmt: skip
        problems += sampling.problems()
        problems += ExportOptions(val_fraction=self.val_fraction, seed=self.seed).problems()
        training = self.training_config(data="-", model=self.base_model or "-", output="-")
        problems += training.problems()
        return problems
