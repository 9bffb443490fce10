from django.db import models

from core.models import Job


class ExportVia(models.TextChoices):
    COMMAND = "command"
    WEB = "web"
    API = "api", "API"


class DatasetExport(Job):
    """One export of a campaign's preferences: who, when, options, counts, files and their checksums.

    `out_dir` holds train.parquet, validation.parquet (when the split is not empty) and README.md.
    `files` maps a split name to {"path", "rows", "sha256", "bytes"}, and "card" to the README.md's
    {"path", "sha256", "bytes"}.
    """

    job_name = "Export"
    job_restart = "export again"

    # PROTECT: an export is a record (its files, checksums, the training runs on it): its campaign stays.
    campaign = models.ForeignKey("annotator.Campaign", on_delete=models.PROTECT, related_name="exports")
    options = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    out_dir = models.CharField(max_length=1000, blank=True)
    files = models.JSONField(default=dict, blank=True)
    via = models.CharField(max_length=10, choices=ExportVia.choices, default=ExportVia.COMMAND)

    def __str__(self) -> str:
        return f"Export {self.pk} of {self.campaign} ({self.status})"
