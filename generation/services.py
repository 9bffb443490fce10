"""Writes for generation: create a run, execute it (sample candidates, store them with their comparisons), start it
in the background.

A run works through its prompts in batches. For each batch it samples every prompt's slots, resamples
empty or duplicate responses, and then writes the prompts, candidates and comparisons of the batch in
one transaction, with the run's counts. A prompt is done once it has comparisons in the campaign, and
a run skips prompts that are done: rerunning after a crash or Ctrl-C continues where it stopped, and a
crash loses at most the batch in flight.
"""

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from annotator.models import Campaign, Candidate, Prompt
from annotator.services import campaign_get_or_create, candidate_create, comparison_create, prompt_get_or_create
from core.errors import InputError
from core.jobs import job_enqueue, job_running, job_succeed
from generation.models import GeneratedCandidate, GenerationRun
from generation.prompts import PromptRow, prompts_read, prompts_read_path
from generation.run_config import RunConfig
from generation.sampling import Slot, derive_seed, pairs_choose, slot_seed, slots_plan, slots_to_resample, text_key
from generation.selectors import prompt_hashes_done, prompts_pending
from llm.base import (
    PROMPT_TOO_LONG,
    REQUEST_FAILED,
    Backend,
    BackendError,
    EngineOptions,
    GenerationRequest,
    GenerationResult,
    backend_load,
)

MAX_SKIPS_LISTED = 50
Progress = Callable[[int, int], None]  # (prompts handled so far, prompts to handle)


@dataclass
class RunSummary:
    prompts: int = 0  # distinct prompts in the file (and the campaign, with fill_campaign)
    generated: int = 0  # prompts that got their candidates and comparisons in this run
    already_done: int = 0  # prompts that had comparisons already (an earlier or concurrent run)
    skipped_too_long: int = 0  # the prompt leaves no room in the model's context
    skipped_duplicate: int = 0  # fewer than two distinct responses after max_resamples
    skipped_empty: int = 0  # empty responses after max_resamples left nothing to pair
    failed: int = 0  # a request failed (a server's error): not stored, a rerun samples the prompt again
    first_failure: str = ""
    repeated_in_file: int = 0  # rows whose prompt appeared earlier in the file
    candidates: int = 0
    truncated: int = 0  # stored candidates cut off at max_tokens or the context (finish_reason "length")
    comparisons: int = 0
    resamples: int = 0  # candidates sampled again because they were empty or duplicates
    tokens_generated: int = 0  # every generated token, resamples included
    generation_seconds: float = 0.0  # time spent in the engine's generate calls
    elapsed_seconds: float = 0.0  # the whole run, engine start included
    skips: list[str] = field(default_factory=list)  # "where: why" for the first MAX_SKIPS_LISTED skipped prompts

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_generated / self.generation_seconds if self.generation_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_second": round(self.tokens_per_second, 1)}

    def skip(self, row: PromptRow, reason: str) -> None:
        if len(self.skips) < MAX_SKIPS_LISTED:
            self.skips.append(f"{row.where}: {reason}")


# ---------------------------------------------------------------------------------------------------------
# Creating and starting runs


def generation_run_create(
    *,
    campaign_name: str,
    config: RunConfig,
    create_campaign: bool = False,
    created_by: AbstractBaseUser | None = None,
    any_server: bool = False,
) -> GenerationRun:
    """Check the configuration and the whole prompts file, then record a queued run. Nothing is generated yet.

    `any_server`: the caller holds the server's key (the command line), so an openai `base_url` need not be
    one of settings.OPENAI_BASE_URLS."""
    config.validate()
    if not any_server:
        config.server_check()
    if config.prompts_file:
        prompts_read_path(config.prompts_file, file_format=config.file_format)
    if create_campaign:
        campaign, _ = campaign_get_or_create(name=campaign_name, created_by=created_by)
    else:
        campaign = Campaign.objects.filter(name=campaign_name.strip()).first()
        if campaign is None:
            raise InputError(
                f"No campaign named {campaign_name!r}: create it in the admin first, or pass --create-campaign."
            )
    return GenerationRun.objects.create(campaign=campaign, config=config.as_dict(), created_by=created_by)


