"""Reads: training runs for the staff pages and the API, and their metrics as plottable series."""

from collections import defaultdict

from django.db.models import QuerySet

from training.models import TrainingMetric, TrainingRun

# (title, metric, reference line) of the charts on a run's page
CHARTS = [
    ("Loss", "loss", None),
    ("Reward accuracy", "rewards/accuracies", 0.5),
    ("Reward margin (chosen - rejected)", "rewards/margins", 0.0),
    ("Reward of chosen responses", "rewards/chosen", 0.0),
    ("Reward of rejected responses", "rewards/rejected", 0.0),
]


def training_runs_list() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("created_by", "export").order_by("-created_at", "-id")


def training_run_metrics(*, run: TrainingRun) -> QuerySet[TrainingMetric]:
    return run.metrics.order_by("step", "id")


def training_run_series(*, run: TrainingRun) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{metric: {split: [(step, value), ...]}} for every numeric metric the run logged."""
    series: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for split, step, values in training_run_metrics(run=run).values_list("split", "step", "values"):
        for name, value in values.items():
            # A diverged step's NaN is stored as the text "nan" (JSON has none): not a point to draw.
            if isinstance(value, int | float) and not isinstance(value, bool):
                series[name][split].append((step, float(value)))
    return {name: dict(splits) for name, splits in series.items()}
