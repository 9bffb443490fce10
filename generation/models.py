from django.conf import settings
from django.db import models

from annotator.models import JobStatus


class GenerationRun(models.Model):
    """One `generate_pairs` run: its full configuration, status and counts."""

    campaign = models.ForeignKey("annotator.Campaign", on_delete=models.CASCADE, related_name="generation_runs")
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    config = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True, help_text="The background task, when started from the web.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

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