def prompts_upload_save(*, upload: UploadedFile) -> Path:
    """Keep an uploaded prompts file for the background worker, once every row of it checks out."""
    prompts_read(upload.file, name=upload.name)
    upload.seek(0)
    folder = Path(settings.DATA_DIR) / "generation" / "prompts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{Path(upload.name).suffix.lower()}"
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return path


def generation_run_start(
    *, campaign_name: str, config: RunConfig, created_by: AbstractBaseUser | None = None
) -> GenerationRun:
    """Create a run and hand it to the background worker (`manage.py db_worker`) to execute."""
    from generation.tasks import generation_run_task

    with transaction.atomic():
        run = generation_run_create(campaign_name=campaign_name, config=config, created_by=created_by)
        job_enqueue(task=generation_run_task, job=run)
    run.refresh_from_db()
    return run


# ---------------------------------------------------------------------------------------------------------
# Executing a run


def _rows_to_generate(*, config: RunConfig, campaign: Campaign, summary: RunSummary) -> list[PromptRow]:
    rows: dict[str, PromptRow] = {}
    if config.prompts_file:
        prompt_file = prompts_read_path(config.prompts_file, file_format=config.file_format)
        summary.repeated_in_file = prompt_file.repeated
        rows = {row.content_hash: row for row in prompt_file.rows}
    if config.fill_campaign:
        for prompt in prompts_pending(campaign=campaign):
            row = PromptRow(
                where=f"campaign {campaign.name!r}, prompt {prompt.pk}",
                messages=prompt.messages,
                system=prompt.system,
                metadata=prompt.metadata,
            )
            rows.setdefault(row.content_hash, row)
    summary.prompts = len(rows)
    done = prompt_hashes_done(campaign=campaign)
    summary.already_done = sum(1 for key in rows if key in done)
    return [row for key, row in rows.items() if key not in done]


@dataclass
class _PromptWork:
    """One prompt's slots while they are sampled: the latest result, seed and attempt of each."""

    row: PromptRow
    results: list[GenerationResult | None]
    seeds: list[int]
    attempts: list[int]

    @property
    def too_long(self) -> bool:
        return any(r is not None and r.finish_reason == PROMPT_TOO_LONG for r in self.results)

    @property
    def failure(self) -> str:
        """Why a request of this prompt failed ("" if none did): the prompt waits for a rerun."""
        return next((r.error for r in self.results if r is not None and r.finish_reason == REQUEST_FAILED), "")

    @property
    def texts(self) -> list[str]:
        return [r.text if r is not None else "" for r in self.results]


def _sample(pending: list[tuple[_PromptWork, Slot]], *, backends: dict[str, Backend], summary: RunSummary) -> None:
    """Sample the pending slots, each model's share in one call so that its engine batches them."""
    for side, backend in backends.items():
        share = [(work, slot) for work, slot in pending if slot.side == side]
        if not share:
            continue
        requests = [
            GenerationRequest(
                messages=work.row.messages, system=work.row.system, sampling=slot.sampling, seed=work.seeds[slot.index]
            )
            for work, slot in share
        ]
        started = time.perf_counter()
        results = backend.generate(requests)
        summary.generation_seconds += time.perf_counter() - started
        for (work, slot), result in zip(share, results, strict=True):
            work.results[slot.index] = result
            summary.tokens_generated += result.completion_tokens


def _works_new(rows: list[PromptRow], *, config: RunConfig, slots: list[Slot]) -> list[_PromptWork]:
    return [
        _PromptWork(
            row=row,
            results=[None] * len(slots),
            seeds=[slot_seed(base_seed=config.seed, content_hash=row.content_hash, slot=s.index) for s in slots],
            attempts=[0] * len(slots),
        )
        for row in rows
    ]


