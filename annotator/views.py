"""Annotator pages: campaign list, the side-by-side comparison page, judge and undo.

Every control is a plain form POST that also works without JavaScript; with htmx the response is the
`#pair` partial of the same template, swapped in place.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from annotator.forms import JudgmentForm, RankingForm, UndoForm
from annotator.models import Campaign, Choice, Judgment
from annotator.ranking import ranking_applies, ranking_candidates, ranking_shown_order, ranking_submit
from annotator.selectors import (
    annotator_waiting_for,
    campaign_open_or_404,
    campaign_progress_for,
    campaigns_for,
    comparison_as_shown,
    comparison_in_campaign,
    judgment_undoable_for,
)
from annotator.services import assignment_next, judgment_submit, judgment_undo
from core.errors import StudioError


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@login_required
@require_GET
def campaign_list(request: HtmxHttpRequest) -> HttpResponse:
    campaigns = [
        (campaign, campaign_progress_for(campaign=campaign, annotator=request.user))
        for campaign in campaigns_for(user=request.user)
    ]
    return render(request, "annotator/campaign_list.html", {"campaigns": campaigns})


def _render_pair(request: HtmxHttpRequest, campaign: Campaign) -> HttpResponse:
    assignment = assignment_next(campaign=campaign, annotator=request.user)
    context: dict = {
        "campaign": campaign,
        "progress": campaign_progress_for(campaign=campaign, annotator=request.user),
        "undoable": judgment_undoable_for(campaign=campaign, annotator=request.user),
        "choices": campaign.offered_choices,
    }
    if assignment is not None:
        shown = comparison_as_shown(assignment=assignment)
        context.update(comparison=shown.comparison, prompt=shown.comparison.prompt, left=shown.left, right=shown.right)
        if campaign.rank_candidates:
            candidates = ranking_candidates(prompt_id=shown.comparison.prompt_id)
            if ranking_applies(campaign=campaign, candidates=candidates):
                context["ranked"] = ranking_shown_order(assignment=assignment, candidates=candidates)
    else:
        context["waiting"] = annotator_waiting_for(campaign=campaign, annotator=request.user)
    template = "annotator/annotate.html"
    if request.htmx:
        template += "#pair"
    return render(request, template, context)


def _form_problems(form: forms.Form) -> str:
    """A form's errors in one line: each field's after its name, the whole form's as they are."""
    said = [(" ".join(errors), field) for field, errors in form.errors.items()]
    return "; ".join(text if field == "__all__" else f"{field}: {text}" for text, field in said)


def _after_post(request: HtmxHttpRequest, campaign: Campaign) -> HttpResponse:
    """After a POST (what it recorded or why not is in messages): the next pair in place with htmx, else a
    redirect to the page (post/redirect/get)."""
    if request.htmx:
        return _render_pair(request, campaign)
    return redirect("annotator:annotate", pk=campaign.pk)


@login_required
@require_GET
def annotate(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _render_pair(request, campaign_open_or_404(pk=pk, user=request.user))


@login_required
@require_POST
def judge(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    campaign = campaign_open_or_404(pk=pk, user=request.user)
    form = JudgmentForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"That choice could not be recorded: {_form_problems(form)}")
        return _after_post(request, campaign)
    comparison = comparison_in_campaign(campaign=campaign, comparison_id=form.cleaned_data["comparison"])
    if comparison is None:
        messages.error(request, "That pair is not part of this campaign; here is your next one.")
    else:
        try:
            result = judgment_submit(
                comparison=comparison,
                annotator=request.user,
                choice=form.cleaned_data["choice"],
                strength=form.cleaned_data["strength"],
                edited_text=form.cleaned_data["edited_text"],
                rationale=form.cleaned_data["rationale"],
                duration_ms=form.cleaned_data["duration_ms"],
            )
            if result.created:
                with_edit = ", with your edit" if result.edit else ""
                messages.success(request, f"Recorded: {_in_words(result.judgment)}{with_edit}.")
        except StudioError as error:
            messages.error(request, error.message)
    return _after_post(request, campaign)


def _in_words(judgment: Judgment) -> str:
    """ "left is better", "right is clearly better", "tie"."""
    said = Choice(judgment.choice).label.lower()
    return said.replace(" better", f" {judgment.strength} better") if judgment.strength else said


@login_required
@require_POST
def rank(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    campaign = campaign_open_or_404(pk=pk, user=request.user)
    form = RankingForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"That ranking could not be recorded: {_form_problems(form)}")
        return _after_post(request, campaign)
    comparison = comparison_in_campaign(campaign=campaign, comparison_id=form.cleaned_data["comparison"])
    if comparison is None:
        messages.error(request, "Those responses are not part of this campaign; here is your next pair.")
    else:
        try:
            result = ranking_submit(
                comparison=comparison,
                annotator=request.user,
                order=form.cleaned_data["order"],
                duration_ms=form.cleaned_data["duration_ms"],
            )
            if result.created:
                messages.success(request, f"Recorded: your ranking of {len(result.ranking.order)} responses.")
        except StudioError as error:
            messages.error(request, error.message)
    return _after_post(request, campaign)


@login_required
@require_POST
def undo(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    campaign = campaign_open_or_404(pk=pk, user=request.user)
    form = UndoForm(request.POST)
    if not form.is_valid():
        messages.info(request, "Nothing to undo.")
    else:
        try:
            judgment_undo(campaign=campaign, annotator=request.user, judgment_id=form.cleaned_data["judgment"])
            messages.info(request, "Undone: that pair is back for you to judge again.")
        except StudioError as error:
            messages.error(request, error.message)
    return _after_post(request, campaign)
