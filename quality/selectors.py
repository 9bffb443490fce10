"""Reads for the quality report: a campaign's pairs and every judgment of them, as plain rows."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from annotator.models import Campaign, Comparison, JudgeSource, Judgment


@dataclass(frozen=True)
class Vote:
    """One judgment of a pair, as the report reads it."""

    annotator_id: int
    username: str
    verdict: str
    shown_left: str
    duration_ms: int | None
    day: date
    details: dict[str, Any]


def campaign_comparison_rows(*, campaign: Campaign) -> dict[int, dict[str, Any]]:
    """The campaign's pairs by id: both texts, both model names, and the side (`metadata.model`, "a" or "b")
    that candidate a was generated for."""
    return {
        row["id"]: row
        for row in Comparison.objects.filter(prompt__campaign=campaign).values(
            "id",
            "candidate_a__text",
            "candidate_b__text",
            "candidate_a__model_name",
            "candidate_b__model_name",
            "candidate_a__metadata__model",
        )
    }


def campaign_votes(*, campaign: Campaign) -> tuple[dict[int, list[Vote]], dict[int, list[Vote]]]:
    """Every judgment of the campaign, oldest first, by comparison id: people's votes, and the AI judges'."""
    human: dict[int, list[Vote]] = defaultdict(list)
    ai: dict[int, list[Vote]] = defaultdict(list)
    rows = (
        Judgment.objects.filter(comparison__prompt__campaign=campaign)
        .order_by("created_at", "id")
        .values_list(
            "comparison_id", "annotator_id", "annotator__username", "verdict", "shown_left", "duration_ms",
            "created_at", "source", "details",
        )
    )  # fmt: skip
    for comparison_id, annotator_id, username, verdict, shown_left, duration, created, source, details in rows:
        vote = Vote(annotator_id, username, verdict, shown_left, duration, created.date(), details or {})
        (ai if source == JudgeSource.AI else human)[comparison_id].append(vote)
    return human, ai