def _works_sample(
    works: list[_PromptWork],
    *,
    config: RunConfig,
    slots: list[Slot],
    backends: dict[str, Backend],
    summary: RunSummary,
) -> None:
    """Sample the given slots of every prompt, then resample those that came back empty or duplicate (of any
    slot already sampled) up to max_resamples."""
    indices = {slot.index for slot in slots}
    by_index = {slot.index: slot for slot in slots}
    pending = [(work, slot) for work in works for slot in slots]
    for attempt in range(config.max_resamples + 1):
        _sample(pending, backends=backends, summary=summary)
        if attempt == config.max_resamples:
            break
        pending = []
        for work in works:
            if work.too_long or work.failure:
                continue
            for index in slots_to_resample(work.texts):
                if index not in indices:  # another model's slot, not sampled yet
                    continue
                work.attempts[index] = attempt + 1
                work.seeds[index] = slot_seed(
                    base_seed=config.seed, content_hash=work.row.content_hash, slot=index, attempt=attempt + 1
                )
                pending.append((work, by_index[index]))
        if not pending:
            break
        summary.resamples += len(pending)


def _batch_store(
    works: list[_PromptWork],
    *,
    run: GenerationRun,
    config: RunConfig,
    slots: list[Slot],
    backends: dict[str, Backend],
    summary: RunSummary,
) -> None:
    """Write the batch's prompts, candidates and comparisons, and the run's counts, in one transaction."""
    campaign = run.campaign
    with transaction.atomic():
        for work in works:
            row = work.row
            if work.failure:
                summary.failed += 1
                summary.first_failure = summary.first_failure or f"{row.where}: {work.failure}"
                continue
            if work.too_long:
                tokens = max(r.prompt_tokens for r in work.results if r is not None)
                summary.skipped_too_long += 1
                summary.skip(row, "prompt too long for the model's context" + (f" ({tokens} tokens)" if tokens else ""))
                continue
            bad = set(slots_to_resample(work.texts))
            usable = [slot for slot in slots if slot.index not in bad]
            pairs = pairs_choose(
                slots=usable,
                two_models=config.two_models,
                mode=config.pairs,
                per_prompt=config.pairs_per_prompt,
                seed=derive_seed(config.seed, row.content_hash, "pairs"),
            )
            if not pairs:
                if any(not text_key(work.texts[i]) for i in bad):
                    summary.skipped_empty += 1
                    summary.skip(row, f"empty responses after {config.max_resamples} resample(s)")
                else:
                    summary.skipped_duplicate += 1
                    summary.skip(row, f"identical responses after {config.max_resamples} resample(s)")
                continue
            prompt, created = prompt_get_or_create(
                campaign=campaign, prompt=row.messages, system=row.system, metadata=row.metadata
            )
            if not created:
                # Another run on this campaign may be storing the same prompt right now: wait for it.
                prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
            if not created and prompt.comparisons.exists():
                summary.already_done += 1  # another run finished it meanwhile
                continue
            candidates: dict[int, Candidate] = {}
            for slot in usable:
                result = work.results[slot.index]
                assert result is not None
                backend = backends[slot.side]
                candidates[slot.index] = candidate_create(
                    prompt=prompt,
                    text=result.text,
                    model_name=backend.model_name,
                    model_revision=backend.model_revision,
                    backend=backend.name,
                    sampling_params=slot.sampling.as_dict(),
                    seed=work.seeds[slot.index],
                    prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.completion_tokens,
                    finish_reason=result.finish_reason,
                    prompt_format=result.prompt_format,
                    prompt_text=result.prompt_text,
                    metadata={"slot": slot.index, "model": slot.side, "attempt": work.attempts[slot.index]},
                )
            GeneratedCandidate.objects.bulk_create(
                GeneratedCandidate(candidate=candidate, run=run) for candidate in candidates.values()
            )
            for a, b in pairs:
                comparison_create(
                    candidate_a=candidates[a],
                    candidate_b=candidates[b],
                    metadata={"generation_run": run.pk, "slots": [a, b]},
                )
            summary.generated += 1
            summary.candidates += len(candidates)
            summary.truncated += sum(candidate.is_truncated for candidate in candidates.values())
            summary.comparisons += len(pairs)
        run.stats = summary.as_dict()
        run.save(update_fields=["stats"])


