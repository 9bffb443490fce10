"""Builders for leaderboard tests: pairs between named models, and votes on them by distinct judges."""

from django.contrib.auth import get_user_model

from annotator.models import Campaign, Comparison, Judgment
from annotator.services import candidate_create, comparison_create, prompt_get_or_create


def pair(
    campaign: Campaign, prompt: str, model_a: str, model_b: str, text_a: str = "a", text_b: str = "b"
) -> Comparison:
    prompt_obj, _ = prompt_get_or_create(campaign=campaign, prompt=prompt)
    a = candidate_create(prompt=prompt_obj, text=text_a, model_name=model_a)
    b = candidate_create(prompt=prompt_obj, text=text_b, model_name=model_b)
    return comparison_create(candidate_a=a, candidate_b=b)


def judges(n: int, *, prefix: str = "judge") -> list:
    User = get_user_model()
    User.objects.bulk_create([User(username=f"{prefix}{i}") for i in range(n)], ignore_conflicts=True)
    return list(User.objects.filter(username__startswith=prefix).order_by("id"))[:n]


def vote(comparison: Comparison, *verdicts: str, source: str = "human", by: list | None = None) -> None:
    """One judgment per verdict, each by its own judge (`by`, else judges named after the source)."""
    voters = by or judges(len(verdicts), prefix=f"{source}-judge")
    Judgment.objects.bulk_create(
        Judgment(comparison=comparison, annotator=voter, verdict=verdict, shown_left="a", source=source)
        for voter, verdict in zip(voters, verdicts, strict=False)
    )
