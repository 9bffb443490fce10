"""Background work for exports, run by `manage.py db_worker` (or at once with the ImmediateBackend)."""

from contextlib import suppress

from django_tasks import task

from core.errors import StudioError
from exports.models import DatasetExport
from exports.services import dataset_export_run


@task()
def dataset_export_task(export_id: int) -> str:
    """Run a queued export; its outcome (files, or the error) is recorded on the DatasetExport."""
    export = DatasetExport.objects.select_related("campaign", "created_by").get(pk=export_id)
    with suppress(StudioError):  # a refusal the user can act on: recorded on the export, shown on its page
        dataset_export_run(export=export)
    return export.status
