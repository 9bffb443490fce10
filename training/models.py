from django.db import models

from core.models import Job


class TrainingRun(Job):
    """One DPO run: its full configuration, the data (with checksums), base model, outputs, status and results.

    `config` is the resolved DPORunConfig (what `output/run_config.json` holds); `dataset_files` maps a split to
    {"path", "rows", "sha256", "format"}; the per-step metrics are TrainingMetric rows.
    """

    job_name = "Training run"
    job_restart = "train_dpo --resume continues from its last checkpoint"

    config = models.JSONField(default=dict)
    export = models.ForeignKey(
        "exports.DatasetExport", null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    dataset_path = models.CharField(max_length=1000)
    dataset_sha256 = models.CharField(max_length=64, blank=True)
    dataset_files = models.JSONField(default=dict, blank=True)
    base_model = models.CharField(max_length=1000)
    output_dir = models.CharField(max_length=1000)
    device = models.CharField(max_length=200, blank=True)
    global_step = models.PositiveIntegerField(default=0)
    final_metrics = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["output_dir"])]

    def __str__(self) -> str:
        return f"Training run {self.pk} of {self.base_model} ({self.status})"

    @property
    def validation_reward_accuracy(self) -> float | None:
        """How often the implicit reward ranks held-out pairs right at the end (0.5 = chance)."""
        return (self.final_metrics or {}).get("eval_rewards/accuracies")


class MetricSplit(models.TextChoices):
    TRAIN = "train"
    EVAL = "eval"


class TrainingMetric(models.Model):
    """The metrics TRL logged at one step: loss, rewards/chosen, rewards/rejected, rewards/accuracies,
    rewards/margins, logps/*, ... (eval ones without their `eval_` prefix, split = eval)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    split = models.CharField(max_length=10, choices=MetricSplit.choices)
    step = models.PositiveIntegerField()
    epoch = models.FloatField(null=True, blank=True)
    values = models.JSONField(default=dict)

    class Meta:
        ordering = ["run", "step", "id"]
        indexes = [models.Index(fields=["run", "step"])]

    def __str__(self) -> str:
        return f"{self.split} metrics of run {self.run_id} at step {self.step}"
