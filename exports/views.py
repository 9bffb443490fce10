"""Staff pages: the list of exports, a form to start one, its page (status, counts, files), downloads.

Exports run in the background (`manage.py db_worker`); an export's page reloads itself until it is done.
"""

from django.contrib import messages
from django.db import transaction
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from core.permissions import staff_required
from exports.forms import ExportForm
from exports.models import ExportVia
from exports.selectors import dataset_export_file, dataset_exports_list
from exports.services import dataset_export_create, dataset_export_enqueue


def _problem(request: HttpRequest, message: str, *, status: int) -> HttpResponse:
    return render(request, "problem.html", {"message": message}, status=status)


@staff_required
@require_GET
def export_list(request: HttpRequest) -> HttpResponse:
    return render(request, "exports/export_list.html", {"exports": dataset_exports_list()[:200]})


@staff_required
@require_http_methods(["GET", "POST"])
def export_create(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        form = ExportForm(initial={"campaign": request.GET.get("campaign")})
        return render(request, "exports/export_form.html", {"form": form})
    form = ExportForm(request.POST)
    if form.is_valid():
        with transaction.atomic():
            export = dataset_export_create(
                campaign=form.cleaned_data["campaign"],
                options=form.options(),
                created_by=request.user,
                via=ExportVia.WEB,
            )
            dataset_export_enqueue(export=export)
        messages.success(request, f"Export {export.pk} of {export.campaign.name!r} started.")
        return redirect("exports:detail", pk=export.pk)
    return render(request, "exports/export_form.html", {"form": form}, status=400)


@staff_required
@require_GET
def export_detail(request: HttpRequest, pk: int) -> HttpResponse:
    export = get_object_or_404(dataset_exports_list(), pk=pk)
    files = [(name, entry) for name, entry in export.files.items()]
    return render(request, "exports/export_detail.html", {"export": export, "files": files})


@staff_required
@require_GET
def export_download(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    export = get_object_or_404(dataset_exports_list(), pk=pk)
    path = dataset_export_file(export=export, name=name)
    if path is None:
        message = (
            f"Export {pk} has no file {name!r} as it wrote it (deleted, or replaced by a later export into the "
            "same directory): see its page for its files, or export again."
        )
        return _problem(request, message, status=404)
    return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)
