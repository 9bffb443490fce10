"""Background training: the web form enqueues `train_dpo_task`, `manage.py db_worker` runs it."""

from django_tasks import task

from core.errors import StudioError


@task()
def train_dpo_task(run_id: int) -> int:
    """Run a queued TrainingRun through the same service as `manage.py train_dpo`; return its id.

    Its outcome is recorded on the TrainingRun: a refusal before training started (the data changed since the
    run was queued, another worker took it) leaves the run failed with the reason, or as the other worker has it."""
    from core.jobs import job_fail
    from core.models import JobStatus
    from training.config import DPORunConfig
    from training.models import TrainingRun
    from training.services import dpo_run

    run = TrainingRun.objects.get(pk=run_id)
    try:
        dpo_run(config=DPORunConfig(**run.config), run=run)
    except StudioError as error:
        run.refresh_from_db()
        if run.status == JobStatus.QUEUED:  # refused before the run was claimed
            job_fail(run, error=error.message)
    return run.pk
