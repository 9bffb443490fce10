"""Writes: recording an export, running it, queueing it for the background worker.

The command, the web page and the API all go through `dataset_export_create` then `dataset_export_run`
(directly, or through the `dataset_export_task` that `dataset_export_enqueue` queues).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotator.errors import ConflictError, StudioError
from annotator.models import Campaign, JobStatus
from exports.models import DatasetExport, ExportVia
from exports.options import ExportOptions


def dataset_export_create(
    *,
    campaign: Campaign,
    options: Mapping[str, Any],
    created_by: AbstractBaseUser | None = None,
    via: str = ExportVia.COMMAND,
    out_dir: Path | None = None,
) -> DatasetExport:
    """Check the options and record a queued export. Without out_dir it goes to DATA_DIR/exports/<id>/."""
    parsed = ExportOptions.from_mapping(options)
    with transaction.atomic():
        export = DatasetExport.objects.create(
            campaign=campaign, options=parsed.as_dict(), created_by=created_by, via=via
        )
        export.out_dir = str(Path(out_dir).resolve() if out_dir else settings.DATA_DIR / "exports" / str(export.pk))
        export.save(update_fields=["out_dir"])
    return export


def _finish(export: DatasetExport, status: str, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(export, name, value)
    export.status = status
    export.finished_at = timezone.now()
    export.save(update_fields=["status", "finished_at", *fields])


def dataset_export_run(*, export: DatasetExport, chunk_size: int | None = None) -> DatasetExport:
    """Run a queued export: write its files and record counts, paths and checksums, or why it failed.

    A failure is recorded on the export and raised again (StudioError for a refusal the user can act on).
    Nothing is left in out_dir by a failed export.
    """
    from exports.pipeline import CHUNK_PAIRS, campaign_export  # pyarrow, and transformers for --tokenizer

    started = timezone.now()
    claimed = DatasetExport.objects.filter(pk=export.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=started
    )
    if not claimed:
        export.refresh_from_db()
        raise ConflictError(f"Export {export.pk} is {export.status}, not queued: it runs once.")
    export.status, export.started_at = JobStatus.RUNNING, started
    try:
        result = campaign_export(
            campaign=export.campaign,
            options=ExportOptions.from_mapping(export.options),
            out_dir=Path(export.out_dir),
            export_id=export.pk,
            created_by=export.created_by.get_username() if export.created_by else "",
            created_at=started,
            chunk_size=chunk_size or CHUNK_PAIRS,
        )
    except StudioError as error:
        _finish(export, JobStatus.FAILED, error=error.message)
        raise
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt | SystemExit):
            message = "The export was interrupted (Ctrl-C or SIGTERM); no file was written."
        else:
            message = f"The export stopped ({type(error).__name__}: {error}); no file was written."
        _finish(export, JobStatus.FAILED, error=message)
        raise
    _finish(export, JobStatus.SUCCEEDED, stats={"format": result.kind, **result.stats}, files=result.files, error="")
    return export


def dataset_export_enqueue(*, export: DatasetExport) -> None:
    """Hand a queued export to the background worker (`manage.py db_worker`)."""
    from exports.tasks import dataset_export_task

    dataset_export_task.enqueue(export_id=export.pk)
