"""One whole round on a real chat model (SmolLM2-135M-Instruct), through the product's own commands and API.

Used by the proof test (tests/rounds/test_chat_model_round.py) and by the benchmark (bench/round.py): start a
series with `manage.py round start`, advance it with `manage.py round advance --all` in its own process (as a
user or the worker runs it: one vLLM per process), and label its pairs, then its blind evaluation, through the
annotation API as an annotator who follows one visible rule.

The rule: the annotator prefers the answer written as one paragraph (no line break) over one that spans
several lines; when both or neither are, a tie. With a system message asking for one or two short sentences,
about half of SmolLM2's answers run over several lines (measured on these prompts: 48% at 160 new tokens), so
about half of the pairs are decisive, and the property is visible to anyone looking at the page.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HUMAN_PREFERENCES = ROOT.parent / "shared" / "data" / "human-preferences.jsonl"
SYSTEM = "Answer in one or two short sentences."

# Measured on this machine (2 cores): sampling, DPO and the evaluation fit in about 10 minutes with these.
TRAIN_PROMPTS, HELD_OUT = 48, 44
SETTINGS = {
    "n": 4,
    "temperatures": "0.8",
    "max_tokens": 160,
    "seed": 7,
    "val_fraction": 0.0,
    "n_epochs": 2,
    "beta": 0.1,
    "batch_size": 4,
    "learning_rate": 3e-5,
    "max_length": 224,
    "eval_temperature": 0.8,
    "kv_cache_mib": 512,
    "threads": 2,
}


def one_paragraph(text: str) -> bool:
    return "\n" not in text.strip()


def choice_for(left: str, right: str) -> str:
    """The annotator's rule, in screen terms."""
    if one_paragraph(left) != one_paragraph(right):
        return "left" if one_paragraph(left) else "right"
    return "tie"


def prompts_write(folder: Path, *, train: int, held_out: int) -> tuple[Path, Path]:
    """Single-turn, non-code prompts from the real preference data, with the system message; the first `train`
    for the round, the next `held_out` for its evaluation."""
    rows = [json.loads(line) for line in HUMAN_PREFERENCES.read_text().splitlines()]
    prompts = list(
        dict.fromkeys(  # the data holds some prompts twice (judged against other answers): each once here
            r["prompt"][0]["content"]
            for r in rows
            if not r["multi_turn"] and not r["is_code"] and len(r["prompt"][0]["content"]) < 300
        )
    )
    assert len(prompts) >= train + held_out, "not enough short single-turn prompts in the data"
    paths = []
    for name, chosen in (("train", prompts[:train]), ("eval", prompts[train : train + held_out])):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"prompt": p, "system": SYSTEM}) + "\n" for p in chosen))
        paths.append(path)
    return paths[0], paths[1]


def label_all(client: Any, campaign_id: int) -> dict[str, int]:
    """Judge every pair the API hands out, by the rule; return the counts of each choice."""
    counts = {"left": 0, "right": 0, "tie": 0}
    while True:
        response = client.get(f"/api/campaigns/{campaign_id}/next/")
        if response.status_code == 204:
            return counts
        assert response.status_code == 200, response.content
        pair = response.json()
        choice = choice_for(pair["left"]["text"], pair["right"]["text"])
        done = client.post(
            f"/api/comparisons/{pair['id']}/judgments/", {"choice": choice}, content_type="application/json"
        )
        assert done.status_code == 201, done.content
        counts[choice] += 1


@dataclass
class Manage:
    """`manage.py` in its own process, on the database and data folder the caller uses."""

    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def __call__(self, *args: str, label: str) -> str:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        self.timings[label] = time.perf_counter() - started
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        return done.stdout


def subprocess_env(*, database_url: str, data_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = {**(base or os.environ), "DATABASE_URL": database_url, "PREFSTUDIO_DATA_DIR": str(data_dir)}
    env.update(OMP_NUM_THREADS=str(SETTINGS["threads"]), HF_HUB_OFFLINE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0")
    return env


def series_settings(*, model: Path, train: Path, held_out: Path) -> list[str]:
    flags = ["--base-model", str(model), "--prompts", str(train), "--eval-prompts", str(held_out)]
    for name, value in SETTINGS.items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags
