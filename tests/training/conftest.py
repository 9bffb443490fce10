import pytest

from tests.factories import TINY_MODEL
from tests.training.stories import preference_rows, sample_stories, write_export


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
