"""Reads for generation: which prompts of a campaign are done or still need candidates, recent runs."""

from django.db.models import QuerySet

from annotator.models import Campaign, Prompt
from generation.models import GenerationRun


def prompt_hashes_done(*, campaign: Campaign) -> set[str]:
    """Content hashes of the campaign's prompts that have comparisons: generation skips them."""
    return set(
        Prompt.objects.filter(campaign=campaign, comparisons__isnull=False)
        .values_list("content_hash", flat=True)
        .distinct()
    )


def prompts_pending(*, campaign: Campaign) -> QuerySet[Prompt]:
    """The campaign's prompts without any comparison yet, oldest first."""
    return Prompt.objects.filter(campaign=campaign, comparisons__isnull=True).distinct().order_by("id")


def generation_runs_recent(*, limit: int = 20) -> QuerySet[GenerationRun]:
    return GenerationRun.objects.select_related("campaign", "created_by").order_by("-created_at", "-id")[:limit]
