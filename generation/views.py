"""Staff pages: start a generation run in the background and follow the recent runs."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.errors import StudioError
from core.permissions import staff_required
from generation.forms import GenerationStartForm
from generation.selectors import generation_runs_recent
from generation.services import generation_run_start, prompts_upload_save


def _render(request: HttpRequest, form: GenerationStartForm, status: int = 200) -> HttpResponse:
    context = {"form": form, "runs": generation_runs_recent()}
    return render(request, "generation/runs.html", context, status=status)


@staff_required
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    return _render(request, GenerationStartForm())


@staff_required
@require_POST
def run_start(request: HttpRequest) -> HttpResponse:
    form = GenerationStartForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render(request, form, status=400)
    data = form.cleaned_data
    try:
        prompts_file = prompts_upload_save(upload=data["prompts"]) if data["prompts"] else ""
        config = form.config_with_prompts(str(prompts_file))
        run = generation_run_start(campaign_name=data["campaign"].name, config=config, created_by=request.user)
    except StudioError as error:  # the prompts file's rows, checked before anything is queued
        form.add_error(None, error.message)
        return _render(request, form, status=400)
    messages.success(request, f"Generation run {run.pk} queued for campaign {run.campaign.name!r}.")
    return redirect("generation:run_list")
