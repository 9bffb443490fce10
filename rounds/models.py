"""Iterative (on-policy) DPO as one workflow: a series of rounds that share their settings, each round one turn
of the loop, each step of a round one background job.

    Series --< Round: policy model -> generation run -> campaign (labelled) -> export -> training run
                      -> tuned model -> evaluation run -> evaluation campaign (labelled) -> win rate
    Round --< RoundStep (a Job): one attempt at one step; a failed one stays, its retry is a new row

Round k+1's policy is round k's tuned model. The rows each step makes (GenerationRun, DatasetExport,
TrainingRun) keep their own life cycle; the round links them.
"""

from django.conf import settings
from django.db import models

from core.models import Job, JobStatus


class Step(models.TextChoices):
    """Where a round stands: the step it does next, in this order."""

    GENERATE = "generate", "Generate pairs"
    LABEL = "label", "Label pairs"
    EXPORT = "export", "Export preferences"
    TRAIN = "train", "Train (DPO)"
    EVAL_GENERATE = "eval_generate", "Evaluate: generate"
    EVAL_LABEL = "eval_label", "Evaluate: label"
    DONE = "done", "Done"


STEPS = list(Step)
WORK_STEPS = STEPS[:-1]  # every step but done


def step_after(step: str) -> Step:
    return STEPS[STEPS.index(Step(step)) + 1]


class Series(models.Model):
    """Rounds that share one set of settings (rounds.options.SeriesOptions, stored as JSON)."""

    name = models.CharField(max_length=150, unique=True)
    options = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return self.name

    @property
    def series_options(self):  # -> SeriesOptions (imported here: options.py reads the services' configs)
        from rounds.options import SeriesOptions

        return SeriesOptions.from_stored(self.options)


class Round(models.Model):
    """One turn of the loop and everything it made, with the checksums that pin them."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField(help_text="1 for the first round of the series.")
    step = models.CharField(max_length=20, choices=Step.choices, default=Step.GENERATE)

    policy_model = models.CharField(max_length=1000, help_text="The model this round samples from.")
    policy_revision = models.CharField(max_length=200, blank=True, help_text="Its fingerprint (model_revision_of).")
    prompts_sha256 = models.CharField(max_length=64, blank=True)
    eval_prompts_sha256 = models.CharField(max_length=64, blank=True)

    # PROTECT: the round's record names the campaigns it labelled; deleting one is refused while it does.
    campaign = models.ForeignKey(
        "annotator.Campaign", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    generation_run = models.ForeignKey(
        "generation.GenerationRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    export = models.ForeignKey(
        "exports.DatasetExport", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    training_run = models.ForeignKey(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tuned_model = models.CharField(max_length=1000, blank=True, help_text="The trained model's folder.")
    tuned_revision = models.CharField(max_length=200, blank=True)

    eval_campaign = models.ForeignKey(
        "annotator.Campaign", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    eval_generation_run = models.ForeignKey(
        "generation.GenerationRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    win_rate = models.FloatField(null=True, blank=True, help_text="The tuned model's win rate against the policy.")
    win_rate_low = models.FloatField(null=True, blank=True)
    win_rate_high = models.FloatField(null=True, blank=True)
    eval_pairs = models.PositiveIntegerField(null=True, blank=True, help_text="Evaluation pairs the win rate counts.")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["series", "number"]
        constraints = [models.UniqueConstraint(fields=["series", "number"], name="round_number_unique_in_series")]

    def __str__(self) -> str:
        return f"{self.series.name}, round {self.number}"

    @property
    def is_done(self) -> bool:
        return self.step == Step.DONE


class RoundStep(Job):
    """One attempt at one step of a round, run in the background (or by `manage.py round advance`)."""

    job_name = "Round step"
    job_restart = "advance the round again: the step goes on from where it stopped"

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="steps")
    step = models.CharField(max_length=20, choices=Step.choices)
    chain = models.BooleanField(
        default=False, help_text="Once done, go on with the next steps in the background until one needs people."
    )
    result = models.JSONField(default=dict, blank=True, help_text="What the step did: counts, the rows it made.")

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["round", "step"])]

    def __str__(self) -> str:
        return f"{self.get_step_display()} of {self.round} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)
