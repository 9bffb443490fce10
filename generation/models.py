from django.db import models

from core.models import Job


class GenerationRun(Job):
    """One `generate_pairs` run: its full configuration, status and counts."""

    job_name = "Generation run"
    job_restart = "run the same generate_pairs again: it continues where it stopped"

    campaign = models.ForeignKey("annotator.Campaign", on_delete=models.CASCADE, related_name="generation_runs")
    config = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)

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
        return sum(
            self.stats.get(key, 0)
            for key in ("skipped_too_long", "skipped_duplicate", "skipped_empty", "skipped_unstorable")
        )


class GeneratedCandidate(models.Model):
    """Which generation run sampled a candidate (the annotation app's Candidate knows nothing of runs).

    Deleting a run keeps its candidates (and their judgments): only this link goes."""

    candidate = models.OneToOneField(
        "annotator.Candidate", primary_key=True, on_delete=models.CASCADE, related_name="generation"
    )
    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="generated")

    def __str__(self) -> str:
        return f"Candidate {self.candidate_id} from generation run {self.run_id}"
