"""training/cpu_logps.py: the CPU scoring from full logits replaces TRL's forward only on the TRL it was written
for. (That it logs the same metrics as TRL's own path is checked on real runs, in test_train_dpo_runs.py.)"""

import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from training import cpu_logps
from training.config import DPORunConfig

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements-base.txt"


class TinyModel:
    """What score_from_full_logits reads of a model: its output layer's size, and TRL's patched forward."""

    def get_output_embeddings(self):
        return SimpleNamespace(weight=SimpleNamespace(shape=(512, 8)))

    def forward(self, *args, **kwargs):
        return "TRL's forward"


@pytest.fixture
def trainer():
    return SimpleNamespace(model=TinyModel(), ref_model=TinyModel())


@pytest.fixture(autouse=True)
def _warnings_not_yet_given():
    cpu_logps._warn_other_trl.cache_clear()
    yield
    cpu_logps._warn_other_trl.cache_clear()


def test_on_another_trl_version_the_patch_is_not_applied_trls_forward_stays_and_one_warning_says_so(
    trainer, monkeypatch, caplog
):
    import trl

    monkeypatch.setattr(trl, "__version__", "1.17.0")
    config = DPORunConfig(batch_size=2, max_length=16)
    with caplog.at_level(logging.WARNING, logger=cpu_logps.__name__):
        assert cpu_logps.score_from_full_logits(trainer, config) is False
        assert cpu_logps.score_from_full_logits(trainer, config) is False
    for model in (trainer.model, trainer.ref_model):
        assert "forward" not in vars(model) and model.forward() == "TRL's forward"
    [warning] = caplog.records
    assert "TRL 1.17.0 is installed" in warning.getMessage() and "written for TRL 1.16.0" in warning.getMessage()


def test_on_the_trl_it_was_written_for_the_patch_replaces_the_forward_of_policy_and_reference(trainer, caplog):
    import trl

    assert trl.__version__ == cpu_logps.TRL_VERSION
    assert cpu_logps.score_from_full_logits(trainer, DPORunConfig(batch_size=2, max_length=16)) is True
    assert all("forward" in vars(model) for model in (trainer.model, trainer.ref_model))
    assert not caplog.records


def test_batches_whose_logits_do_not_fit_keep_trls_forward(trainer, monkeypatch):
    monkeypatch.setattr(cpu_logps, "PLAIN_LOGITS_MAX_BYTES", 0)
    assert cpu_logps.score_from_full_logits(trainer, DPORunConfig(batch_size=2, max_length=16)) is False
    assert "forward" not in vars(trainer.model)


def test_the_trl_the_patch_was_written_for_is_the_one_requirements_pin():
    pinned = re.search(r"^trl==(\S+)", REQUIREMENTS.read_text(), flags=re.MULTILINE)
    assert pinned and pinned.group(1) == cpu_logps.TRL_VERSION, "review plain_lm_head against the new TRL"
