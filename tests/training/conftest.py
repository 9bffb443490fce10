from pathlib import Path

import pytest

from tests.factories import TINY_MODEL
from tests.training.stories import preference_rows, sample_stories, write_export
from training import services
from training.device import DeviceInfo
from training.trainer import TrainingResult


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    # Two torch threads on two shared cores can be 10x slower than one while another process is busy.
    monkeypatch.setenv("PREFSTUDIO_TORCH_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def story_samples():
    """The base model's own stories (seed 0): the raw material of the preference set."""
    import torch

    torch.set_num_threads(1)
    return sample_stories(TINY_MODEL, per_prompt=96, seed=0)


@pytest.fixture(scope="session")
def story_export(story_samples, tmp_path_factory):
    """An export directory: stories with the word chosen over stories without it, 4 in 5 pairs for training."""
    rows = preference_rows(story_samples)
    train = [row for i, row in enumerate(rows) if i % 5]
    validation = [row for i, row in enumerate(rows) if not i % 5]
    return write_export(tmp_path_factory.mktemp("export"), train, validation)


@pytest.fixture
def fake_training(monkeypatch):
    """Stands in for dpo_train: records what it was given and logs two metric records."""
    calls = []

    def fake(config, data, *, resume=False, on_record=None, on_start=None, extra_callbacks=None):
        calls.append({"config": config, "data": data, "resume": resume})
        on_start(DeviceInfo(on_gpu=False, bf16=False, description="CPU (1 threads)"), [])
        on_record({"split": "train", "step": 1, "epoch": 0.5, "loss": 0.69, "rewards/accuracies": 0.0})
        on_record({"split": "eval", "step": 2, "epoch": 1.0, "loss": 0.5, "rewards/accuracies": 0.75})
        metrics = {"eval_rewards/accuracies": 0.75}
        return TrainingResult(global_step=2, final_metrics=metrics, model_dir=Path(config.output))

    monkeypatch.setattr(services, "dpo_train", fake)
    return calls
