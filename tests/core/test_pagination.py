import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.models import Campaign
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db

LISTS = ["api-campaign-list", "api-export-list", "api-training-run-list", "api-round-series-list"]


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("boss", staff=True))
    return client


@pytest.mark.parametrize("name", LISTS)
def test_every_list_endpoint_answers_a_page(api, name):
    body = api.get(reverse(name)).json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


def test_a_list_comes_in_pages_the_caller_can_size_and_walk(api):
    for i in range(5):
        make_campaign(f"C{i}", pairs=0)
    url = reverse("api-campaign-list")
    first = api.get(url, {"page_size": 2}).json()
    assert first["count"] == 5 and [c["name"] for c in first["results"]] == ["C0", "C1"]
    assert first["previous"] is None and first["next"].endswith(f"{url}?page=2&page_size=2")
    names, page = [], first
    while True:
        names += [c["name"] for c in page["results"]]
        if page["next"] is None:
            break
        page = api.get(page["next"]).json()
    assert names == [f"C{i}" for i in range(5)] and page["previous"].endswith("page=2&page_size=2")
    assert len(api.get(url).json()["results"]) == 5  # 50 a page by default


def test_a_page_is_at_most_200_rows_and_one_past_the_last_is_404(api):
    Campaign.objects.bulk_create(Campaign(name=f"C{i:03}") for i in range(201))
    url = reverse("api-campaign-list")
    page = api.get(url, {"page_size": 10_000}).json()
    assert page["count"] == 201 and len(page["results"]) == 200 and page["next"] is not None
    missing = api.get(url, {"page": 9})
    assert missing.status_code == 404 and missing.json() == {"detail": "Invalid page."}
