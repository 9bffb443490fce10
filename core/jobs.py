r"""The life cycle of every background job (generation runs, exports, training runs), written once.

    queued --job_claim--> running --job_succeed--> succeeded
                             |  \--job_fail-----> failed
                             \--(no heartbeat for JOB_STALE_SECONDS)--> failed, by jobs_fail_stale

- `job_enqueue` hands a job to the background worker only once the transaction that created it has
  committed, so a worker never looks for a row that is not there yet (or never will be).
- `job_claim` moves a job to running in one conditional UPDATE: of two workers that pick up the same job,
  exactly one gets it; the other gets a ConflictError.
- `job_running` wraps the work: it claims the job, beats its heartbeat from a thread while the work runs,
  and records the outcome, whatever stops the work (an error, Ctrl-C, SIGTERM).
- A worker killed with SIGKILL (or a machine that went down) records nothing: its job's heartbeat stops.
  `jobs_fail_stale`, run by `manage.py db_worker` at start-up, marks such jobs failed.
"""

import inspect
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import ConflictError, StudioError
from core.models import Job, JobStatus

logger = logging.getLogger(__name__)


def job_enqueue(*, task: Any, job: Job) -> None:
    """Queue `task(<its one parameter>=job.pk)` for the worker once the current transaction commits; record the
    task's id on the job."""
    model, pk = type(job), job.pk
    [parameter] = inspect.signature(task.func).parameters

    def enqueue() -> None:
        result = task.enqueue(**{parameter: pk})
        model.objects.filter(pk=pk).update(task_id=str(result.id))

    transaction.on_commit(enqueue)


def job_claim(job: Job, *, claim_from: Sequence[str] = (JobStatus.QUEUED,)) -> None:
    """Move the job to running, atomically: raises ConflictError if it is not in one of `claim_from` (another
    worker has it, or it has finished)."""
    now = timezone.now()
    fields = {"status": JobStatus.RUNNING, "started_at": now, "heartbeat_at": now, "error": "", "finished_at": None}
    claimed = type(job).objects.filter(pk=job.pk, status__in=list(claim_from)).update(**fields)
    if not claimed:
        job.refresh_from_db(fields=["status"])
        raise ConflictError(f"{job.job_name} {job.pk} is {job.status}, not queued: it runs once.")
    for name, value in fields.items():
        setattr(job, name, value)


def _job_finish(job: Job, status: str, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(job, name, value)
    job.status = status
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at", *fields])


def job_succeed(job: Job, **fields: Any) -> None:
    """Record success, with the job's own result fields (counts, files, metrics)."""
    _job_finish(job, JobStatus.SUCCEEDED, {"error": "", **fields})


def job_fail(job: Job, *, error: str, **fields: Any) -> None:
    """Record failure with a message fit for the user, and whatever the job's own fields hold so far."""
    _job_finish(job, JobStatus.FAILED, {"error": error, **fields})


def failure_message(error: BaseException, *, interrupted: str) -> str:
    """What a failed job says: a refusal's own message, `interrupted` for Ctrl-C or SIGTERM, else the error."""
    if isinstance(error, StudioError):
        return error.message
    if isinstance(error, KeyboardInterrupt | SystemExit):
        return interrupted
    return f"{type(error).__name__}: {error}".rstrip(": ")


@contextmanager
def job_running(
    job: Job,
    *,
    interrupted: str = "Interrupted (Ctrl-C or SIGTERM).",
    claim_from: Sequence[str] = (JobStatus.QUEUED,),
    describe: Callable[[BaseException], str] | None = None,
    fail_fields: Callable[[], dict[str, Any]] | None = None,
) -> Iterator[None]:
    """Claim the job, keep its heartbeat while the block runs, and record a failure if the block raises.

    The block records success itself (`job_succeed`, with its results). On any exception, Ctrl-C and SIGTERM
    included, the job is marked failed with `describe(error)` (default `failure_message`) and `fail_fields()`
    (what it has done so far), and the exception goes on.
    """
    job_claim(job, claim_from=claim_from)
    try:
        with job_heartbeat(job):
            yield
    except BaseException as error:
        message = describe(error) if describe else failure_message(error, interrupted=interrupted)
        job_fail(job, error=message, **(fail_fields() if fail_fields else {}))
        raise


@contextmanager
def job_heartbeat(job: Job) -> Iterator[None]:
    """Within the block, a thread writes `heartbeat_at` every JOB_HEARTBEAT_SECONDS, so a job whose process
    died can be told from one that is still working (model loads and long steps included)."""
    interval = settings.JOB_HEARTBEAT_SECONDS
    stop = threading.Event()
    model, pk = type(job), job.pk

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    model.objects.filter(pk=pk, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
                except DatabaseError as error:  # busy database: the next beat will do
                    logger.warning("Heartbeat of %s %s not recorded: %s", job.job_name, pk, error)
        finally:
            connections.close_all()  # this thread's own connections

    thread = threading.Thread(target=beat, name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def job_models() -> list[type[Job]]:
    return [model for model in apps.get_models() if issubclass(model, Job)]


def jobs_fail_stale(*, now: Any = None) -> int:
    """Mark failed every running job whose process has not beaten for JOB_STALE_SECONDS; return how many."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.JOB_STALE_SECONDS)
    stale = Q(status=JobStatus.RUNNING) & (
        Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, started_at__lt=limit)
    )
    total = 0
    for model in job_models():
        for job in model.objects.filter(stale):
            last = job.heartbeat_at or job.started_at
            error = (
                f"The process running it stopped without a word (killed, or its machine went down): no sign of "
                f"life since {last:%Y-%m-%d %H:%M:%S} UTC. Start it again ({job.job_restart})."
            )
            # Conditional, like the claim: a job that finished meanwhile keeps its outcome.
            total += model.objects.filter(stale, pk=job.pk).update(
                status=JobStatus.FAILED, error=error, finished_at=now
            )
    return total
