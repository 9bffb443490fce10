import pytest
from django.urls import reverse

from annotator.models import Campaign, Choice, Comparison, Judgment, Side, WithdrawalReason, WithdrawnJudgment
from annotator.services import assignment_next, judgment_submit, judgment_undo
from exports.services import dataset_export_create
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db


def judged_by(campaign: Campaign, username: str = "u") -> Judgment:
    user = make_user(username)
    assignment = assignment_next(campaign=campaign, annotator=user)
    return judgment_submit(comparison=assignment.comparison, annotator=user, choice=Choice.LEFT).judgment


def bulk_delete(client, model: str, pks: list[int]):
    return client.post(
        reverse(f"admin:annotator_{model}_changelist"),
        {"action": "delete_selected", "_selected_action": pks, "post": "yes"},
    )


def test_admin_lists_campaigns_and_judgments_with_counts(staff_client):
    campaign = make_campaign("Admin view", pairs=2)
    judged_by(campaign)
    campaigns = staff_client.get(reverse("admin:annotator_campaign_changelist"))
    assert campaigns.status_code == 200 and "Admin view" in campaigns.content.decode()
    judgments = staff_client.get(reverse("admin:annotator_judgment_changelist"))
    assert judgments.status_code == 200 and "Admin view" in judgments.content.decode()
    for model in ("prompt", "candidate", "comparison", "assignment", "withdrawnjudgment"):
        assert staff_client.get(reverse(f"admin:annotator_{model}_changelist")).status_code == 200


