"""A TrainerCallback that keeps every logged metric with the run and stops a diverging run.

At each logging step (and each evaluation) it appends one JSON line to `output/metrics.jsonl` and hands the
record to `on_record` (which writes it to the TrainingRun row); only the main process writes. A NaN or inf
loss stops the run on every process with `TrainingDivergedError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from core.errors import StudioError

# The train summary Trainer logs once at the end; it is a final metric, not a point on the curves.
SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos")
WATCHED = ("loss", "eval_loss")


class TrainingDivergedError(StudioError):
    """The loss became NaN or infinite: the run cannot recover."""


def metric_record(logs: dict[str, Any], *, step: int, epoch: float | None) -> dict[str, Any]:
    """One metrics.jsonl line: split ('train' or 'eval'), step, epoch and the metrics under TRL's names."""
    split = "eval" if any(key.startswith("eval_") for key in logs) else "train"
    values = {key.removeprefix("eval_"): _plain(value) for key, value in logs.items() if key != "epoch"}
    return {"split": split, "step": step, "epoch": None if epoch is None else round(epoch, 4), **values}


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN; keep what happened readable
    return value


class MetricsCallback(TrainerCallback):
    def __init__(self, metrics_path: Path, on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.metrics_path = metrics_path
        self.on_record = on_record

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs) -> None:
        if not logs:
            return
        diverged = [key for key in WATCHED if isinstance(logs.get(key), float) and not math.isfinite(logs[key])]
        if any(key in logs for key in SUMMARY_KEYS):
            return
        record = metric_record(logs, step=state.global_step, epoch=state.epoch)
        if state.is_world_process_zero:
            with self.metrics_path.open("a", encoding="utf-8") as stream:
                stream.write(json.dumps(record) + "\n")
            if self.on_record is not None:
                self.on_record(record)
        if diverged:
            key = diverged[0]
            raise TrainingDivergedError(
                f"The {key.replace('_', ' ')} became {logs[key]} at step {state.global_step}: training stopped. "
                "Lower the learning rate (or --learning-rate-multiplier), check the data, or use --fp32."
            )


def metrics_truncate(metrics_path: Path, *, after_step: int) -> None:
    """Drop the records a resumed run will write again (those past the checkpoint it resumes from)."""
    if not metrics_path.is_file():
        return
    kept = [line for line in metrics_path.read_text().splitlines() if line and json.loads(line)["step"] <= after_step]
    metrics_path.write_text("".join(line + "\n" for line in kept))
