"""The round's state machine with fake engines and a fake trainer: each step through its service, what the round
links, people / the AI judge / both, failures and retries, the next round's policy."""

from pathlib import Path

import pytest
from django_tasks import default_task_backend

from annotator.models import Candidate, Comparison, JudgeSource, Judgment, Verdict
from core.errors import ConflictError, InputError
from core.models import JobStatus
from exports.selectors import dataset_export_file_check
from generation.models import GenerationRun
from llm.provenance import model_revision_of
from quality.report import campaign_quality_report
from rounds.models import Round, RoundStep, Step
from rounds.options import SeriesOptions
from rounds.selectors import round_label_progress, round_next, round_steps
from rounds.services import (
    round_advance,
    round_run,
    round_start,
    round_step_create,
    round_step_execute,
    series_run,
    series_start,
)
from tests.exports.helpers import judge_all, read_rows
from tests.factories import TINY_MODEL, make_user
from tests.rounds.conftest import TRAIN_PROMPTS
from tests.rounds.helpers import JUDGE, FakeEngines

pytestmark = pytest.mark.django_db


def start(settings_for, name="Stories", **overrides) -> Round:
    return series_start(name=name, options=SeriesOptions.from_mapping(settings_for(**overrides)))


@pytest.fixture
def dummy_tasks(settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    default_task_backend.clear()
    return default_task_backend


def test_a_round_labelled_by_the_ai_judge_runs_from_start_to_done_and_links_what_each_step_made(
    settings_for, engines, fake_training, data_dir
):
    round = round_run(round=start(settings_for), engines=engines)

    assert round.step == Step.DONE and round.finished_at is not None
    assert round.policy_model == str(TINY_MODEL) and round.policy_revision == model_revision_of(str(TINY_MODEL))
    # generate: the policy's pairs, one per training prompt, in the round's campaign
    assert round.generation_run.status == JobStatus.SUCCEEDED
    pairs = Comparison.objects.filter(prompt__campaign=round.campaign)
    assert pairs.count() == len(TRAIN_PROMPTS)
    assert set(Candidate.objects.filter(prompt__campaign=round.campaign).values_list("model_name", flat=True)) == {
        str(TINY_MODEL)
    }
    # label: one AI verdict per pair, none from people
    assert Judgment.objects.filter(comparison__in=pairs, source=JudgeSource.AI).count() == pairs.count()
    # export: the judge's verdicts, files with their checksums, still intact
    assert round.export.status == JobStatus.SUCCEEDED and round.export.options["judges"] == "ai"
    assert dataset_export_file_check(export=round.export, name="train").intact
    # train: from the policy on that export; its output is the tuned model, fingerprinted
    assert round.training_run.status == JobStatus.SUCCEEDED and round.training_run.export_id == round.export_id
    assert fake_training.calls[0]["config"].model == str(TINY_MODEL)
    assert round.tuned_model == round.training_run.output_dir
    assert Path(round.tuned_model).is_relative_to(data_dir / "rounds")
    assert round.tuned_revision == model_revision_of(round.tuned_model)
    # evaluation: one answer of each model per held-out prompt, judged, and the report's win rate
    eval_pairs = Comparison.objects.filter(prompt__campaign=round.eval_campaign).select_related("candidate_a")
    assert eval_pairs.count() == 3
    models = {(p.candidate_a.model_name, p.candidate_b.model_name) for p in eval_pairs}
    assert models <= {(round.tuned_model, round.policy_model), (round.policy_model, round.tuned_model)}
    [row] = campaign_quality_report(campaign=round.eval_campaign)["model_win_rates"]
    assert (row["model"], row["opponent"]) == (round.tuned_model, round.policy_model)
    assert (round.win_rate, round.win_rate_low, round.win_rate_high) == (row["win_rate"], *row["ci95"])
    assert round.eval_pairs == 3
    # every step one succeeded job, in order
    steps = list(RoundStep.objects.filter(round=round).order_by("id").values_list("step", "status"))
    assert steps == [(step, JobStatus.SUCCEEDED) for step in Step if step != Step.DONE]
    assert engines.models == [str(TINY_MODEL), JUDGE, round.tuned_model, str(TINY_MODEL), JUDGE]
    assert round_next(round=round) == "Done. Start round 2: it samples from this round's tuned model."


def test_round_two_samples_from_round_one_tuned_model_and_is_evaluated_against_it(
    settings_for, engines, fake_training, data_dir
):
    first = start(settings_for)
    one, two = series_run(series=first.series, rounds=2, engines=engines)

    assert two.number == 2 and two.step == Step.DONE
    assert two.policy_model == one.tuned_model and two.policy_revision == one.tuned_revision
    assert two.tuned_model != one.tuned_model
    assert fake_training.calls[1]["config"].model == one.tuned_model
    sampled = set(Candidate.objects.filter(prompt__campaign=two.campaign).values_list("model_name", flat=True))
    assert sampled == {one.tuned_model}
    [row] = campaign_quality_report(campaign=two.eval_campaign)["model_win_rates"]
    assert (row["model"], row["opponent"]) == (two.tuned_model, one.tuned_model)
    assert two.campaign.name == "Stories · round 2" and two.eval_campaign.name == "Stories · round 2 · evaluation"


def test_labelling_by_people_waits_for_them_then_goes_on_with_what_they_judged(
    settings_for, engines, fake_training, data_dir
):
    round = round_run(round=start(settings_for, labelled_by="people"), engines=engines)
    assert round.step == Step.LABEL  # generated, then waiting
    with pytest.raises(ConflictError) as refused:
        round_step_create(round=round)
    assert refused.value.message == (
        "Stories, round 1: 0 of 6 pairs judged by people; 6 still wait for people. Let them finish, or go on with "
        "what is judged."
    )
    waiting = next(view for view in round_steps(round=round) if view.step == Step.LABEL)
    assert (waiting.state, waiting.detail) == ("waiting", "0 of 6 pairs judged by people")

    person = make_user("ann")
    judged = iter(range(100))
    judge_all(round.campaign, person, lambda pair: Verdict.A if next(judged) < 4 else None)  # 4 judged, 2 skipped
    assert round_label_progress(round=round).text == "4 of 6 pairs judged by people"
    assert "2 still wait for people" in round_next(round=round)

    round = round_run(round=round, engines=engines, people_done=True)
    assert round.step == Step.DONE
    assert round.export.options["judges"] == "humans" and round.export.stats["rows"]["train"] == 4
    assert not Judgment.objects.filter(comparison__prompt__campaign=round.campaign, source=JudgeSource.AI).exists()
    assert JUDGE not in engines.models[:2]  # nobody loaded the judge for the round's own pairs


def test_with_both_the_judge_fills_in_what_people_left_and_people_decide_the_pairs_they_judged(
    settings_for, engines, fake_training, data_dir
):
    round = round_run(round=start(settings_for, labelled_by="both"), engines=engines)
    assert round.step == Step.LABEL and "the AI judge fills in the 6 pair(s) they left" in round_next(round=round)

    person = make_user("ann")
    first_two = list(Comparison.objects.filter(prompt__campaign=round.campaign).order_by("id")[:2])
    judge_all(round.campaign, person, lambda pair: Verdict.B if pair in first_two else None)

    round = round_run(round=round, engines=engines, people_done=True)
    assert round.step == Step.DONE and round.export.options["judges"] == "both"
    rows = read_rows(Path(round.export.out_dir))
    by_pair = {row["comparison_id"]: row for row in rows}
    for pair in first_two:
        assert by_pair[pair.pk]["judge_source"] == "human" and by_pair[pair.pk]["chosen_side"] == "b"
    assert {row["judge_source"] for row in rows if row["comparison_id"] not in {p.pk for p in first_two}} <= {"ai"}


def test_a_failed_step_shows_its_error_stays_at_its_step_and_a_retry_goes_on(settings_for, fake_training, data_dir):
    round = start(settings_for)
    crashing = FakeEngines(fail={str(TINY_MODEL): RuntimeError("engine crashed")})
    with pytest.raises(RuntimeError):
        round_run(round=round, engines=crashing)

    round.refresh_from_db()
    failed = RoundStep.objects.get(round=round)
    assert round.step == Step.GENERATE
    assert (failed.status, failed.error) == (JobStatus.FAILED, "RuntimeError: engine crashed")
    assert round_next(round=round) == (
        "Generate pairs failed: RuntimeError: engine crashed Retry it: it goes on from where it stopped."
    )
    assert round.generation_run.status == JobStatus.FAILED

    round = round_run(round=round, engines=FakeEngines())
    assert round.step == Step.DONE
    attempts = RoundStep.objects.filter(round=round, step=Step.GENERATE).order_by("id")
    assert [a.status for a in attempts] == [JobStatus.FAILED, JobStatus.SUCCEEDED]
    assert GenerationRun.objects.filter(campaign=round.campaign).count() == 2


def test_a_step_whose_service_finished_before_its_process_died_reuses_that_work(
    settings_for, engines, fake_training, data_dir
):
    round = start(settings_for)
    job = round_step_create(round=round)
    round_step_execute(job=job, engines=engines)
    round.refresh_from_db()
    # The process died as the label step ended: the judge had judged every pair, the step row says failed.
    job = round_step_create(round=round)
    round_step_execute(job=job, engines=engines)
    RoundStep.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error="no sign of life")
    Round.objects.filter(pk=round.pk).update(step=Step.LABEL)
    loaded = len(engines.loaded)

    round_step_execute(job=round_step_create(round=round), engines=engines)
    round.refresh_from_db()
    assert round.step == Step.EXPORT
    assert len(engines.loaded) == loaded  # nothing left to judge: the judge was not even loaded
    assert Judgment.objects.filter(comparison__prompt__campaign=round.campaign).count() == len(TRAIN_PROMPTS)


