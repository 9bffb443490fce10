"""`manage.py round start|advance|status`: thin over the services, with the messages a terminal user sees."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_tasks import default_task_backend

from core.models import JobStatus
from rounds.models import Round, RoundStep, Step
from tests.factories import TINY_MODEL
from tests.rounds.helpers import JUDGE

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fake_engines(monkeypatch, engines):
    monkeypatch.setattr("rounds.services.engines_default", engines)
    return engines


def run(*args: str) -> str:
    out = StringIO()
    call_command("round", *args, stdout=out)
    return out.getvalue()


def start_args(prompt_files, *extra: str) -> list[str]:
    return [
        "start", "--series", "Stories", "--base-model", str(TINY_MODEL), "--prompts", prompt_files["prompts_file"],
        "--eval-prompts", prompt_files["eval_prompts_file"], "--labelled-by", "ai", "--eval-labelled-by", "ai",
        "--judge-model", JUDGE, "--val-fraction", "0", "--max-tokens", "16", *extra,
    ]  # fmt: skip


def test_start_then_advance_all_runs_the_round_to_the_end_and_status_says_so(prompt_files, fake_training, data_dir):
    out = run(*start_args(prompt_files, "--n-epochs", "3", "--temperatures", "0.7,1.1"))
    round = Round.objects.get()
    assert "Series 'Stories' started." in out
    assert f"Round 1 (id {round.pk}) samples from {TINY_MODEL}." in out
    assert f"Next: manage.py round advance --round {round.pk} [--all]" in out
    assert round.series.options["n_epochs"] == 3 and round.series.options["temperatures"] == [0.7, 1.1]

    out = run("advance", "--series", "Stories", "--all")
    round.refresh_from_db()
    assert round.step == Step.DONE
    assert f"Stories, round 1 (id {round.pk}): done." in out
    assert "Generate pairs       done      6 of 6 prompts sampled; 6 pairs" in out
    assert "Label pairs          done      6 of 6 pairs judged by the AI judge" in out
    assert f"Win rate against the policy: {round.win_rate:.2f}" in out
    assert out.rstrip().endswith("Done. Start round 2: it samples from this round's tuned model.")

    assert run("status", "--round", str(round.pk)) == out
    out = run("start", "--series", "Stories")
    assert "Round 2 (id" in out and f"samples from {round.tuned_model}." in out


def test_advance_without_all_runs_one_step(prompt_files, data_dir):
    run(*start_args(prompt_files))
    out = run("advance", "--series", "Stories")
    assert "Generate pairs       done" in out and "Label pairs          next" in out
    assert out.rstrip().endswith("Next: label pairs. Advance to run it.")


def test_a_series_that_exists_keeps_its_settings(prompt_files, data_dir):
    run(*start_args(prompt_files))
    with pytest.raises(CommandError) as refused:
        run("start", "--series", "Stories", "--beta", "0.2", "--n-epochs", "1")
    assert str(refused.value) == (
        "Series 'Stories' exists and its rounds share its settings: drop --beta, --n-epochs, or start a new series "
        "under another name."
    )


def test_bad_settings_are_named_by_their_flags(prompt_files, data_dir):
    with pytest.raises(CommandError) as refused:
        run(*start_args(prompt_files, "--beta", "5", "--judge-model", ""))
    message = str(refused.value)
    assert message.startswith("Invalid round settings:\n  - ")
    assert "--judge-model is missing: labelling by ai or both needs the AI judge's model." in message
    assert "--beta is 5: it must be > 0 and <= 2" in message


def test_advance_while_people_label_says_how_to_go_on(prompt_files, data_dir):
    run(*start_args(prompt_files, "--labelled-by", "people"))
    out = run("advance", "--series", "Stories", "--all")
    assert "Label pairs          waiting   0 of 6 pairs judged by people" in out
    with pytest.raises(CommandError) as refused:
        run("advance", "--series", "Stories")
    assert str(refused.value) == (
        "Stories, round 1: 0 of 6 pairs judged by people; 6 still wait for people. Let them finish, or go on with "
        "what is judged: --anyway."
    )


def test_advance_background_queues_the_step_for_the_worker(prompt_files, data_dir, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    default_task_backend.clear()
    run(*start_args(prompt_files))
    out = run("advance", "--series", "Stories", "--background", "--all")
    job = RoundStep.objects.get()
    assert out.strip() == (
        f"Generate pairs of Stories, round 1 queued (round step {job.pk}): manage.py db_worker runs it."
    )
    assert job.status == JobStatus.QUEUED and job.chain


def test_unknown_rounds_and_series_are_clear_errors(data_dir):
    with pytest.raises(CommandError, match="No round with id 99"):
        run("status", "--round", "99")
    with pytest.raises(CommandError) as refused:
        run("advance", "--series", "Nope")
    assert str(refused.value) == "No series named 'Nope' with a round: `manage.py round start` one."
