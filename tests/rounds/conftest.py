import json
from pathlib import Path

import pytest

from tests.factories import TINY_MODEL
from tests.generation.conftest import write_jsonl
from tests.rounds.helpers import JUDGE, FakeEngines
from training import services as training_services
from training.device import DeviceInfo
from training.trainer import TrainingResult

TRAIN_PROMPTS = [f"Once upon a time, there was a {animal}" for animal in ("cat", "dog", "bird", "fish", "frog", "bee")]
EVAL_PROMPTS = ["Lily went to the park", "Tom had a big red ball", "The sun was shining and"]


@pytest.fixture(scope="session")
def engines_kept(vllm_backend):
    """vLLM engines a test starts beside the session's one: closing one vLLM engine breaks the others in the
    process (see VllmBackend.close), so these are closed with the session's, at the end."""
    started: list = []
    yield started
    for backend in started:
        backend.close()


@pytest.fixture
def data_dir(settings, tmp_path):
    """Exports and tuned models go under DATA_DIR: keep them in the test's own folder."""
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


@pytest.fixture
def prompt_files(tmp_path) -> dict[str, str]:
    return {
        "prompts_file": str(write_jsonl(tmp_path / "train.jsonl", [{"prompt": p} for p in TRAIN_PROMPTS])),
        "eval_prompts_file": str(write_jsonl(tmp_path / "eval.jsonl", [{"prompt": p} for p in EVAL_PROMPTS])),
    }


@pytest.fixture
def settings_for(prompt_files):
    """Series settings on the tiny model's folder (checked by SeriesOptions), labelled by the scripted judge."""

    def make(**overrides) -> dict:
        return {
            "base_model": str(TINY_MODEL),
            **prompt_files,
            "labelled_by": "ai",
            "eval_labelled_by": "ai",
            "judge_model": JUDGE,
            "val_fraction": 0.0,
            "max_tokens": 16,
            **overrides,
        }

    return make


@pytest.fixture
def engines() -> FakeEngines:
    return FakeEngines()


@pytest.fixture
def fake_training(monkeypatch):
    """Stands in for dpo_train: logs a metric and writes a model folder (config.json and weights) to its output,
    which the next steps load and fingerprint. `fail_next` makes the next call crash after writing its config."""
    calls = []

    def fake(config, data, *, resume=False, on_record=None, on_start=None, extra_callbacks=None):
        calls.append({"config": config, "data": data, "resume": resume})
        on_start(DeviceInfo(on_gpu=False, bf16=False, description="CPU (1 threads)"), [])
        if fake.fail_next:
            fake.fail_next = False
            raise RuntimeError("out of memory")
        on_record({"split": "train", "step": 1, "epoch": 1.0, "loss": 0.69, "rewards/accuracies": 0.5})
        output = Path(config.output)
        (output / "config.json").write_text(json.dumps({"model_type": "llama", "trained_on": str(data.source)}))
        (output / "model.safetensors").write_bytes(f"weights from {config.model}".encode())
        return TrainingResult(global_step=1, final_metrics={"eval_rewards/accuracies": 0.75}, model_dir=output)

    fake.fail_next = False
    fake.calls = calls
    monkeypatch.setattr(training_services, "dpo_train", fake)
    return fake
