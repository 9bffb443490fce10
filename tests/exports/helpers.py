"""Recording judgments for export tests: through the annotator services, as people do, sides randomised."""

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from django.contrib.auth.models import AbstractBaseUser

from annotator.models import Campaign, Comparison, JudgeSource, Judgment, Side, Verdict
from annotator.services import assignment_next, judgment_submit


def choice_for(verdict: str, shown_left: str) -> str:
    """What an annotator clicks to mean `verdict` (on candidates a/b) given the side shown on the left."""
    if verdict in (Verdict.A, Verdict.B):
        return "left" if verdict == shown_left else "right"
    return verdict


def judge_all(campaign: Campaign, user: AbstractBaseUser, verdict_for: Callable[[Comparison], str | None]) -> int:
    """Judge every pair the user is handed with verdict_for(comparison); None skips it. Returns how many."""
    judged = 0
    while (assignment := assignment_next(campaign=campaign, annotator=user)) is not None:
        verdict = verdict_for(assignment.comparison) or "skip"
        judgment_submit(
            comparison=assignment.comparison,
            annotator=user,
            choice=choice_for(verdict, assignment.shown_left),
        )
        judged += 1
    return judged


def ai_judge(comparison: Comparison, judge: AbstractBaseUser, verdict: str) -> Judgment:
    """An AI verdict, stored as the AI judge of issue 6 stores it: a Judgment with source="ai"."""
    return Judgment.objects.create(
        comparison=comparison, annotator=judge, verdict=verdict, shown_left=Side.A, source=JudgeSource.AI
    )


def read_rows(out_dir: Path) -> list[dict]:
    rows = []
    for name in ("train.parquet", "validation.parquet"):
        if (out_dir / name).exists():
            rows += pq.read_table(out_dir / name).to_pylist()
    return rows
