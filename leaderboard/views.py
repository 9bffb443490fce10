from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.charts import Bar, bar_chart
from core.permissions import staff_required
from leaderboard.bradley_terry import ELO_MEAN, ELO_PER_LOGIT, sigmoid
from leaderboard.forms import LeaderboardForm
from leaderboard.options import LeaderboardOptions
from leaderboard.services import leaderboard_build


def _beats_mean(strength: float) -> float:
    """The chance of beating a model of the mean strength (1000), from a strength on the Elo scale."""
    return float(sigmoid((strength - ELO_MEAN) / ELO_PER_LOGIT))


def _short(row: dict) -> str:
    """A name that fits the chart's margin: the round's name, or the model's last path part (its end if long)."""
    name = row["label"] or row["model"].rstrip("/").rsplit("/", 1)[-1]
    return name if len(name) <= 18 else "…" + name[-17:]


def _bar(row: dict) -> Bar:
    if row["strength"] is None:
        return Bar(_short(row), None)
    low, high = (_beats_mean(value) for value in row["ci95"]) if row["ci95"] else (None, None)
    return Bar(_short(row), _beats_mean(row["strength"]), low, high, f"{row['model']}, {row['votes']} votes")


@staff_required
@require_GET
def leaderboard(request: HttpRequest) -> HttpResponse:
    form = LeaderboardForm(request.GET if request.GET else None)
    if form.is_bound and not form.is_valid():
        return render(request, "leaderboard/leaderboard.html", {"form": form}, status=400)
    campaign = form.cleaned_data["campaign"] if form.is_bound else None
    options = form.options if form.is_bound else LeaderboardOptions()
    board = leaderboard_build(campaign=campaign, options=options)
    bars = [_bar(row) for row in board["models"]]
    chart = bar_chart(bars, reference=0.5, title="Chance to beat a model of mean strength")
    return render(request, "leaderboard/leaderboard.html", {"form": form, "board": board, "chart": chart})
