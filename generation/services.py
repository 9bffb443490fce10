"""Writes for generation: create a run, execute it (sample candidates, store them with their comparisons), start it
in the background.

A run keeps the engine fed: up to IN_FLIGHT_PROMPTS prompts' requests are in it at once (vLLM schedules them
all, continuous batching), topped up as prompts finish. A prompt is finished once all its slots are back, its
empty, duplicate or unstorable responses resampled; finished prompts are written `batch_size` at a time, or
every COMMIT_SECONDS, each write one transaction holding whole prompts only (prompts, candidates, comparisons
and the run's counts, in bulk). A prompt is done once it has comparisons in the campaign, and a run skips
prompts that are done: rerunning after a crash or Ctrl-C continues where it stopped, and a crash loses only the
prompts in the engine and those finished since the last write (on an error that is not the database's, Ctrl-C
included, those are written before the run stops).
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
from django.db import DatabaseError, transaction

from annotator.models import Campaign, Candidate, Comparison, Prompt
from annotator.services import (
    PromptSpec,
    campaign_get_or_create,
    candidates_create,
    comparisons_create,
    prompts_get_or_create,
)
from core.errors import InputError
from core.jobs import job_enqueue, job_running, job_succeed
from generation.models import GeneratedCandidate, GenerationRun
from generation.prompts import PromptRow, prompts_read, prompts_read_path
from generation.run_config import RunConfig
from generation.sampling import (
    Slot,
    derive_seed,
    pairs_choose,
    slot_seed,
    slots_plan,
    slots_to_resample,
    text_key,
    text_unstorable,
)
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
    results_stream,
)

MAX_SKIPS_LISTED = 50
# Prompts whose requests are in the engine at once: enough for vLLM's scheduler to keep its batch full (on a
# GPU, thousands of sequences), few enough that adding them does not hold up the first results.
IN_FLIGHT_PROMPTS = 4096
COMMIT_SECONDS = 5.0  # finished prompts are written at least this often, and every batch_size of them
Progress = Callable[[int, int], None]  # (prompts handled so far, prompts to handle)


@dataclass
class RunSummary:
    prompts: int = 0  # distinct prompts in the file (and the campaign, with fill_campaign)
    generated: int = 0  # prompts that got their candidates and comparisons in this run
    already_done: int = 0  # prompts that had comparisons already (an earlier or concurrent run)
    skipped_too_long: int = 0  # the prompt leaves no room in the model's context
    skipped_duplicate: int = 0  # fewer than two distinct responses after max_resamples
    skipped_empty: int = 0  # empty responses after max_resamples left nothing to pair
    skipped_unstorable: int = 0  # responses the database cannot store (NUL, lone surrogate) left nothing to pair
    failed: int = 0  # a request failed (a server's error): not stored, a rerun samples the prompt again
    first_failure: str = ""
    repeated_in_file: int = 0  # rows whose prompt appeared earlier in the file
    candidates: int = 0
    truncated: int = 0  # stored candidates cut off at max_tokens or the context (finish_reason "length")
    comparisons: int = 0
    resamples: int = 0  # candidates sampled again because they were empty, duplicates or not storable
    unstorable: int = 0  # responses left out at the end because the database could not store them as they are
    tokens_generated: int = 0  # every generated token, resamples included
    generation_seconds: float = 0.0  # time spent waiting for the engine's results (not storing them)
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
    """One prompt's slots while they are sampled: the latest result, seed and attempt of each, how many of its
    requests are in the engine, and how many resample rounds it had."""

    row: PromptRow
    results: list[GenerationResult | None]
    seeds: list[int]
    attempts: list[int]
    waiting: int = 0
    rounds: int = 0

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

    def request(self, slot: Slot) -> GenerationRequest:
        return GenerationRequest(
            messages=self.row.messages, system=self.row.system, sampling=slot.sampling, seed=self.seeds[slot.index]
        )


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
    backend: Backend,
    summary: RunSummary,
    finished: Callable[[_PromptWork], None] | None = None,
) -> None:
    """Sample the given slots (one model's) of every prompt through the engine's stream, IN_FLIGHT_PROMPTS
    prompts in it at a time, topped up as they finish. Once all of a prompt's requests are back, its slots that
    came back empty, duplicate (of any slot already sampled) or not storable are sent again with the next
    attempt's seed, up to max_resamples rounds; then the prompt is `finished`."""
    indices = {slot.index for slot in slots}
    by_index = {slot.index: slot for slot in slots}
    stream = results_stream(backend, chunk=config.batch_size * len(slots))
    waiting = iter(enumerate(works))
    open_works: dict[int, _PromptWork] = {}

    def feed() -> None:
        while len(open_works) < IN_FLIGHT_PROMPTS:
            key, work = next(waiting, (None, None))
            if work is None:
                return
            open_works[key] = work
            work.waiting = len(slots)
            for slot in slots:
                stream.add((key, slot.index), work.request(slot))

    try:
        feed()
        results = stream.results()
        while True:
            started = time.perf_counter()
            item = next(results, None)
            summary.generation_seconds += time.perf_counter() - started
            if item is None:
                break
            (key, index), result = item
            work = open_works[key]
            work.results[index] = result
            work.waiting -= 1
            summary.tokens_generated += result.completion_tokens
            if work.waiting:
                continue
            again = []
            if not (work.too_long or work.failure) and work.rounds < config.max_resamples:
                again = [i for i in slots_to_resample(work.texts) if i in indices]  # not another model's slot
            if again:
                work.rounds += 1
                summary.resamples += len(again)
                work.waiting = len(again)
                for i in again:
                    work.attempts[i] = work.rounds
                    work.seeds[i] = slot_seed(
                        base_seed=config.seed, content_hash=work.row.content_hash, slot=i, attempt=work.rounds
                    )
                    stream.add((key, i), work.request(by_index[i]))
                continue
            del open_works[key]
            if finished:
                finished(work)
            feed()
    finally:
        stream.close()


class _Store:
    """Finished prompts, written `batch_size` at a time or every COMMIT_SECONDS, whichever comes first, each
    write one transaction: a crash loses only the prompts in the engine and those finished since the last one."""

    def __init__(
        self,
        *,
        run: GenerationRun,
        config: RunConfig,
        slots: list[Slot],
        backends: dict[str, Backend],
        summary: RunSummary,
        progress: Progress | None,
        total: int,
    ) -> None:
        self.run, self.config, self.slots, self.backends, self.summary = run, config, slots, backends, summary
        self.progress, self.total = progress, total
        self.pending: list[_PromptWork] = []
        self.handled = 0
        self.last = time.monotonic()

    def add(self, work: _PromptWork) -> None:
        self.pending.append(work)
        if len(self.pending) >= self.config.batch_size or time.monotonic() - self.last >= COMMIT_SECONDS:
            self.flush()

    def flush(self) -> None:
        works, self.pending = self.pending, []
        if works:
            _works_store(
                works, run=self.run, config=self.config, slots=self.slots, backends=self.backends, summary=self.summary
            )
            self.handled += len(works)
            if self.progress:
                self.progress(self.handled, self.total)
        self.last = time.monotonic()


def _works_store(
    works: list[_PromptWork],
    *,
    run: GenerationRun,
    config: RunConfig,
    slots: list[Slot],
    backends: dict[str, Backend],
    summary: RunSummary,
) -> None:
    """Write the prompts, candidates and comparisons of finished prompts, and the run's counts, in one
    transaction, in bulk. A prompt's candidates and comparisons go in together or not at all."""
    campaign = run.campaign
    keep: list[tuple[_PromptWork, list[Slot], list[tuple[int, int]]]] = []
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
        texts = work.texts
        bad = set(slots_to_resample(texts))
        unstorable = [problem for i in sorted(bad) if (problem := text_unstorable(texts[i]))]
        summary.unstorable += len(unstorable)
        usable = [slot for slot in slots if slot.index not in bad]
        pairs = pairs_choose(
            slots=usable,
            two_models=config.two_models,
            mode=config.pairs,
            per_prompt=config.pairs_per_prompt,
            seed=derive_seed(config.seed, row.content_hash, "pairs"),
        )
        if pairs:
            keep.append((work, usable, pairs))
        elif any(not text_key(texts[i]) for i in bad):
            summary.skipped_empty += 1
            summary.skip(row, f"empty responses after {config.max_resamples} resample(s)")
        elif unstorable:
            summary.skipped_unstorable += 1
            summary.skip(row, f"{unstorable[0]}, still after {config.max_resamples} resample(s)")
        else:
            summary.skipped_duplicate += 1
            summary.skip(row, f"identical responses after {config.max_resamples} resample(s)")
    with transaction.atomic():
        prompts = prompts_get_or_create(
            campaign=campaign,
            prompts=[PromptSpec(prompt=w.row.messages, system=w.row.system, metadata=w.row.metadata) for w, *_ in keep],
        )
        existing = sorted(prompt.pk for prompt, created in prompts if not created)
        done: set[int] = set()
        if existing:
            # Another run on this campaign may be storing the same prompts right now: wait for it.
            list(Prompt.objects.select_for_update().filter(pk__in=existing).order_by("pk").values_list("pk"))
            done = set(Comparison.objects.filter(prompt_id__in=existing).values_list("prompt_id", flat=True))
        todo = []
        for (work, usable, pairs), (prompt, _) in zip(keep, prompts, strict=True):
            if prompt.pk in done:
                summary.already_done += 1  # another run finished it meanwhile
                continue
            candidates = {}
            for slot in usable:
                result = work.results[slot.index]
                assert result is not None
                backend = backends[slot.side]
                candidates[slot.index] = Candidate(
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
            todo.append((candidates, pairs))
        candidates_create(candidates=[candidate for candidates, _ in todo for candidate in candidates.values()])
        GeneratedCandidate.objects.bulk_create(
            (GeneratedCandidate(candidate=c, run=run) for candidates, _ in todo for c in candidates.values()),
            batch_size=500,
        )
        comparisons_create(
            pairs=[
                (candidates[a], candidates[b], {"generation_run": run.pk, "slots": [a, b]})
                for candidates, pairs in todo
                for a, b in pairs
            ]
        )
        for candidates, pairs in todo:
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
    """Generate for every prompt of the run that is not done yet, storing prompts as they finish, and return
    the counts.

    `backends` ({"a": ..., "b": ...}) reuses engines already started (tests, benchmarks); by default the
    run starts its own with `engines` (model, options) from its configuration and stops them at the end:
    with two models (tuned vs base), one after the other, so that they never share a GPU's memory. On any
    error, Ctrl-C included, the run is marked failed with the message; what was written so far stays.
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
            store = _Store(
                run=run, config=config, slots=slots, backends={}, summary=summary, progress=progress, total=total
            )
            works = _works_new(rows, config=config, slots=slots)
            if rows and config.two_models:
                # A tuned-vs-base run: one engine at a time (on a GPU two would share its memory), every prompt
                # through model A, then through model B; then stored.
                for side in ("a", "b"):
                    if backends is None or side not in backends:
                        owned[side] = store.backends[side] = _backend_load(config, side, engines)
                    else:
                        store.backends[side] = backends[side]
                    side_slots = [slot for slot in slots if slot.side == side]
                    try:
                        _works_sample(
                            works, config=config, slots=side_slots, backend=store.backends[side], summary=summary
                        )
                    finally:
                        if side in owned:
                            owned.pop(side).close()
                for work in works:
                    store.add(work)
                store.flush()
            elif rows:
                if backends is None:
                    owned["a"] = _backend_load(config, "a", engines)
                store.backends = backends or owned
                try:
                    _works_sample(
                        works,
                        config=config,
                        slots=slots,
                        backend=store.backends["a"],
                        summary=summary,
                        finished=store.add,
                    )
                except BaseException as error:
                    if not isinstance(error, DatabaseError):
                        store.flush()  # what did finish is kept
                    raise
                store.flush()
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
