from django.conf import settings
from django.db import models

from annotator.models import JobStatus


class ExportVia(models.TextChoices):
    COMMAND = "command"
    WEB = "web"
    API = "api", "API"


class DatasetExport(models.Model):
    """One export of a campaign's preferences: who, when, options, counts, files and their checksums.

    `out_dir` holds train.parquet, validation.parquet (when the split is not empty) and README.md.
    `files` maps a split name to {"path", "rows", "sha256", "bytes"}, and "card" to the README.md's
    {"path", "sha256", "bytes"}.
    """

    campaign = models.ForeignKey("annotator.Campaign", on_delete=models.CASCADE, related_name="exports")
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    options = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    out_dir = models.CharField(max_length=1000, blank=True)
    files = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=10, choices=ExportVia.choices, default=ExportVia.COMMAND)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Export {self.pk} of {self.campaign} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
