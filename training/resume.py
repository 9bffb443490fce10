"""May a run write into its output directory: a new run only where no other run left outputs, --resume only
into a checkpoint of the same run (the checkpoint it then continues from)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.errors import InputError
from training.config import RESUMABLE_CHANGES, DPORunConfig
from training.data import PreferenceData
from training.warm_start import SFT_DIR

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
RUN_CONFIG_FILE = "run_config.json"


def checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (trainer_state.json is written last), by step."""
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        match = CHECKPOINT.match(child.name)
        if match and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> tuple[int, Path]:
    found = checkpoints(output_dir)
    if not found:
        raise InputError(
            f"--resume: {output_dir} holds no checkpoint to resume from (checkpoint-N/ with trainer_state.json). "
            "Start the run without --resume."
        )
    return found[-1]


def output_check(output_dir: Path, *, resume: bool, config: DPORunConfig, data: PreferenceData) -> None:
    """Refuse to mix a new run into the outputs of another; --resume needs a checkpoint of the same run."""
    if resume:
        latest_checkpoint(output_dir)
        resume_check(output_dir, config, data)
        return
    earlier = ("adapter_config.json", "config.json", SFT_DIR)
    if checkpoints(output_dir) or any((output_dir / name).exists() for name in earlier):
        raise InputError(
            f"{output_dir} already holds a trained model, checkpoints or an SFT warm start: pass --resume to "
            "continue that run, or choose another --output."
        )


def resume_check(output_dir: Path, config: DPORunConfig, data: PreferenceData) -> None:
    """--resume continues the same training on the same data: only how it runs (threads, logging, saving) may
    change."""
    saved_path = output_dir / RUN_CONFIG_FILE
    if not saved_path.is_file():
        return  # killed before it was written: nothing to compare with
    saved = json.loads(saved_path.read_text())
    trained_on = saved.get("resolved", {}).get("dataset", {})
    for split, file in data.files().items():
        before = (trained_on.get(split) or {}).get("sha256")
        if before and before != file["sha256"]:
            raise InputError(
                f"--resume: the {split} data {file['path']} is not what the run in {output_dir} started on (its "
                f"sha256 was {before[:12]}..., it is {file['sha256'][:12]}... now). Resuming would train the "
                "rest of the run on other pairs: start a new run in another --output, or restore the data."
            )
    changed = [
        f"{'--' + name.replace('_', '-')} {saved.get(name)!r} -> {value!r}"
        for name, value in config.as_dict().items()
        if name not in RESUMABLE_CHANGES and name != "output" and name in saved and saved[name] != value
    ]
    if changed:
        raise InputError(
            f"--resume continues the run in {output_dir} with the settings in its {RUN_CONFIG_FILE}, but these "
            f"differ: {'; '.join(changed)}. Resume with the same settings (e.g. --config {saved_path}), or "
            "start a new run in another --output."
        )
