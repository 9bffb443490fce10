"""A campaign or pair that exists but is not open to you answers exactly like one that does not exist (status
and body, pages and API), so ids reveal nothing about campaigns someone is not part of."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.models import Campaign, Comparison, Judgment
from tests.factories import make_campaign

pytestmark = pytest.mark.django_db

PAGES = [("get", "annotator:annotate"), ("post", "annotator:judge"), ("post", "annotator:undo")]
API = [("get", "api-campaign-next"), ("get", "api-campaign-progress"), ("post", "api-campaign-undo")]


@pytest.fixture
def hidden(other_annotator) -> Campaign:
    """A campaign for someone else only."""
    campaign = make_campaign("Someone else's", pairs=1)
    campaign.annotators.add(other_annotator)
    return campaign


@pytest.fixture
def inactive() -> Campaign:
    campaign = make_campaign("Closed", pairs=1)
    Campaign.objects.filter(pk=campaign.pk).update(is_active=False)
    return campaign


def missing_pk(model) -> int:
    return (model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000


@pytest.fixture
def api(annotator) -> APIClient:
    client = APIClient()
    client.force_authenticate(annotator)
    return client


def answers(client, method: str, url: str) -> tuple[int, bytes]:
    response = getattr(client, method)(url)
    return response.status_code, response.content


@pytest.mark.parametrize(("method", "name"), PAGES)
def test_pages_answer_a_hidden_or_closed_campaign_like_a_missing_one(annotator_client, hidden, inactive, method, name):
    missing = answers(annotator_client, method, reverse(name, args=[missing_pk(Campaign)]))
    assert missing[0] == 404
    assert answers(annotator_client, method, reverse(name, args=[hidden.pk])) == missing
    assert answers(annotator_client, method, reverse(name, args=[inactive.pk])) == missing


@pytest.mark.parametrize(("method", "name"), API)
def test_the_api_answers_a_hidden_or_closed_campaign_like_a_missing_one(api, hidden, inactive, method, name):
    missing = answers(api, method, reverse(name, args=[missing_pk(Campaign)]))
    assert missing == (404, b'{"detail":"No campaign with this id is open to you."}')
    assert answers(api, method, reverse(name, args=[hidden.pk])) == missing
    assert answers(api, method, reverse(name, args=[inactive.pk])) == missing


def test_the_api_answers_a_pair_of_a_hidden_campaign_like_a_missing_pair(api, annotator, hidden):
    url = "api-judgment-create"
    pair = Comparison.objects.get(prompt__campaign=hidden)
    missing = api.post(reverse(url, args=[missing_pk(Comparison)]), {"choice": "left"})
    mine = api.post(reverse(url, args=[pair.pk]), {"choice": "left"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "No pair with this id is open to you."})
    assert (mine.status_code, mine.content) == (missing.status_code, missing.content)
    assert not Judgment.objects.filter(annotator=annotator).exists()
