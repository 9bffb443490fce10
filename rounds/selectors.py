"""Reads for rounds: how far a round's labelling is, where each step stands and what is left to do, the
win rates of a series.

The win rate is the quality report's (quality.report: per evaluation pair the majority verdict, people's
where they judged, a tie or split as half; a 95% interval), read for the round's tuned model against its policy.
"""

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from annotator.models import Campaign, Comparison, JudgeSource
from core.models import JobStatus
from quality.report import campaign_quality_report
from rounds.models import STEPS, WORK_STEPS, Round, RoundStep, Series, Step
from rounds.options import AI, BOTH, PEOPLE

LABEL_STEPS = {Step.LABEL: "labelled_by", Step.EVAL_LABEL: "eval_labelled_by"}


def series_list() -> QuerySet[Series]:
    return Series.objects.select_related("created_by").prefetch_related("rounds").order_by("-created_at", "-id")


def rounds_of(*, series: Series) -> QuerySet[Round]:
    return series.rounds.select_related("training_run", "export").order_by("number")


def round_get(*, pk: int) -> Round | None:
    related = ("series", "campaign", "eval_campaign", "generation_run", "eval_generation_run", "export", "training_run")
    return Round.objects.select_related(*related).filter(pk=pk).first()


def round_latest_step(*, round: Round, step: str | None = None) -> RoundStep | None:
    """The latest attempt at `step` (default: the round's current step)."""
    return round.steps.filter(step=step or round.step).order_by("-created_at", "-id").first()


def round_active_step(*, round: Round) -> RoundStep | None:
    return round.steps.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).order_by("-id").first()


def round_labeller(*, round: Round, step: str | None = None) -> str | None:
    """Who labels at `step` (default: the current one): people, ai or both; None for a step that labels nothing."""
    name = LABEL_STEPS.get(step or round.step)
    return getattr(round.series.series_options, name) if name else None


# ---------------------------------------------------------------------------------------------------------
# Labelling


@dataclass(frozen=True)
class LabelProgress:
    labeller: str
    total: int  # pairs in the campaign
    by_people: int  # pairs with as many people's votes as the campaign's overlap, or settled with fewer
    by_judge: int  # pairs the AI judge has answered (with or without a readable verdict)
    by_either: int
    overlap: int

    @property
    def done(self) -> int:
        return {PEOPLE: self.by_people, AI: self.by_judge, BOTH: self.by_either}[self.labeller]

    @property
    def left(self) -> int:
        return self.total - self.done

    @property
    def text(self) -> str:
        each = f" ({self.overlap} people each)" if self.overlap > 1 else ""
        if self.labeller == PEOPLE:
            return f"{self.by_people} of {self.total} pairs judged by people{each}"
        if self.labeller == AI:
            return f"{self.by_judge} of {self.total} pairs judged by the AI judge"
        return f"{self.by_people} of {self.total} pairs judged by people{each}, {self.by_judge} by the AI judge"


def label_progress(*, campaign: Campaign, labeller: str) -> LabelProgress:
    pairs = Comparison.objects.filter(campaign=campaign)
    people = Q(human_votes__gte=campaign.overlap) | Q(settled=True)  # settled: adaptive overlap needs no more
    judge = Q(judgments__source=JudgeSource.AI)
    return LabelProgress(
        labeller=labeller,
        total=pairs.count(),
        by_people=pairs.filter(people).count(),
        by_judge=pairs.filter(judge).distinct().count(),
        by_either=pairs.filter(people | judge).distinct().count(),
        overlap=campaign.overlap,
    )


def round_label_progress(*, round: Round, step: str | None = None) -> LabelProgress | None:
    step = step or round.step
    labeller = round_labeller(round=round, step=step)
    campaign = round.campaign if step == Step.LABEL else round.eval_campaign
    if labeller is None or campaign is None:
        return None
    return label_progress(campaign=campaign, labeller=labeller)


def round_waits_for_people(*, round: Round) -> bool:
    """At a labelling step that people take part in: people-only with pairs left, or people then the judge
    (only staff can say people are done)."""
    labeller = round_labeller(round=round)
    if labeller == BOTH:
        return True
    if labeller == PEOPLE:
        progress = round_label_progress(round=round)
        return progress is not None and progress.left > 0
    return False


# ---------------------------------------------------------------------------------------------------------
# The win rate


def round_win_rate(*, round: Round) -> dict[str, Any] | None:
    """The quality report's head-to-head row of the tuned model against the round's policy, on the evaluation
    campaign: win_rate, ci95, comparisons, wins, ties, losses. None before anything was judged."""
    if round.eval_campaign is None or not round.tuned_model:
        return None
    rows = campaign_quality_report(campaign=round.eval_campaign)["model_win_rates"]
    return next((r for r in rows if r["model"] == round.tuned_model and r["opponent"] == round.policy_model), None)


