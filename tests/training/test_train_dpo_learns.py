"""The test that DPO really moved the model: trained on its own stories where those containing a word are
chosen, the tiny real model writes that word significantly more often (same prompts, same seeds)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from core.models import JobStatus
from tests.factories import TINY_MODEL
from tests.training.stories import WORD, has_word, sample_stories, two_proportion_z, word_rate
from training.models import TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def tensors(directory):
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def test_train_dpo_makes_the_preferred_word_significantly_more_frequent(story_export, tmp_path):
    out = tmp_path / "run"
    stdout = StringIO()
    call_command(
        "train_dpo",
        data=str(story_export),
        model=str(TINY_MODEL),
        output=str(out),
        n_epochs=3,
        learning_rate=5e-4,
        beta=0.1,
        batch_size=8,
        logging_steps=1,
        stdout=stdout,
    )
    run = TrainingRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert f"Training run {run.pk} succeeded after {run.global_step} steps" in stdout.getvalue()

    # (a) the weights moved
    base, trained = tensors(TINY_MODEL), tensors(out)
    assert base.keys() == trained.keys()
    moved = [name for name in base if not base[name].equal(trained[name])]
    assert len(moved) >= 0.9 * len(base), f"only {len(moved)} of {len(base)} tensors changed"

    # (b) the implicit reward ranks held-out pairs right more often than chance
    assert run.final_metrics["eval_rewards/accuracies"] > 0.5
    assert run.final_metrics["eval_rewards/margins"] > 0

    # (c) samples on the same prompts and seeds (not the training seeds) show the word significantly more often
    before = sample_stories(TINY_MODEL, per_prompt=64, seed=1)
    after = sample_stories(out, per_prompt=64, seed=1)
    hits_before = sum(has_word(story) for _, story in before)
    hits_after = sum(has_word(story) for _, story in after)
    z, p_value = two_proportion_z(hits_before, len(before), hits_after, len(after))
    print(f"'{WORD}' in {word_rate(before):.0%} of base samples, {word_rate(after):.0%} after DPO (z={z:.1f})")
    assert word_rate(after) > word_rate(before) + 0.15
    assert p_value < 1e-4

    # The run is kept: per-step metrics in the database and in metrics.jsonl, the config beside the model
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_steps = [line["step"] for line in lines if line["split"] == "train"]
    assert train_steps == list(range(1, run.global_step + 1))
    assert run.metrics.filter(split="train").count() == run.global_step
    assert run.metrics.filter(split="eval").exists()
    assert {"loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "logps/chosen"} <= set(lines[0])
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["beta"] == 0.1 and saved["resolved"]["learning_rate"] == 5e-4
    assert saved["resolved"]["dataset"]["train"]["sha256"] == run.dataset_sha256
