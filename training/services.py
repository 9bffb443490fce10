"""Writes: queue, run and record DPO training runs.

`dpo_run` is the one path every entry point takes (the `train_dpo` command, the background task the web form
enqueues): check the configuration, the data and the output directory before any model loads, record the run,
train, and leave the row succeeded (with final metrics) or failed (with the error). Only the main process of
a multi-GPU launch writes the row and the files beside the outputs.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from core.jobs import job_enqueue, job_running, job_succeed
from core.models import JobStatus
from training.config import DPORunConfig
from training.data import PreferenceData, preference_data_load
from training.device import DeviceInfo, is_main_process
from training.models import TrainingMetric, TrainingRun
from training.reporting import reporting_check
from training.resume import RUN_CONFIG_FILE, latest_checkpoint, output_check
from training.trainer import TrainingResult, dpo_train


@dataclass
class PreparedRun:
    config: DPORunConfig
    data: PreferenceData
    output_dir: Path


def dpo_run_prepare(*, config: DPORunConfig, resume: bool = False) -> PreparedRun:
    """Everything that can be checked without a model: the configuration, every data file, the output dir."""
    config.validate()
    reporting_check(config)
    data = preference_data_load(config.data)
    output_dir = Path(config.output).expanduser().resolve()
    output_check(output_dir, resume=resume, config=config, data=data)
    config.output = str(output_dir)
    return PreparedRun(config=config, data=data, output_dir=output_dir)


def training_run_create(
    *,
    prepared: PreparedRun,
    created_by: AbstractBaseUser | None = None,
) -> TrainingRun:
    data = prepared.data
    return TrainingRun.objects.create(
        status=JobStatus.QUEUED,
        config=prepared.config.as_dict(),
        export_id=data.export_id,
        dataset_path=str(data.source),
        dataset_sha256=data.train.sha256,
        dataset_files=data.files(),
        base_model=prepared.config.model,
        output_dir=str(prepared.output_dir),
        created_by=created_by,
    )


def training_run_queue(*, config: DPORunConfig, created_by: AbstractBaseUser | None = None) -> TrainingRun:
    """Check a run and enqueue it for the background worker (`manage.py db_worker`)."""
    from training.tasks import train_dpo_task

    prepared = dpo_run_prepare(config=config)
    run = training_run_create(prepared=prepared, created_by=created_by)
    job_enqueue(task=train_dpo_task, job=run)
    return run


def training_run_for_resume(*, output_dir: Path) -> TrainingRun | None:
    return TrainingRun.objects.filter(output_dir=str(output_dir)).order_by("-created_at", "-id").first()


def training_run_started(*, run: TrainingRun, device: DeviceInfo, warnings: list[str]) -> None:
    """What the run learned once its models loaded: the device and the warnings about its data."""
    run.device = device.description
    run.warnings = warnings
    run.save(update_fields=["device", "warnings"])


def training_metric_record(*, run: TrainingRun, record: dict[str, Any]) -> TrainingMetric:
    values = {key: value for key, value in record.items() if key not in ("split", "step", "epoch")}
    with transaction.atomic():
        metric = TrainingMetric.objects.create(
            run=run, split=record["split"], step=record["step"], epoch=record.get("epoch"), values=values
        )
        TrainingRun.objects.filter(pk=run.pk, global_step__lt=record["step"]).update(global_step=record["step"])
    return metric


def dpo_run(
    *,
    config: DPORunConfig,
    resume: bool = False,
    run: TrainingRun | None = None,
    created_by: AbstractBaseUser | None = None,
    extra_callbacks: list | None = None,
) -> tuple[TrainingRun | None, TrainingResult]:
    """Check, record and run one DPO training; return its row (None on non-main ranks) and result.

    Raises StudioError (InputError for bad input, TrainingDivergedError for a NaN loss) with a message fit for
    the user; any failure after the row exists leaves it failed with that message."""
    prepared = dpo_run_prepare(config=config, resume=resume)
    config = prepared.config
    if is_main_process():
        if run is None and resume:
            run = training_run_for_resume(output_dir=prepared.output_dir)
            if run is not None:  # forget what the resumed run will log again
                step = latest_checkpoint(prepared.output_dir)[0]
                run.metrics.filter(step__gt=step).delete()
                # The same training (resume_check), maybe run differently (threads, logging): keep the config.
                TrainingRun.objects.filter(pk=run.pk).update(global_step=step, config=config.as_dict())
                run.global_step = step
        if run is None:
            run = training_run_create(prepared=prepared, created_by=created_by)

    def on_start(device: DeviceInfo, warnings: list[str]) -> None:
        if run is not None:
            training_run_started(run=run, device=device, warnings=warnings)
            run_config_write(prepared, run=run, device=device)

    def on_record(record: dict[str, Any]) -> None:
        if run is not None:
            training_metric_record(run=run, record=record)

    def train() -> TrainingResult:
        return dpo_train(
            config,
            prepared.data,
            resume=resume,
            on_record=on_record,
            on_start=on_start,
            extra_callbacks=extra_callbacks,
        )

    if run is None:  # a non-main rank of a multi-process launch: the main one keeps the record
        return None, train()
    # A resumed run takes over its own row, whatever its last process left there (killed, failed).
    claim_from = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED) if resume else (JobStatus.QUEUED,)
    with job_running(
        run,
        interrupted="Interrupted (Ctrl-C or SIGTERM): train_dpo --resume continues from the last checkpoint.",
        claim_from=claim_from,
    ):
        result = train()
        job_succeed(run, global_step=result.global_step, final_metrics=_json_safe(result.final_metrics))
    return run, result


def run_config_write(prepared: PreparedRun, *, run: TrainingRun, device: DeviceInfo) -> Path:
    """output/run_config.json: the config (loadable again with --config) plus what was derived from it."""
    config = prepared.config
    loss_type, loss_weights = config.trl_losses
    resolved = {
        "run_id": run.pk,
        "learning_rate": config.resolved_learning_rate,
        "trl_loss_type": loss_type,
        "trl_loss_weights": loss_weights,
        "device": device.description,
        "bf16": device.bf16,
        "world_size": device.world_size,
        "dataset": {"source": prepared.data.source, "export_id": prepared.data.export_id, **prepared.data.files()},
    }
    prepared.output_dir.mkdir(parents=True, exist_ok=True)
    path = prepared.output_dir / RUN_CONFIG_FILE
    path.write_text(json.dumps({**config.as_dict(), "resolved": resolved}, indent=2) + "\n")
    return path


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    import math

    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
