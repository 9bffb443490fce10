from datetime import date

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from annotator.models import Campaign
from core.charts import Bar, Series, bar_chart, line_chart
from core.permissions import staff_required
from quality.report import campaign_quality_report


@staff_required
@require_GET
def campaign_list(request: HttpRequest) -> HttpResponse:
    return render(request, "quality/campaign_list.html", {"campaigns": Campaign.objects.real().order_by("name")})


def _interval_bar(label: str, proportion: dict, note: str = "") -> Bar:
    low, high = proportion["ci95"] or (None, None)
    return Bar(label, proportion["rate"], low, high, note or f"n={proportion['n']}")


def _day(ordinal: float) -> str:
    return date.fromordinal(round(ordinal)).isoformat()


@staff_required
@require_GET
def campaign_quality(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    report = campaign_quality_report(campaign=campaign)
    position_bars = [_interval_bar("all annotators", report["position_bias"])] + [
        _interval_bar(row["username"], row["left_wins"]) for row in report["annotators"]
    ]
    agreement_by_day = [
        (date.fromisoformat(row["date"]).toordinal(), row["agreement"]) for row in report["agreement_over_time"]
    ]
    charts = {
        "position": bar_chart(position_bars, reference=0.5, title="Left response wins"),
        "agreement_over_time": line_chart(
            "Agreement with the others, by day",
            [Series("agreement", agreement_by_day)],
            x_label=_day,
            y_range=(0.0, 1.0),
        ),
        "win_rates": bar_chart(
            [
                Bar(f"{row['model'][-22:]}", row["win_rate"], *row["ci95"], note=f"vs {row['opponent']}")
                for row in report["model_win_rates"]
            ],
            reference=0.5,
            title="Win rate",
        ),
    }
    return render(request, "quality/campaign_quality.html", {"campaign": campaign, "report": report, "charts": charts})
