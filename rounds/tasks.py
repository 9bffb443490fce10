"""Background work: a round's step, queued by `round_advance`, run by `manage.py db_worker`."""

from contextlib import suppress

from django_tasks import task

from core.errors import StudioError
from rounds.models import RoundStep
from rounds.services import round_step_execute


@task()
def round_step_task(step_id: int) -> str:
    """Run a queued step with the same service as `manage.py round advance`; return its status.

    Its outcome (what it made, or the error) is recorded on the RoundStep; a refusal the user can act on (a
    changed prompts file, nothing to export) is not an error of the worker."""
    job = RoundStep.objects.select_related("round").get(pk=step_id)
    with suppress(StudioError):
        round_step_execute(job=job)
    job.refresh_from_db()
    return job.status
