"""Writes for rounds: start a series and its rounds, advance a round one step at a time, run a step.

    round_advance       a queued RoundStep for the round's current step, handed to the worker after commit
    round_step_execute  the step's work through the existing services, then the round moves to the next step
    round_run           every step here, one after another (the command line, tests, proofs)

The steps, in order, and the service each one runs:

    generate       generation_run_create / generation_run_execute: the policy's candidates, in the round's campaign
    label          people judge (nothing runs: the step waits for them), or quality's judge_pairs_run
    export         dataset_export_create / dataset_export_run, counting the verdicts of who labelled
    train          training's dpo_run on the export, from the policy; its output is the tuned model
    eval_generate  a generation run of the tuned model against the policy (`--model TUNED --model-b POLICY`)
    eval_label     people or the judge on the evaluation campaign, then the quality report's win rate

Every step is idempotent and resumable: a retry reuses what the failed attempt finished (a succeeded
generation run, export or training run) and goes on where it stopped otherwise (generation skips the prompts
that have pairs, the judge the pairs it judged, training resumes from its last checkpoint).
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotator.models import Campaign, Comparison
from annotator.services import campaign_create
from core.checksums import file_sha256
from core.errors import ConflictError, InputError
from core.jobs import job_enqueue, job_running, job_succeed
from core.models import JobStatus
from exports.services import dataset_export_create, dataset_export_run
from generation.run_config import RunConfig
from generation.services import generation_run_create, generation_run_execute
from llm.provenance import model_revision_of
from quality.judging import judge_template_load
from quality.services import judge_pairs_run, judge_user_get_or_create
from rounds.engines import Engines, engines_default
from rounds.models import Round, RoundStep, Series, Step, step_after
from rounds.options import PEOPLE, SeriesOptions
from rounds.selectors import (
    round_active_step,
    round_label_progress,
    round_labeller,
    round_waits_for_people,
    round_win_rate,
)
from training.resume import checkpoints
from training.services import dpo_run, dpo_run_prepare, training_run_create

# ---------------------------------------------------------------------------------------------------------
# Series and rounds


def series_start(*, name: str, options: SeriesOptions, created_by: AbstractBaseUser | None = None) -> Round:
    """Check the settings (models, both prompts files, every service's rules), record the series, start round 1."""
    name = name.strip()
    if not name:
        raise InputError("A series needs a name.")
    options.validate()
    # Files every round reads again, from the worker's folder too: kept as absolute paths.
    files = ("prompts_file", "eval_prompts_file", "judge_template")
    options = replace(options, **{f: str(Path(getattr(options, f)).resolve()) for f in files if getattr(options, f)})
    with transaction.atomic():
        if Series.objects.filter(name=name).exists():
            raise ConflictError(f"A series named {name!r} exists already: start its next round, or pick another name.")
        series = Series.objects.create(name=name, options=options.as_dict(), created_by=created_by)
        return round_start(series=series, created_by=created_by)


def _sha256_of(path: str) -> str:
    return file_sha256(Path(path))


def round_start(*, series: Series, created_by: AbstractBaseUser | None = None) -> Round:
    """The series' next round, with its two campaigns. Round 1 samples from the base model; round k+1 from round
    k's tuned model, once round k is done."""
    options = series.series_options
    with transaction.atomic():
        last = Round.objects.select_for_update().filter(series=series).order_by("-number").first()
        if last is not None and not last.is_done:
            raise ConflictError(
                f"Round {last.number} of {series.name!r} is at {Step(last.step).label.lower()}, not done: finish it "
                f"first, since round {last.number + 1} samples from its tuned model."
            )
        number = last.number + 1 if last else 1
        policy = last.tuned_model if last else options.base_model
        title = f"{series.name} · round {number}"
        common = {"guidelines": options.guidelines, "overlap": options.overlap, "created_by": created_by}
        return Round.objects.create(
            series=series,
            number=number,
            policy_model=policy,
            policy_revision=last.tuned_revision if last else model_revision_of(policy),
            prompts_sha256=_sha256_of(options.prompts_file),
            eval_prompts_sha256=_sha256_of(options.eval_prompts_file),
            campaign=campaign_create(name=title, description=f"The pairs of {title}.", **common),
            eval_campaign=campaign_create(
                name=f"{title} · evaluation",
                description=f"The tuned model of {title} against its policy, blind.",
                **common,
            ),
            created_by=created_by,
        )


# ---------------------------------------------------------------------------------------------------------
# Advancing


def round_step_create(
    *, round: Round, created_by: AbstractBaseUser | None = None, anyway: bool = False, chain: bool = False
) -> RoundStep:
    """A queued attempt at the round's current step, if it may start now; refusals say what to wait for.

    `anyway`: people have judged what they will; go on with that (people only) or let the judge fill in."""
    with transaction.atomic():
        round = (
            Round.objects.select_for_update(of=("self",))
            .select_related("series", "campaign", "eval_campaign")
            .get(pk=round.pk)
        )
        if round.is_done:
            raise ConflictError(f"{round} is done: start round {round.number + 1}.")
        active = round_active_step(round=round)
        if active is not None:
            raise ConflictError(
                f"{round}: {active.get_step_display().lower()} is {active.status} (round step {active.pk}). "
                "Wait for it to finish."
            )
        if not anyway and round_labeller(round=round) == PEOPLE and round_waits_for_people(round=round):
            progress = round_label_progress(round=round)
            assert progress is not None
            raise ConflictError(
                f"{round}: {progress.text}; {progress.left} still wait for people. Let them finish, or go on with "
                "what is judged."
            )
        return RoundStep.objects.create(round=round, step=round.step, chain=chain, created_by=created_by)


def round_advance(
    *, round: Round, created_by: AbstractBaseUser | None = None, anyway: bool = False, chain: bool = False
) -> RoundStep:
    """Queue the round's current step for the background worker (`manage.py db_worker`). With `chain`, each
    step that succeeds queues the next, until the round is done or a step needs people."""
    from rounds.tasks import round_step_task

    with transaction.atomic():
        job = round_step_create(round=round, created_by=created_by, anyway=anyway, chain=chain)
        job_enqueue(task=round_step_task, job=job)
    job.refresh_from_db()
    return job


def round_step_execute(*, job: RoundStep, engines: Engines | None = None) -> RoundStep:
    """Run a queued step through its service, record what it made, and move the round to the next step.

    On any error the step is marked failed with the message (the round stays at the step: advance again to
    retry) and the error goes on."""
    round = Round.objects.select_related("series").get(pk=job.round_id)
    work = STEP_WORK[Step(job.step)]
    with job_running(job, interrupted="Interrupted: advance the round again to go on with this step."):
        result = work(round=round, job=job, engines=engines or engines_default)
        with transaction.atomic():
            job_succeed(job, result=result)
            round.step = step_after(job.step)
            round.finished_at = timezone.now() if round.step == Step.DONE else None
            round.save(update_fields=["step", "finished_at"])
    if job.chain and not round.is_done and not round_waits_for_people(round=round):
        round_advance(round=round, created_by=job.created_by, chain=True)
    return job


def round_run(
    *,
    round: Round,
    engines: Engines | None = None,
    people_done: bool = False,
    created_by: AbstractBaseUser | None = None,
) -> Round:
    """Run the round's steps here, one after another, until it is done or a step waits for people (unless
    `people_done`: go on with what they judged, the judge filling in where it labels too). A failed step raises.

    `engines` starts the models (default `backend_load`); pass one that returns fakes, or engines started once
    (rounds.engines.KeptOpen), to drive a whole round from a test."""
    while True:
        round.refresh_from_db()
        if round.is_done or (round_waits_for_people(round=round) and not people_done):
            return round
        job = round_step_create(round=round, created_by=created_by, anyway=people_done)
        round_step_execute(job=job, engines=engines)


def series_run(
    *,
    series: Series,
    rounds: int,
    engines: Engines | None = None,
    people_done: bool = False,
    created_by: AbstractBaseUser | None = None,
) -> list[Round]:
    """Run the series here until it has `rounds` rounds done (starting the next ones), or one waits for people."""
    while True:
        last = series.rounds.order_by("-number").first()
        if last is None or last.is_done:
            if last is not None and last.number >= rounds:
                break
            last = round_start(series=series, created_by=created_by)
        if not round_run(round=last, engines=engines, people_done=people_done, created_by=created_by).is_done:
            break
    return list(series.rounds.order_by("number"))


# ---------------------------------------------------------------------------------------------------------
# The steps


def _prompts_check(path: str, recorded: str, *, what: str, round: Round) -> None:
    """The prompts file must be the one the round started with: its checksum pins it."""
    if not Path(path).is_file():
        raise InputError(f"The {what} file {path} is gone: put it back (sha256 {recorded}), or start a new series.")
    now = _sha256_of(path)
    if now != recorded:
        raise InputError(
            f"The {what} file {path} changed since {round} started (sha256 {recorded[:12]}... then, {now[:12]}... "
            "now): put the original back, or start a new series with the new file."
        )


def _generation(
    *, round: Round, field: str, campaign: Campaign, config: RunConfig, job: RoundStep, engines: Engines
) -> dict[str, Any]:
    """Generate into the campaign (a retry skips the prompts that have pairs); link the run as `field`. The
    run starts the engines it needs through `engines`, one at a time, and stops them."""
    run = getattr(round, field)
    if run is None or run.status != JobStatus.SUCCEEDED:
        run = generation_run_create(campaign_name=campaign.name, config=config, created_by=job.created_by)
        setattr(round, field, run)
        round.save(update_fields=[field])
        generation_run_execute(run=run, engines=engines)
    pairs = Comparison.objects.filter(campaign=campaign).count()
    if not pairs:
        skips = "; ".join(run.stats.get("skips", [])[:3]) or "no prompt was done"
        raise InputError(
            f"Generation run {run.pk} made no pair in {campaign.name!r} ({skips}). Check the model and the "
            "sampling settings (temperatures, max_tokens), then start a new series."
        )
    stats = run.stats
    return {"generation_run": run.pk, "pairs": pairs, **{k: stats.get(k, 0) for k in ("prompts", "generated")}}


def _generate(*, round: Round, job: RoundStep, engines: Engines) -> dict[str, Any]:
    options = round.series.series_options
    _prompts_check(options.prompts_file, round.prompts_sha256, what="prompts", round=round)
    config = options.generation_config(model=round.policy_model)
    return _generation(
        round=round,
        field="generation_run",
        campaign=round.campaign,
        config=config,
        job=job,
        engines=engines,
    )


def _judge(*, round: Round, campaign: Campaign, labeller: str, engines: Engines) -> dict[str, Any]:
    """The AI judge on every pair of the campaign it has not judged (people-only: nothing to run)."""
    result: dict[str, Any] = {"labelled_by": labeller}
    if labeller != PEOPLE:
        options = round.series.series_options
        template = judge_template_load(options.judge_template or None)
        judge = judge_user_get_or_create(model=options.judge_model)
        result["judge"] = judge.get_username()
        if Comparison.objects.filter(campaign=campaign).exclude(judgments__annotator=judge).exists():
            backend = engines(options.judge_model, options.engine_options())
            try:
                summary = judge_pairs_run(campaign=campaign, backend=backend, template=template, judge=judge)
            finally:
                backend.close()
            counts = ("judged", "consistent", "inconsistent", "unparseable_pairs", "too_long")
            result.update({name: getattr(summary, name) for name in counts})
            if summary.unparseable_pairs:
                result["warning"] = (
                    f"{summary.unparseable_pairs} of {summary.judged} pair(s) got no verdict: the judge's answers "
                    "could not be read (its raw answers are on the campaign's quality page)."
                )
    return result


def _label(*, round: Round, job: RoundStep, engines: Engines) -> dict[str, Any]:
    result = _judge(round=round, campaign=round.campaign, labeller=round_labeller(round=round), engines=engines)
    progress = round_label_progress(round=round)
    return {**result, "pairs": progress.total, "by_people": progress.by_people, "by_judge": progress.by_judge}


def _export(*, round: Round, job: RoundStep, engines: Engines) -> dict[str, Any]:
    export = round.export
    if export is None or export.status != JobStatus.SUCCEEDED:
        options = round.series.series_options
        export = dataset_export_create(
            campaign=round.campaign, options=options.export_options(), created_by=job.created_by
        )
        round.export = export
        round.save(update_fields=["export"])
        dataset_export_run(export=export)
    files = {name: entry.get("sha256") for name, entry in export.files.items()}
    return {"export": export.pk, "rows": export.stats.get("rows", {}), "sha256": files}


def _train(*, round: Round, job: RoundStep, engines: Engines) -> dict[str, Any]:
    """DPO from the policy on the round's export; a failed run with a checkpoint resumes, into its folder."""
    options = round.series.series_options
    run = round.training_run
    data = str(round.export_id)
    if run is not None and run.status != JobStatus.SUCCEEDED and checkpoints(Path(run.output_dir)):
        config = options.training_config(data=data, model=round.policy_model, output=run.output_dir)
        run, _ = dpo_run(config=config, resume=True)
    elif run is None or run.status != JobStatus.SUCCEEDED:
        folder = Path(settings.DATA_DIR) / "rounds" / f"series-{round.series_id}" / f"round-{round.number}"
        output = folder / "model" if not (folder / "model").exists() else folder / f"model-{job.pk}"
        config = options.training_config(data=data, model=round.policy_model, output=str(output))
        run = training_run_create(prepared=dpo_run_prepare(config=config), created_by=job.created_by)
        round.training_run = run
        round.save(update_fields=["training_run"])
        dpo_run(config=config, run=run)
    assert run is not None
    run.refresh_from_db()
    round.training_run = run
    round.tuned_model = run.output_dir
    round.tuned_revision = model_revision_of(run.output_dir)
    round.save(update_fields=["training_run", "tuned_model", "tuned_revision"])
    return {
        "training_run": run.pk,
        "global_step": run.global_step,
        "validation_reward_accuracy": run.validation_reward_accuracy,
        "tuned_model": run.output_dir,
    }


def _eval_generate(*, round: Round, job: RoundStep, engines: Engines) -> dict[str, Any]:
    options = round.series.series_options
    _prompts_check(options.eval_prompts_file, round.eval_prompts_sha256, what="evaluation prompts", round=round)
    config = options.eval_generation_config(tuned=round.tuned_model, policy=round.policy_model)

    return _generation(
        round=round, field="eval_generation_run", campaign=round.eval_campaign, config=config, job=job, engines=engines
    )


def _eval_label(*, round: Round, job: RoundStep, engines: Engines) -> dict[str, Any]:
    labeller = round_labeller(round=round)
    result = _judge(round=round, campaign=round.eval_campaign, labeller=labeller, engines=engines)
    win = round_win_rate(round=round)
    if win is None:
        round.win_rate = round.win_rate_low = round.win_rate_high = None
        round.eval_pairs = 0
        result["warning"] = "No evaluation pair has a verdict yet: no win rate."
    else:
        round.win_rate, (round.win_rate_low, round.win_rate_high) = win["win_rate"], win["ci95"]
        round.eval_pairs = win["comparisons"]
        result.update({k: win[k] for k in ("win_rate", "comparisons", "wins", "ties", "losses")})
        result["ci95"] = list(win["ci95"])
    round.save(update_fields=["win_rate", "win_rate_low", "win_rate_high", "eval_pairs"])
    return result


STEP_WORK: dict[Step, Callable[..., dict[str, Any]]] = {
    Step.GENERATE: _generate,
    Step.LABEL: _label,
    Step.EXPORT: _export,
    Step.TRAIN: _train,
    Step.EVAL_GENERATE: _eval_generate,
    Step.EVAL_LABEL: _eval_label,
}
