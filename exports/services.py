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

from annotator.models import Campaign
from core.errors import ConflictError, InputError, StudioError
from core.jobs import job_enqueue, job_running, job_succeed
from exports.models import DatasetExport, ExportVia
from exports.options import ExportOptions
from quality.gate import JudgeGate, campaign_judge_gate


def dataset_export_create(
    *,
    campaign: Campaign,
    options: Mapping[str, Any],
    created_by: AbstractBaseUser | None = None,
    via: str = ExportVia.COMMAND,
    out_dir: Path | None = None,
) -> DatasetExport:
    """Check the options and record a queued export. Without out_dir it goes to DATA_DIR/exports/<id>/."""
    if campaign.sentinel_of_id is not None:
        raise InputError(
            f"Campaign {campaign.name!r} holds the sentinel pairs of {campaign.sentinel_of.name!r}: their judgments "
            "check annotators and are never exported. Export the campaign itself."
        )
    parsed = ExportOptions.from_mapping(options)
    with transaction.atomic():
        export = DatasetExport.objects.create(
            campaign=campaign, options=parsed.as_dict(), created_by=created_by, via=via
        )
        export.out_dir = str(Path(out_dir).resolve() if out_dir else settings.DATA_DIR / "exports" / str(export.pk))
        export.save(update_fields=["out_dir"])
    return export


def _export_failure(error: BaseException) -> str:
    if isinstance(error, StudioError):
        return error.message
    if isinstance(error, KeyboardInterrupt | SystemExit):
        return "The export was interrupted (Ctrl-C or SIGTERM); no file was written."
    return f"The export stopped ({type(error).__name__}: {error}); no file was written."


def dataset_export_run(*, export: DatasetExport, chunk_size: int | None = None) -> DatasetExport:
    """Run a queued export: write its files and record counts, paths and checksums, or why it failed.

    A failure is recorded on the export and raised again (StudioError for a refusal the user can act on).
    Nothing is left in out_dir by a failed export.
    """
    from exports.pipeline import CHUNK_PAIRS, campaign_export  # pyarrow, and transformers for --tokenizer

    with job_running(export, describe=_export_failure):
        options = ExportOptions.from_mapping(export.options)
        gate = export_judge_gate_check(campaign=export.campaign, judges=options.judges)
        result = campaign_export(
            campaign=export.campaign,
            options=options,
            out_dir=Path(export.out_dir),
            export_id=export.pk,
            created_by=export.created_by.get_username() if export.created_by else "",
            created_at=export.started_at,
            chunk_size=chunk_size or CHUNK_PAIRS,
        )
        job_succeed(
            export,
            stats={
                "format": result.kind,
                "format_reason": result.format_reason,
                **result.stats,
                **({"judge_gate": gate.as_dict()} if gate is not None else {}),
            },
            files=result.files,
        )
    return export


def export_judge_gate_check(*, campaign: Campaign, judges: str) -> JudgeGate | None:
    """The judge gate of an export that counts AI verdicts (`judges` ai or both): refused with the figures
    (ConflictError) when the campaign audits its judge and the judge falls short; None for `judges` humans."""
    if judges == "humans":
        return None
    gate = campaign_judge_gate(campaign=campaign)
    if not gate.passed:
        raise ConflictError(gate.refusal(campaign=campaign, judges=judges))
    return gate


def dataset_export_enqueue(*, export: DatasetExport) -> None:
    """Hand a queued export to the background worker (`manage.py db_worker`)."""
    from exports.tasks import dataset_export_task

    job_enqueue(task=dataset_export_task, job=export)