def test_judgments_cannot_be_edited_in_the_admin_and_deleting_reopens_the_pair(staff_client, staff):
    campaign = make_campaign("Admin delete", pairs=1)
    judgment = judged_by(campaign)
    page = staff_client.get(reverse("admin:annotator_judgment_change", args=[judgment.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    response = bulk_delete(staff_client, "judgment", [judgment.pk])
    assert response.status_code == 302
    assert not Judgment.objects.exists()
    judgment.comparison.refresh_from_db()
    assert judgment.comparison.human_votes == 0
    assert assignment_next(campaign=campaign, annotator=make_user("next")) is not None
    withdrawn = WithdrawnJudgment.objects.get()
    assert (withdrawn.pk, withdrawn.withdrawn_by, withdrawn.reason) == (judgment.pk, staff, WithdrawalReason.DELETED)


def test_deleting_one_judgment_from_its_page_is_recorded_too(staff_client, staff):
    judgment = judged_by(make_campaign("One delete", pairs=1))
    response = staff_client.post(reverse("admin:annotator_judgment_delete", args=[judgment.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Judgment.objects.exists()
    withdrawn = WithdrawnJudgment.objects.get()
    assert (withdrawn.pk, withdrawn.annotator, withdrawn.verdict) == (judgment.pk, judgment.annotator, judgment.verdict)
    assert (withdrawn.withdrawn_by, withdrawn.reason) == (staff, WithdrawalReason.DELETED)


def test_withdrawn_judgments_are_read_only_in_the_admin(staff_client):
    judgment = judged_by(make_campaign("Withdrawn", pairs=1))
    judgment_undo(campaign=judgment.comparison.prompt.campaign, annotator=judgment.annotator, judgment_id=judgment.pk)
    listing = staff_client.get(reverse("admin:annotator_withdrawnjudgment_changelist")).content.decode()
    assert "undone by its annotator" in listing
    page = staff_client.get(reverse("admin:annotator_withdrawnjudgment_change", args=[judgment.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert staff_client.get(reverse("admin:annotator_withdrawnjudgment_add")).status_code == 403
    delete = reverse("admin:annotator_withdrawnjudgment_delete", args=[judgment.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    assert WithdrawnJudgment.objects.filter(pk=judgment.pk).exists()


def test_a_campaign_with_judgments_cannot_be_deleted_and_the_admin_says_to_deactivate_it(staff_client):
    campaign = make_campaign("Judged", pairs=2)
    judged_by(campaign, "u1")
    judged_by(campaign, "u2")
    advice = (
        "Campaign &#x27;Judged&#x27; has 2 judgments: it cannot be deleted. Deactivate it instead (untick Active): "
        "annotators no longer see it, and its judgments, exports and training runs stay."
    )
    page = staff_client.get(reverse("admin:annotator_campaign_change", args=[campaign.pk])).content.decode()
    assert advice in page
    assert reverse("admin:annotator_campaign_delete", args=[campaign.pk]) not in page
    assert staff_client.post(reverse("admin:annotator_campaign_delete", args=[campaign.pk])).status_code == 403
    refused = bulk_delete(staff_client, "campaign", [campaign.pk])
    assert refused.status_code == 200
    assert "Cannot delete campaign" in refused.content.decode() and advice in refused.content.decode()
    assert Campaign.objects.filter(pk=campaign.pk).exists() and Judgment.objects.count() == 2


def test_a_campaign_is_not_deleted_with_its_exports_or_withdrawn_judgments(staff_client):
    exported = make_campaign("Exported", pairs=1)
    export = dataset_export_create(campaign=exported, options={})
    refused = bulk_delete(staff_client, "campaign", [exported.pk]).content.decode()
    assert "would require deleting the following protected related objects" in refused
    assert f"Export {export.pk} of Exported" in refused
    undone = make_campaign("Undone", pairs=1)
    judgment = judged_by(undone)
    judgment_undo(campaign=undone, annotator=judgment.annotator, judgment_id=judgment.pk)
    assert (
        f"Judgment {judgment.pk} of u on Comparison"
        in bulk_delete(staff_client, "campaign", [undone.pk]).content.decode()
    )
    assert set(Campaign.objects.values_list("name", flat=True)) == {"Exported", "Undone"}
    unused = make_campaign("Unused", pairs=1)
    assert bulk_delete(staff_client, "campaign", [unused.pk]).status_code == 302
    assert not Campaign.objects.filter(pk=unused.pk).exists()


def test_judged_content_is_read_only_in_the_admin_and_cannot_be_deleted(staff_client):
    campaign = make_campaign("Content", pairs=2)
    comparison = judged_by(campaign).comparison
    open_prompt = campaign.prompts.exclude(pk=comparison.prompt_id).get()
    for model, judged, editable, field in [
        ("prompt", comparison.prompt, open_prompt, "messages"),
        ("candidate", comparison.candidate_a, open_prompt.candidates.first(), "text"),
        ("comparison", comparison, open_prompt.comparisons.get(), "candidate_a"),
    ]:
        page = staff_client.get(reverse(f"admin:annotator_{model}_change", args=[judged.pk])).content.decode()
        assert f'name="{field}"' not in page, model
        assert "has 1 judgment: it cannot be deleted and its" in page
        assert reverse(f"admin:annotator_{model}_delete", args=[judged.pk]) not in page
        assert bulk_delete(staff_client, model, [judged.pk]).status_code == 200
        page = staff_client.get(reverse(f"admin:annotator_{model}_change", args=[editable.pk])).content.decode()
        assert f'name="{field}"' in page, f"an unjudged {model} can still be edited"
    assert Judgment.objects.count() == 1 and comparison.prompt.candidates.count() == 2


def _campaign_form(campaign, **changes):
    form = {
        "name": campaign.name,
        "description": "",
        "guidelines": "",
        "overlap": campaign.overlap,
        "min_votes": "" if campaign.min_votes is None else campaign.min_votes,
        "settle_margin": campaign.settle_margin,
        "sentinel_rate": campaign.sentinel_rate,
        "sentinel_min_accuracy": campaign.sentinel_min_accuracy,
        "allow_tie": "on",
        "allow_both_bad": "on",
        "is_active": "on",
    }
    return {**form, **changes}


def test_turning_on_adaptive_overlap_in_the_admin_settles_the_agreed_pairs(staff_client):
    campaign = make_campaign("Adaptive later", pairs=1, overlap=3)
    for name in ("u1", "u2"):  # both prefer candidate a, whichever side it was shown on
        user = make_user(name)
        assignment = assignment_next(campaign=campaign, annotator=user)
        choice = Choice.LEFT if assignment.shown_left == Side.A else Choice.RIGHT
        judgment_submit(comparison=assignment.comparison, annotator=user, choice=choice)
    pair = Comparison.objects.get(prompt__campaign=campaign)
    assert not pair.settled
    url = reverse("admin:annotator_campaign_change", args=[campaign.pk])
    response = staff_client.post(url, _campaign_form(campaign, min_votes=2))
    assert response.status_code == 302
    pair.refresh_from_db()
    assert pair.settled


def test_the_admin_refuses_min_votes_above_the_overlap(staff_client):
    campaign = make_campaign("Bad rule", pairs=1, overlap=2)
    url = reverse("admin:annotator_campaign_change", args=[campaign.pk])
    response = staff_client.post(url, _campaign_form(campaign, min_votes=3))
    assert response.status_code == 200
    assert "Min votes must be 1 to the overlap (the most votes a pair gets)" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.min_votes is None