Engines = Callable[[str, EngineOptions], Backend]  # (model, options) -> a started engine


def engines_default(model: str, options: EngineOptions) -> Backend:
    """The engines of runs started from a page or the API: the openai backend reaches allowed servers only."""
    return backend_load(backend=options.backend, model=model, options=options)


def engines_any_server(model: str, options: EngineOptions) -> Backend:
    """The engines of `generate_pairs`, whose user holds the key: the openai backend may reach any server."""
    return backend_load(backend=options.backend, model=model, options=options, any_server=True)


def _backend_load(config: RunConfig, side: str, engines: Engines) -> Backend:
    if side == "a":
        return engines(config.model, config.engine_options())
    return engines(config.model_b, config.engine_options_b())


def generation_run_execute(
    *,
    run: GenerationRun,
    backends: dict[str, Backend] | None = None,
    engines: Engines = engines_default,
    progress: Progress | None = None,
) -> RunSummary:
    """Generate for every prompt of the run that is not done yet, batch by batch, and return the counts.

    `backends` ({"a": ..., "b": ...}) reuses engines already started (tests, benchmarks); by default the
    run starts its own with `engines` (model, options) from its configuration and stops them at the end:
    with two models (tuned vs base), one after the other, so that they never share a GPU's memory. On any
    error, Ctrl-C included, the run is marked failed with the message; the batches committed so far stay.
    """
    config = RunConfig.from_dict(run.config)
    summary = RunSummary()
    started = time.perf_counter()

    def counts() -> dict[str, Any]:
        summary.elapsed_seconds = time.perf_counter() - started
        return {"stats": summary.as_dict()}

    owned: dict[str, Backend] = {}
    with job_running(run, interrupted="Interrupted: run it again to continue where it stopped.", fail_fields=counts):
        try:
            rows = _rows_to_generate(config=config, campaign=run.campaign, summary=summary)
            total = len(rows)
            if progress:
                progress(0, total)
            slots = slots_plan(
                n=config.n,
                temperatures=config.temperatures,
                top_ps=config.top_p,
                max_tokens=config.max_tokens,
                two_models=config.two_models,
            )
            if rows and backends is None and config.two_models:
                # A tuned-vs-base run: one engine at a time (on a GPU two would share its memory), every
                # prompt through model A, then through model B, then stored batch by batch.
                works = _works_new(rows, config=config, slots=slots)
                backends = {}
                for side in ("a", "b"):
                    backends[side] = _backend_load(config, side, engines)
                    try:
                        side_slots = [slot for slot in slots if slot.side == side]
                        _works_sample(works, config=config, slots=side_slots, backends=backends, summary=summary)
                    finally:
                        backends[side].close()
                for start in range(0, total, config.batch_size):
                    batch = works[start : start + config.batch_size]
                    _batch_store(batch, run=run, config=config, slots=slots, backends=backends, summary=summary)
                    if progress:
                        progress(start + len(batch), total)
            else:
                if rows and backends is None:
                    backends = owned = {"a": _backend_load(config, "a", engines)}
                for start in range(0, total, config.batch_size):
                    works = _works_new(rows[start : start + config.batch_size], config=config, slots=slots)
                    _works_sample(works, config=config, slots=slots, backends=backends, summary=summary)
                    summary.elapsed_seconds = time.perf_counter() - started
                    _batch_store(works, run=run, config=config, slots=slots, backends=backends, summary=summary)
                    if progress:
                        progress(start + len(works), total)
        finally:
            for backend in owned.values():
                backend.close()
        if summary.failed:  # what did come back is stored: the run fails and says what to do
            raise BackendError(
                f"{summary.failed} prompt(s) got no answer: a request failed ({summary.first_failure}). The "
                f"{summary.generated} that did are stored; run the same command again to retry the rest."
            )
        job_succeed(run, **counts())
    return summary
