"""Background work: a generation run started from the web, executed by `manage.py db_worker`."""

from typing import Any

from django_tasks import task

from generation.models import GenerationRun
from generation.services import generation_run_execute


@task()
def generation_run_task(run_id: int) -> dict[str, Any]:
    """Execute a queued run with the same service as `manage.py generate_pairs`; return its counts."""
    run = GenerationRun.objects.select_related("campaign").get(pk=run_id)
    return generation_run_execute(run=run).as_dict()
