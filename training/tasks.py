"""Background training: the web form enqueues `train_dpo_task`, `manage.py db_worker` runs it."""

from django_tasks import task

from annotator.errors import StudioError


@task()
def train_dpo_task(run_id: int) -> int:
    """Run a queued TrainingRun through the same service as `manage.py train_dpo`; return its id."""
    from annotator.models import JobStatus
    from training.config import DPORunConfig
    from training.models import TrainingRun
    from training.services import dpo_run, training_run_fail

    run = TrainingRun.objects.get(pk=run_id)
    if run.status != JobStatus.QUEUED:
        return run.pk  # already taken by another worker, or finished
    try:
        config = DPORunConfig(**run.config)
        dpo_run(config=config, run=run)
    except StudioError as error:
        run.refresh_from_db()
        if run.status != JobStatus.FAILED:  # refused before training started (the data changed, ...)
            training_run_fail(run=run, error=error.message)
    return run.pk
