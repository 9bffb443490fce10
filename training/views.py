"""Staff pages: the list of training runs, a run's page (config, data, metrics and plots), a form to start one.

Runs started here go to the background worker (`manage.py db_worker`) through the same service as
`manage.py train_dpo`; a running run's page reloads itself.
"""

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from core.errors import StudioError
from core.permissions import staff_required
from training.forms import TrainingRunForm
from training.plots import Series, line_chart
from training.selectors import CHARTS, training_run_series, training_runs_list
from training.services import training_run_queue

SPLIT_NAMES = {"train": "train", "eval": "validation"}


@staff_required
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    return render(request, "training/run_list.html", {"runs": training_runs_list()[:200]})


@staff_required
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(training_runs_list(), pk=pk)
    series = training_run_series(run=run)
    charts = [
        line_chart(
            title,
            [Series(SPLIT_NAMES[split], points, split) for split, points in sorted(series.get(metric, {}).items())],
            reference=reference,
        )
        for title, metric, reference in CHARTS
    ]
    final = run.final_metrics or {}
    context = {
        "run": run,
        "charts": charts,
        "config_items": sorted(run.config.items()),
        "headline": [
            (label, final.get(key))
            for label, key in (
                ("validation reward accuracy", "eval_rewards/accuracies"),
                ("validation reward margin", "eval_rewards/margins"),
                ("train loss", "train_loss"),
            )
            if key in final
        ],
    }
    return render(request, "training/run_detail.html", context)


@staff_required
@require_http_methods(["GET", "POST"])
def run_create(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "training/run_form.html", {"form": TrainingRunForm()})
    output = Path(settings.DATA_DIR) / "training" / timezone.now().strftime("run-%Y%m%d-%H%M%S-%f")
    form = TrainingRunForm(request.POST, output=str(output))
    if form.is_valid():
        try:
            run = training_run_queue(config=form.config, created_by=request.user)
        except StudioError as error:  # the data, checked before any model loads
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Training run {run.pk} queued: the background worker starts it.")
            return redirect("training:run_detail", pk=run.pk)
    return render(request, "training/run_form.html", {"form": form}, status=400)
