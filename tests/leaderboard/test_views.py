"""The staff page and the API: who may see them, what they show, and the messages for bad parameters."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.services import campaign_create
from tests.leaderboard.helpers import pair, vote

pytestmark = pytest.mark.django_db
STAFF_ONLY = "This is for staff (admins) only. Ask an admin if you need access."
PAGE = reverse("leaderboard:leaderboard")
API = reverse("api-leaderboard")


@pytest.fixture
def arena():
    campaign = campaign_create(name="Arena")
    vote(pair(campaign, "Q1", "org/champion-7b", "org/challenger-1b"), "a", "a", "b")
    vote(pair(campaign, "Q2", "org/challenger-1b", "org/champion-7b"), "b", "tie")
    return campaign


@pytest.fixture
def api(staff) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff)
    return client


def test_the_page_is_for_staff_only(client, annotator_client, arena):
    anonymous = client.get(PAGE)
    assert anonymous.status_code == 302 and anonymous.url.startswith(reverse("login"))
    forbidden = annotator_client.get(PAGE)
    assert forbidden.status_code == 403 and STAFF_ONLY in forbidden.content.decode()


def test_the_page_ranks_every_campaigns_models_by_default_and_one_campaign_when_asked(staff_client, arena):
    other = campaign_create(name="Elsewhere")
    vote(pair(other, "Q1", "org/outsider", "org/champion-7b"), "b")
    html = staff_client.get(PAGE).content.decode()
    assert "Leaderboard: all campaigns" in html and "org/outsider" in html
    assert html.index("org/champion-7b") < html.index("org/challenger-1b")
    assert 'aria-label="Chance to beat a model of mean strength"' in html
    assert ">champion-7b</text>" in html  # the chart names a model by the last part of its path
    assert "Head to head" in html and "Length control" in html
    one = staff_client.get(PAGE, {"campaign": arena.pk, "judges": "humans", "bootstrap": 20, "seed": 1})
    assert one.status_code == 200
    html = one.content.decode()
    assert "Leaderboard: Arena" in html and "org/outsider" not in html
    assert f'href="{API}?campaign={arena.pk}&amp;judges=humans&amp;bootstrap=20&amp;seed=1"' in html


def test_the_page_says_what_is_wrong_with_its_settings(staff_client, arena):
    response = staff_client.get(PAGE, {"bootstrap": 9000})
    assert response.status_code == 400
    assert "Bootstrap is 9000: use 0 (no intervals) to 2000 resamples, e.g. 200." in response.content.decode()
    unknown = staff_client.get(PAGE, {"campaign": 999})
    assert unknown.status_code == 400 and "Select a valid choice" in unknown.content.decode()


def test_a_campaign_without_votes_lists_its_models_unranked(staff_client):
    campaign = campaign_create(name="Fresh")
    pair(campaign, "Q1", "new-model", "old-model")
    html = staff_client.get(PAGE, {"campaign": campaign.pk}).content.decode()
    assert "new-model" in html and "no counted votes" in html


def test_the_api_is_for_staff_only(annotator, arena):
    assert APIClient().get(API).status_code == 401
    client = APIClient()
    client.force_authenticate(annotator)
    forbidden = client.get(API)
    assert forbidden.status_code == 403 and forbidden.json() == {"detail": STAFF_ONLY}


def test_the_api_returns_the_leaderboard_as_json(api, arena):
    body = api.get(API, {"campaign": arena.pk, "judges": "humans", "bootstrap": 30}).json()
    assert body["campaign"] == {"id": arena.pk, "name": "Arena"}
    assert body["options"] == {"judges": "humans", "bootstrap": 30, "seed": 0}
    champion, challenger = body["models"]
    assert (champion["model"], champion["rank"], champion["votes"]) == ("org/champion-7b", 1, 5)
    assert (challenger["model"], challenger["rank"]) == ("org/challenger-1b", 2)
    assert champion["ci95"][0] <= champion["strength"] <= champion["ci95"][1]
    assert set(champion) >= {"strength_lc", "ci95_lc", "wins", "ties", "losses", "decisive", "win_rate", "group"}
    assert body["matrix"][0]["cells"][1]["opponent"] == "org/challenger-1b"
    assert set(body["length"]) >= {"coefficient", "ci95", "scale", "longer_wins"}
    assert api.get(API).json()["campaign"] is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"campaign": "abc"}, "campaign is 'abc': use a campaign's id (a whole number), or leave it out"),
        ({"campaign": 999}, "campaign is 999: there is no campaign with that id."),
        ({"judges": "human"}, "judges is 'human': use one of humans, ai, both."),
        ({"bootstrap": -1}, "bootstrap is -1: use 0 (no intervals) to 2000 resamples"),
        ({"seed": "x"}, "seed is 'x': use a whole number."),
        ({"sort": "name"}, "Unknown option(s) sort"),
    ],
)
def test_the_api_names_a_bad_parameter_and_what_to_use(api, arena, query, message):
    response = api.get(API, query)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_the_api_makes_as_many_queries_for_many_pairs_as_for_few(api, arena):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(API, {"bootstrap": 0}).status_code == 200
        return len(captured)

    few = queries()
    for i in range(10):
        vote(pair(arena, f"More {i}", f"model-{i}", "org/champion-7b"), "b", "a")
    assert queries() == few
