"""The one life cycle of background jobs: claim once, enqueue after commit, heartbeat, stale runs failed."""

import signal
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from core.errors import ConflictError, InputError
from core.jobs import job_claim, job_enqueue, job_running, job_succeed, jobs_fail_stale
from core.models import JobStatus
from exports.models import DatasetExport
from exports.tasks import dataset_export_task
from generation.models import GenerationRun
from tests.exports.helpers import judge_all
from tests.exports.test_command import start_interruptible_export, wait_for_temporary_file
from tests.factories import make_campaign, make_user
from training.models import TrainingRun


def queued_export(name: str = "Jobs") -> DatasetExport:
    return DatasetExport.objects.create(campaign=make_campaign(name, pairs=1))


@pytest.fixture
def dummy_tasks(settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    from django_tasks import default_task_backend

    default_task_backend.clear()
    return default_task_backend


@pytest.mark.django_db
def test_of_two_workers_claiming_one_queued_job_exactly_one_gets_it():
    export = queued_export()
    other_worker_copy = DatasetExport.objects.get(pk=export.pk)
    job_claim(export)
    with pytest.raises(ConflictError, match=f"Export {export.pk} is running, not queued: it runs once."):
        job_claim(other_worker_copy)
    export.refresh_from_db()
    assert export.status == JobStatus.RUNNING and export.started_at and export.heartbeat_at


@pytest.mark.django_db(transaction=True)
def test_a_job_is_enqueued_only_once_its_transaction_commits(dummy_tasks):
    with pytest.raises(RuntimeError), transaction.atomic():
        export = queued_export("Rolled back")
        job_enqueue(task=dataset_export_task, job=export)
        raise RuntimeError("the request failed after queueing")
    assert dummy_tasks.results == [] and not DatasetExport.objects.exists()

    with transaction.atomic():
        export = queued_export("Committed")
        job_enqueue(task=dataset_export_task, job=export)
        assert dummy_tasks.results == []  # not before the commit
    [result] = dummy_tasks.results
    assert result.kwargs == {"export_id": export.pk}
    export.refresh_from_db()
    assert export.task_id == str(result.id)


@pytest.mark.django_db
def test_job_running_records_success_or_the_failure_whatever_stops_it():
    export = queued_export()
    with job_running(export, interrupted="stopped"):
        job_succeed(export, stats={"rows": 3})
    export.refresh_from_db()
    assert (export.status, export.stats, export.error) == (JobStatus.SUCCEEDED, {"rows": 3}, "")
    assert export.finished_at >= export.started_at

    for error, message in [
        (InputError("Bad option 'beta': use a number."), "Bad option 'beta': use a number."),
        (KeyboardInterrupt(), "stopped"),
        (SystemExit(143), "stopped"),
        (OSError(28, "No space left on device"), "OSError: [Errno 28] No space left on device"),
    ]:
        job = queued_export(f"Fails with {type(error).__name__}")
        with pytest.raises(type(error)), job_running(job, interrupted="stopped"):
            raise error
        job.refresh_from_db()
        assert (job.status, job.error) == (JobStatus.FAILED, message)


@pytest.mark.django_db(transaction=True)
def test_a_running_job_beats_its_heartbeat_while_it_works(settings):
    settings.JOB_HEARTBEAT_SECONDS = 0.05
    export = queued_export()
    with job_running(export, interrupted="stopped"):
        claimed_at = DatasetExport.objects.get(pk=export.pk).heartbeat_at
        time.sleep(0.5)
        beaten_at = DatasetExport.objects.get(pk=export.pk).heartbeat_at
        job_succeed(export)
    assert beaten_at > claimed_at


@pytest.mark.django_db
def test_only_running_jobs_silent_for_longer_than_the_limit_are_marked_failed(settings):
    settings.JOB_STALE_SECONDS = 300
    now = timezone.now()
    campaign = make_campaign("Stale", pairs=1)

    def job(model, status, heartbeat_minutes_ago, **fields):
        beat = now - timedelta(minutes=heartbeat_minutes_ago) if heartbeat_minutes_ago is not None else None
        return model.objects.create(status=status, started_at=now - timedelta(hours=1), heartbeat_at=beat, **fields)

    dead_export = job(DatasetExport, JobStatus.RUNNING, 10, campaign=campaign)
    dead_generation = job(GenerationRun, JobStatus.RUNNING, None, campaign=campaign)  # died before its first beat
    dead_training = job(TrainingRun, JobStatus.RUNNING, 6, dataset_path="d", base_model="m", output_dir="o")
    alive = job(DatasetExport, JobStatus.RUNNING, 1, campaign=campaign)
    finished = job(DatasetExport, JobStatus.SUCCEEDED, 60, campaign=campaign)

    assert jobs_fail_stale(now=now) == 3
    for dead in (dead_export, dead_generation, dead_training):
        dead.refresh_from_db()
        assert dead.status == JobStatus.FAILED and dead.finished_at == now
        assert dead.error.startswith("The process running it stopped without a word")
        assert dead.job_restart in dead.error
    for untouched, status in ((alive, JobStatus.RUNNING), (finished, JobStatus.SUCCEEDED)):
        untouched.refresh_from_db()
        assert untouched.status == status and untouched.error == ""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_whose_process_was_killed_is_marked_failed_when_the_worker_starts(tmp_path, settings):
    campaign = make_campaign("Killed hard", pairs=40)
    judge_all(campaign, make_user("ann"), lambda c: "a")
    process = start_interruptible_export("Killed hard", tmp_path)
    wait_for_temporary_file(process, tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    export = DatasetExport.objects.get()
    assert export.status == JobStatus.RUNNING  # a killed process records nothing

    settings.JOB_STALE_SECONDS = 0  # its heartbeat stopped: silent for longer than the limit
    out = StringIO()
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", stdout=out)
    assert "Marked 1 job(s) failed" in out.getvalue()
    export.refresh_from_db()
    assert export.status == JobStatus.FAILED
    assert "stopped without a word" in export.error and "export again" in export.error
