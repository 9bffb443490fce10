from django.db import models

from annotator.models import Job


class GenerationRun(Job):
    """One `generate_pairs` run: its full configuration, status and counts."""

    campaign = models.ForeignKey("annotator.Campaign", on_delete=models.CASCADE, related_name="generation_runs")
    config = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=64, blank=True, help_text="The background task, when started from the web.")

    def __str__(self) -> str:
        return f"Generation run {self.pk} ({self.status})"

    @property
    def model_name(self) -> str:
        return self.config.get("model", "")

    @property
    def backend(self) -> str:
        return self.config.get("backend", "")

    @property
    def skipped_count(self) -> int:
        return sum(self.stats.get(key, 0) for key in ("skipped_too_long", "skipped_duplicate", "skipped_empty"))