def series_win_rates(*, series: Series) -> list[tuple[int, float, float, float]]:
    """(round number, win rate, low, high) of each round with a win rate."""
    rounds = series.rounds.filter(win_rate__isnull=False).order_by("number")
    return [(r.number, r.win_rate, r.win_rate_low, r.win_rate_high) for r in rounds]


# ---------------------------------------------------------------------------------------------------------
# Where a round stands


@dataclass(frozen=True)
class StepView:
    step: Step
    state: str  # done, queued, running, failed, waiting (for people), next, later
    detail: str  # what it made or how far it is: "4 of 6 prompts sampled; 4 pairs"
    job: RoundStep | None  # its latest attempt

    @property
    def label(self) -> str:
        return self.step.label


def _generation_detail(run: Any, campaign: Campaign | None) -> str:
    if run is None:
        return ""
    stats = run.stats or {}
    sampled = stats.get("generated", 0) + stats.get("already_done", 0)
    pairs = Comparison.objects.filter(campaign=campaign).count() if campaign else 0
    text = f"{sampled} of {stats.get('prompts', '?')} prompts sampled; {pairs} pairs"
    skipped = run.skipped_count
    return text + (f"; {skipped} prompt(s) skipped" if skipped else "")


def _step_detail(round: Round, step: Step) -> str:
    if step == Step.GENERATE:
        return _generation_detail(round.generation_run, round.campaign)
    if step == Step.EVAL_GENERATE:
        return _generation_detail(round.eval_generation_run, round.eval_campaign)
    if step in LABEL_STEPS:
        progress = round_label_progress(round=round, step=step)
        if progress is None or (step == Step.EVAL_LABEL and round.eval_generation_run is None):
            return ""
        text = progress.text
        if step == Step.EVAL_LABEL and round.win_rate is not None:
            text += f"; win rate {round.win_rate:.0%} (95% CI {round.win_rate_low:.0%}-{round.win_rate_high:.0%})"
        return text
    if step == Step.EXPORT and round.export is not None:
        rows = (round.export.stats or {}).get("rows")
        if rows:
            return f"{rows.get('train', 0)} train and {rows.get('validation', 0)} validation rows"
        return f"export {round.export.pk}: {round.export.get_status_display().lower()}"
    if step == Step.TRAIN and round.training_run is not None:
        run = round.training_run
        limit = run.config.get("max_steps")
        text = f"step {run.global_step}" + (f" of at most {limit}" if limit else "")
        accuracy = run.validation_reward_accuracy
        return text + (f"; validation reward accuracy {accuracy:.2f}" if accuracy is not None else "")
    return ""


def round_steps(*, round: Round) -> list[StepView]:
    latest: dict[str, RoundStep] = {}
    for job in round.steps.order_by("created_at", "id"):
        latest[job.step] = job
    current = STEPS.index(Step(round.step))
    views = []
    for index, step in enumerate(WORK_STEPS):
        job = latest.get(step)
        if index < current:
            state = "done"
        elif index > current:
            state = "later"
        elif job is not None and job.status != JobStatus.SUCCEEDED:
            state = job.status
        else:
            state = "waiting" if round_waits_for_people(round=round) else "next"
        detail = _step_detail(round, step)
        if job is not None and job.result.get("warning"):
            detail = f"{detail}. {job.result['warning']}" if detail else job.result["warning"]
        views.append(StepView(step=step, state=state, detail=detail, job=job))
    return views


def round_next(*, round: Round) -> str:
    """What is left to do, in a line: the next step, or what it waits for, or why it failed."""
    if round.is_done:
        return f"Done. Start round {round.number + 1}: it samples from this round's tuned model."
    step = Step(round.step)
    job = round_latest_step(round=round)
    if job is not None and job.is_active:
        return f"{step.label}: {job.get_status_display().lower()} in the background."
    if job is not None and job.status == JobStatus.FAILED:
        return f"{step.label} failed: {job.error} Retry it: it goes on from where it stopped."
    labeller = round_labeller(round=round)
    if labeller in (PEOPLE, BOTH):
        progress = round_label_progress(round=round)
        assert progress is not None
        if labeller == BOTH:
            left = progress.total - progress.by_people
            return (
                f"{step.label}: {progress.by_people} of {progress.total} pairs judged by people so far. When they "
                f"are done, advance: the AI judge fills in the {left} pair(s) they left."
            )
        if progress.left:
            return (
                f"{step.label}: {progress.text}; {progress.left} still wait for people. Advance when they are done, "
                "or go on now with what is judged."
            )
        return f"{step.label}: {progress.text}. Advance to go on."
    return f"Next: {step.label.lower()}. Advance to run it."
