"""Background work: a generation run started from the web, executed by `manage.py db_worker`."""

from typing import Any

from django_tasks import task

from core.errors import StudioError
from generation.models import GenerationRun
from generation.services import generation_run_execute


@task()
def generation_run_task(run_id: int) -> dict[str, Any]:
    """Execute a queued run with the same service as `manage.py generate_pairs`; return its counts.

    Its outcome is recorded on the GenerationRun; a refusal (a run another worker took) is not an error here."""
    run = GenerationRun.objects.select_related("campaign").get(pk=run_id)
    try:
        return generation_run_execute(run=run).as_dict()
    except StudioError:
        run.refresh_from_db()
        return run.stats