def test_a_failed_training_is_retried_into_a_new_folder_and_the_round_links_the_run_that_succeeded(
    settings_for, engines, fake_training, data_dir
):
    round = start(settings_for)
    fake_training.fail_next = True
    with pytest.raises(RuntimeError, match="out of memory"):
        round_run(round=round, engines=engines)
    round.refresh_from_db()
    assert round.step == Step.TRAIN and round.training_run.status == JobStatus.FAILED
    failed_output = Path(round.training_run.output_dir)
    assert failed_output.name == "model"

    round = round_run(round=round, engines=engines)
    assert round.step == Step.DONE
    assert round.training_run.status == JobStatus.SUCCEEDED
    assert Path(round.tuned_model).name.startswith("model-") and Path(round.tuned_model).parent == failed_output.parent


def test_a_prompts_file_changed_after_the_round_started_stops_the_generate_step(settings_for, engines, data_dir):
    round = start(settings_for)
    Path(round.series.series_options.prompts_file).write_text('{"prompt": "Something else"}\n')
    with pytest.raises(InputError, match=r"The prompts file .*train.jsonl changed since Stories, round 1 started"):
        round_run(round=round, engines=engines)
    assert engines.loaded == []


def test_a_round_starts_only_when_the_last_one_is_done(settings_for, engines, fake_training, data_dir):
    round = start(settings_for)
    with pytest.raises(ConflictError) as refused:
        round_start(series=round.series)
    assert refused.value.message == (
        "Round 1 of 'Stories' is at generate pairs, not done: finish it first, since round 2 samples from its "
        "tuned model."
    )
    round_run(round=round, engines=engines)
    assert round_start(series=round.series).number == 2


