"""Reads for the leaderboard: per comparison, its two models, the lengths of its two responses and its votes,
counted in SQL (one query, no response text leaves the database); the campaign to rank; labels for models."""

from dataclasses import dataclass

from django.db.models import Count, Q
from django.db.models.functions import Length

from annotator.models import Campaign, Comparison, JudgeSource, Verdict
from core.errors import InputError
from rounds.models import Round

COUNTED = (Verdict.A, Verdict.B, Verdict.TIE, Verdict.BOTH_BAD)  # skips never count


@dataclass(frozen=True)
class PairVotes:
    """One comparison as the leaderboard reads it: the counted votes of the selected judges."""

    prompt: str  # the prompt's content hash: the same prompt in two campaigns is one unit for the bootstrap
    model_a: str
    model_b: str
    length_a: int  # characters
    length_b: int
    a: int
    b: int
    tie: int
    both_bad: int

    @property
    def votes(self) -> int:
        return self.a + self.b + self.tie + self.both_bad

    @property
    def ties(self) -> int:
        """Votes for neither side: ties and "both bad"."""
        return self.tie + self.both_bad

    def won_by(self, side: str) -> float:
        """What the votes give side "a" or "b": a win each, and half of every tie or "both bad" (it prefers
        neither response; Chatbot Arena counts its "tie (both bad)" the same way)."""
        return (self.a if side == "a" else self.b) + self.ties / 2


def _count(source: str, verdict: str) -> Count:
    return Count("judgments", filter=Q(judgments__source=source, judgments__verdict=verdict))


def leaderboard_pairs(*, campaign: Campaign | None, judges: str) -> list[PairVotes]:
    """Every comparison of `campaign` (of every campaign if None), judged or not, with the votes `judges`
    (humans, ai, both) cast on it. With both, a pair's human votes count, or its AI votes if it has none."""
    comparisons = (
        Comparison.objects.filter(prompt__campaign__sentinel_of__isnull=True)
        if campaign is None
        else Comparison.objects.filter(prompt__campaign=campaign)
    )
    counts = {
        f"{source.value}_{verdict.value}": _count(source, verdict) for source in JudgeSource for verdict in COUNTED
    }
    rows = (
        comparisons.order_by("id")
        .values("id", "prompt__content_hash", "candidate_a__model_name", "candidate_b__model_name")
        .annotate(length_a=Length("candidate_a__text"), length_b=Length("candidate_b__text"), **counts)
    )
    pairs = []
    for row in rows:
        human = [row[f"{JudgeSource.HUMAN.value}_{verdict.value}"] for verdict in COUNTED]
        ai = [row[f"{JudgeSource.AI.value}_{verdict.value}"] for verdict in COUNTED]
        votes = {"humans": human, "ai": ai, "both": human if any(human) else ai}[judges]
        pairs.append(
            PairVotes(
                row["prompt__content_hash"],
                row["candidate_a__model_name"],
                row["candidate_b__model_name"],
                row["length_a"],
                row["length_b"],
                *votes,
            )
        )
    return pairs


def leaderboard_campaign(*, value: str | int | None) -> Campaign | None:
    """The campaign a leaderboard ranks: its id (None or empty for all campaigns)."""
    if value is None or value == "":
        return None
    try:
        pk = int(value)
    except (TypeError, ValueError):
        raise InputError(
            f"campaign is {value!r}: use a campaign's id (a whole number), or leave it out to rank the models "
            "of every campaign."
        ) from None
    campaign = Campaign.objects.filter(pk=pk).first()
    if campaign is None:
        raise InputError(
            f"campaign is {pk}: there is no campaign with that id. Use the id of an existing campaign, or "
            "leave it out to rank the models of every campaign."
        )
    return campaign


def leaderboard_campaigns() -> list[Campaign]:
    return list(Campaign.objects.real().order_by("name"))


def model_labels(*, names: list[str]) -> dict[str, str]:
    """A readable name for the models that are a round's tuned checkpoint (a folder path): "Stories, round 2"."""
    rounds = Round.objects.filter(tuned_model__in=names).values_list("tuned_model", "series__name", "number")
    return {model: f"{series}, round {number}" for model, series, number in rounds.order_by("series__name", "number")}
