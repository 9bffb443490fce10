"""Staff pages: the series (start one), a series' rounds and their win rates, a round's steps (advance it).

Steps run in the background (`manage.py db_worker`); while one runs, the round page's status block reloads
itself every few seconds with htmx (the `#status` partial of the same template), or the whole page without it.
"""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from core import charts
from core.errors import StudioError
from core.models import JobStatus
from core.permissions import staff_required
from generation.services import prompts_upload_save
from rounds.forms import FILES, AdvanceForm, SeriesStartForm
from rounds.models import Round, Series
from rounds.options import PEOPLE
from rounds.selectors import (
    round_get,
    round_labeller,
    round_latest_step,
    round_next,
    round_steps,
    round_waits_for_people,
    round_win_rate,
    rounds_of,
    series_list,
    series_win_rates,
)
from rounds.services import round_advance, round_start, series_start


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _series_list_page(request: HttpRequest, form: SeriesStartForm, status: int = 200) -> HttpResponse:
    rows = [(series, list(series.rounds.all())) for series in series_list()[:100]]
    return render(request, "rounds/series_list.html", {"form": form, "rows": rows}, status=status)


@staff_required
@require_http_methods(["GET", "POST"])
def series_index(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _series_list_page(request, SeriesStartForm())
    form = SeriesStartForm(request.POST, request.FILES)
    if not form.is_valid():
        return _series_list_page(request, form, status=400)
    saved = {}
    for option, field in FILES.items():
        try:
            saved[option] = str(prompts_upload_save(upload=form.cleaned_data[field]))
        except StudioError as error:  # a bad row: every one named, with its line
            form.add_error(field, error.message)
    options = form.options_for(**saved) if len(saved) == len(FILES) else None
    if options is None:
        return _series_list_page(request, form, status=400)
    try:
        round = series_start(name=form.cleaned_data["name"], options=options, created_by=request.user)
        if form.cleaned_data["run_now"]:
            round_advance(round=round, created_by=request.user, chain=True)
    except StudioError as error:
        form.add_error(None, error.message)
        return _series_list_page(request, form, status=400)
    messages.success(request, f"Series {round.series.name!r} started: round 1 samples from {round.policy_model}.")
    return redirect("rounds:round_detail", pk=round.pk)


@staff_required
@require_GET
def series_detail(request: HttpRequest, pk: int) -> HttpResponse:
    series = get_object_or_404(Series, pk=pk)
    points = series_win_rates(series=series)
    chart = charts.line_chart(
        "Win rate of each round's tuned model against its policy",
        [charts.Series("win rate", [(n, rate) for n, rate, _, _ in points])],
        reference=0.5,
        x_name="round",
        x_label=lambda x: f"{x:.0f}",
        y_range=(0.0, 1.0),
    )
    intervals = charts.bar_chart(
        [charts.Bar(f"round {n}", rate, low, high) for n, rate, low, high in points],
        reference=0.5,
        title="Win rate with its 95% interval",
    )
    rounds = list(rounds_of(series=series))
    context = {
        "series": series,
        "rounds": rounds,
        "chart": chart,
        "intervals": intervals if points else None,
        "options": sorted(series.options.items()),
        "can_start_next": not rounds or rounds[-1].is_done,
    }
    return render(request, "rounds/series_detail.html", context)


@staff_required
@require_POST
def series_next_round(request: HttpRequest, pk: int) -> HttpResponse:
    series = get_object_or_404(Series, pk=pk)
    try:
        round = round_start(series=series, created_by=request.user)
    except StudioError as error:
        messages.error(request, error.message)
        return redirect("rounds:series_detail", pk=series.pk)
    messages.success(request, f"Round {round.number} started: it samples from {round.policy_model}.")
    return redirect("rounds:round_detail", pk=round.pk)


def _round_or_404(pk: int) -> Round:
    round = round_get(pk=pk)
    if round is None:
        raise Http404(f"No round with id {pk}.")
    return round


@staff_required
@require_GET
def round_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    round = _round_or_404(pk)
    latest = round_latest_step(round=round)
    waits = round_waits_for_people(round=round)
    context = {
        "round": round,
        "steps": round_steps(round=round),
        "next": round_next(round=round),
        "active": latest is not None and latest.is_active,
        "failed": latest is not None and latest.status == JobStatus.FAILED,
        "waits_for_people": waits,
        "people_only": waits and round_labeller(round=round) == PEOPLE,
        "win": round_win_rate(round=round) if round.eval_generation_run_id else None,
    }
    template = "rounds/round_detail.html"
    if request.htmx:
        template += "#status"
    return render(request, template, context)


@staff_required
@require_POST
def round_advance_view(request: HttpRequest, pk: int) -> HttpResponse:
    round = _round_or_404(pk)
    form = AdvanceForm(request.POST)
    form.is_valid()  # two optional check boxes: anything else reads as unticked
    try:
        job = round_advance(
            round=round,
            created_by=request.user,
            anyway=form.cleaned_data.get("anyway", False),
            chain=form.cleaned_data.get("chain", False),
        )
    except StudioError as error:
        messages.error(request, error.message)
    else:
        then = " and the next ones until people are needed" if job.chain else ""
        messages.success(request, f"{job.get_step_display()}{then}: queued for the background worker.")
    return redirect("rounds:round_detail", pk=round.pk)