def test_advancing_queues_one_step_at_a_time(settings_for, dummy_tasks, data_dir, django_capture_on_commit_callbacks):
    round = start(settings_for)
    with django_capture_on_commit_callbacks(execute=True):
        job = round_advance(round=round)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.step == Step.GENERATE
    assert len(dummy_tasks.results) == 1 and job.task_id
    with pytest.raises(ConflictError, match=rf"generate pairs is queued \(round step {job.pk}\)\. Wait for it"):
        round_advance(round=round)


def test_a_chained_step_queues_the_next_until_people_are_needed(
    settings_for, engines, fake_training, data_dir, monkeypatch, settings, transactional_db
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    monkeypatch.setattr("rounds.services.engines_default", engines)
    round = start(settings_for, eval_labelled_by="people")

    round_advance(round=round, chain=True)
    round.refresh_from_db()
    assert round.step == Step.EVAL_LABEL  # generate .. evaluate: generate, each queued by the one before
    assert RoundStep.objects.filter(round=round, status=JobStatus.SUCCEEDED).count() == 5
    assert "3 still wait for people" in round_next(round=round)


def test_a_series_start_names_every_bad_setting(settings_for, prompt_files):
    bad = settings_for(
        labelled_by="both",
        judge_model="",
        beta=3.0,
        temperatures="0.7,1.1,1.3",
        eval_prompts_file=prompt_files["prompts_file"],
    )
    with pytest.raises(InputError) as refused:
        SeriesOptions.from_mapping(bad)
    message = refused.value.message
    assert message.startswith("Invalid round settings:\n  - ")
    assert "eval_prompts_file shares 6 prompt(s) with prompts_file: evaluation prompts must be held out" in message
    assert "judge_model is missing: labelling by ai or both needs the AI judge's model." in message
    assert "temperatures has 3 values: give one, or one per candidate (n 2)." in message
    assert "beta is 3: it must be > 0 and <= 2" in message


def test_series_names_are_unique(settings_for):
    start(settings_for)
    with pytest.raises(ConflictError, match="A series named 'Stories' exists already"):
        start(settings_for)


def test_an_engine_kept_open_for_the_steps_keeps_its_own_stream():
    from rounds.engines import KeptOpen

    class Streaming:
        name, model_name, model_revision = "fake", "fake-model", ""

        def stream(self):
            return "its stream"

    class Plain:
        name, model_name, model_revision = "fake", "fake-model", ""

    assert KeptOpen(Streaming()).stream() == "its stream"
    assert not hasattr(KeptOpen(Plain()), "stream")
