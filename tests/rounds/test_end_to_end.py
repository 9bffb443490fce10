"""One round from start to done on CPU with the tiny story model: real vLLM generation, the real judging pipeline,
a real export, real DPO (two steps), a real evaluation generation with the tuned model in its own vLLM engine.

The judge's *model* is the scripted one of tests/rounds/helpers.py (it prefers the story that mentions the park,
then the longer one) behind the real `judge_pairs_run`: the judging prompt rendered from the built-in template,
both orders, answers read and combined by quality.judging, verdicts recorded as AI judgments. stories260K cannot
be the judge: it writes stories and never a digit (every answer unparseable, so there would be nothing to export).
"""

from pathlib import Path

import pytest

from annotator.models import Candidate, Comparison, JudgeSource, Judgment
from core.models import JobStatus
from exports.selectors import dataset_export_file_check
from quality.judging import judge_template_load
from rounds.engines import KeptOpen, engines_default
from rounds.models import RoundStep, Step
from rounds.options import SeriesOptions
from rounds.selectors import round_next, round_steps
from rounds.services import round_run, series_start
from tests.factories import TINY_MODEL
from tests.generation.conftest import write_jsonl
from tests.rounds.helpers import JUDGE, ScriptedJudge

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

TRAIN = [
    "Once upon a time, there was a cat",
    "Once upon a time, there was a dog",
    "One day, a little bird",
    "The sun was shining and",
    "Tom had a big red ball",
    "Sam and his mom went",
]
HELD_OUT = ["Lily went to the park", "There was a big tree", "Mia had a new doll", "It was a cold day"]


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_a_round_runs_from_start_to_done_on_the_tiny_model(
    vllm_backend, engines_kept, engine_env, tmp_path, settings, monkeypatch
):
    settings.DATA_DIR = tmp_path / "data"
    monkeypatch.setenv("PREFSTUDIO_TORCH_THREADS", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    options = SeriesOptions.from_mapping(
        {
            "base_model": str(TINY_MODEL),
            "prompts_file": str(write_jsonl(tmp_path / "train.jsonl", [{"prompt": p} for p in TRAIN])),
            "eval_prompts_file": str(write_jsonl(tmp_path / "eval.jsonl", [{"prompt": p} for p in HELD_OUT])),
            "labelled_by": "ai",
            "eval_labelled_by": "ai",
            "judge_model": JUDGE,
            "temperatures": "0.7,1.1",
            "max_tokens": 32,
            "seed": 13,
            "val_fraction": 0.0,
            "n_epochs": 1,
            "batch_size": 2,
            "learning_rate": 5e-4,
            "max_length": 128,
            "max_steps": 2,
            "keep_truncated": True,  # the story model never ends a story: every response stops at max_tokens
        }
    )
    judge = ScriptedJudge()
    loaded = []

    def engines(model, engine_options):
        loaded.append(model)
        if model == str(TINY_MODEL):
            return KeptOpen(vllm_backend)  # the session's engine on the base model
        if model == JUDGE:
            return judge
        tuned = engines_default(model, engine_options)  # the tuned model: its own vLLM engine
        engines_kept.append(tuned)
        return KeptOpen(tuned)

    round = round_run(round=series_start(name="Tiny stories", options=options), engines=engines)

    assert round.step == Step.DONE, round_next(round=round)
    assert set(round.steps.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}
    assert RoundStep.objects.filter(round=round).count() == 6
    # Generation: real vLLM samples of the base model, one pair per prompt
    pairs = Comparison.objects.filter(prompt__campaign=round.campaign)
    assert pairs.count() >= 4
    candidates = Candidate.objects.filter(prompt__campaign=round.campaign)
    assert set(candidates.values_list("backend", "model_name")) == {("vllm", str(TINY_MODEL))}
    # Labels: the judging pipeline asked both orders of every pair and recorded one AI verdict each
    verdicts = Judgment.objects.filter(comparison__in=pairs, source=JudgeSource.AI)
    assert verdicts.count() == pairs.count()
    assert all(len(v.details["orders"]) == 2 and v.details["consistent"] for v in verdicts)
    # Export and training: real files, real DPO steps that moved the weights
    assert (
        round.export.stats["rows"]["train"] >= 1 and dataset_export_file_check(export=round.export, name="train").intact
    )
    run = round.training_run
    assert run.status == JobStatus.SUCCEEDED and run.global_step == 2 and "train_loss" in run.final_metrics
    assert round.tuned_model == run.output_dir and round.tuned_revision.startswith("sha256:")
    base, tuned = tensors(TINY_MODEL / "model.safetensors"), tensors(Path(round.tuned_model) / "model.safetensors")
    assert any(not base[name].equal(tuned[name]) for name in base)
    # Evaluation: the tuned model's own engine against the base, blind, and the report's win rate
    assert loaded == [str(TINY_MODEL), JUDGE, round.tuned_model, str(TINY_MODEL), JUDGE]
    eval_candidates = Candidate.objects.filter(prompt__campaign=round.eval_campaign)
    assert set(eval_candidates.values_list("model_name", flat=True)) == {round.tuned_model, str(TINY_MODEL)}
    assert round.eval_pairs == Comparison.objects.filter(prompt__campaign=round.eval_campaign).count() >= 3
    assert round.win_rate is not None and 0 <= round.win_rate_low <= round.win_rate <= round.win_rate_high <= 1


def test_with_the_tiny_story_model_as_the_judge_the_export_step_fails_and_says_why(
    vllm_backend, engine_env, tmp_path, settings
):
    """The real judge on a real engine: stories260K answers every judging prompt with a story, never 1 or 2, so
    each pair is stored without a verdict, and the round stops at the export with the export's own reason. (With
    the built-in template vLLM holds the judge to 1, 2 or 0; a custom template leaves it free, as here.)"""
    settings.DATA_DIR = tmp_path / "data"
    template = tmp_path / "judge.txt"
    template.write_text(judge_template_load().text.replace("Answer:", "Your answer:"))
    options = SeriesOptions.from_mapping(
        {
            "base_model": str(TINY_MODEL),
            "prompts_file": str(write_jsonl(tmp_path / "train.jsonl", [{"prompt": p} for p in TRAIN[:3]])),
            "eval_prompts_file": str(write_jsonl(tmp_path / "eval.jsonl", [{"prompt": p} for p in HELD_OUT[:2]])),
            "labelled_by": "ai",
            "judge_model": str(TINY_MODEL),
            "judge_template": str(template),
            "temperatures": "0.7,1.1",
            "max_tokens": 24,
            "keep_truncated": True,
        }
    )
    round = series_start(name="Tiny judge", options=options)
    with pytest.raises(Exception, match="Nothing to export"):
        round_run(round=round, engines=lambda model, engine_options: KeptOpen(vllm_backend))

    round.refresh_from_db()
    label, export = RoundStep.objects.filter(round=round, step__in=[Step.LABEL, Step.EXPORT]).order_by("id")
    assert label.status == JobStatus.SUCCEEDED and label.result["unparseable_pairs"] == label.result["judged"] > 0
    assert Judgment.objects.filter(comparison__prompt__campaign=round.campaign, verdict="skip").count() == 3
    assert round.step == Step.EXPORT and export.status == JobStatus.FAILED
    assert export.error.startswith("Nothing to export from campaign 'Tiny judge · round 1' with judges=ai: of its 3")
    assert round_next(round=round).startswith(f"Export preferences failed: {export.error}")
    [_, label_view, *_] = round_steps(round=round)
    assert label_view.detail == (
        "3 of 3 pairs judged by the AI judge. 3 of 3 pair(s) got no verdict: the judge's answers could not be read "
        "(its raw answers are on the campaign's quality page)."
    )
