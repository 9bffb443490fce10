import pytest
from django.urls import reverse

from annotator.models import Choice, Judgment
from annotator.services import assignment_next, judgment_submit
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db


def test_admin_lists_campaigns_and_judgments_with_counts(staff_client):
    campaign = make_campaign("Admin view", pairs=2)
    user = make_user("u")
    assignment = assignment_next(campaign=campaign, annotator=user)
    judgment_submit(comparison=assignment.comparison, annotator=user, choice=Choice.LEFT)
    campaigns = staff_client.get(reverse("admin:annotator_campaign_changelist"))
    assert campaigns.status_code == 200 and "Admin view" in campaigns.content.decode()
    judgments = staff_client.get(reverse("admin:annotator_judgment_changelist"))
    assert judgments.status_code == 200 and "Admin view" in judgments.content.decode()
    for model in ("prompt", "candidate", "comparison", "assignment"):
        assert staff_client.get(reverse(f"admin:annotator_{model}_changelist")).status_code == 200


def test_judgments_cannot_be_edited_in_the_admin_and_deleting_reopens_the_pair(staff_client):
    campaign = make_campaign("Admin delete", pairs=1)
    user = make_user("u")
    assignment = assignment_next(campaign=campaign, annotator=user)
    judgment = judgment_submit(comparison=assignment.comparison, annotator=user, choice=Choice.LEFT).judgment
    page = staff_client.get(reverse("admin:annotator_judgment_change", args=[judgment.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    response = staff_client.post(
        reverse("admin:annotator_judgment_changelist"),
        {"action": "delete_selected", "_selected_action": [judgment.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Judgment.objects.exists()
    assignment.comparison.refresh_from_db()
    assert assignment.comparison.human_votes == 0
    assert assignment_next(campaign=campaign, annotator=make_user("next")) is not None
