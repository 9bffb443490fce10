"""How much better: a side may come with its strength, in campaigns that ask for it."""

import pytest
from django.urls import reverse

from annotator.models import Choice, Judgment, Strength, WithdrawnJudgment
from annotator.services import assignment_next, judgment_submit, judgment_undo
from core.errors import InputError
from tests.factories import make_campaign

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def asking():
    return make_campaign("Strength", pairs=2, ask_strength=True)


def submit(campaign, user, choice, strength=""):
    assignment = assignment_next(campaign=campaign, annotator=user)
    return judgment_submit(comparison=assignment.comparison, annotator=user, choice=choice, strength=strength)


def test_a_side_is_stored_with_its_strength(asking, annotator):
    judgment = submit(asking, annotator, Choice.RIGHT, Strength.CLEARLY).judgment
    judgment.refresh_from_db()
    assert (judgment.choice, judgment.strength) == (Choice.RIGHT, Strength.CLEARLY)


def test_a_plain_pick_records_no_strength(asking, annotator):
    assert submit(asking, annotator, Choice.LEFT).judgment.strength == ""


@pytest.mark.parametrize(
    ("choice", "strength", "message"),
    [
        (Choice.LEFT, "hugely", "strength is 'hugely': use slightly or clearly, or leave it out."),
        (Choice.TIE, Strength.SLIGHTLY, "it goes with left or right, not 'tie'"),
        (Choice.SKIP, Strength.CLEARLY, "it goes with left or right, not 'skip'"),
    ],
)
def test_a_strength_that_makes_no_sense_is_refused_and_nothing_recorded(asking, annotator, choice, strength, message):
    with pytest.raises(InputError, match=message):
        submit(asking, annotator, choice, strength)
    assert Judgment.objects.count() == 0


def test_a_campaign_that_does_not_ask_refuses_a_strength(annotator):
    plain = make_campaign("Plain", pairs=1)
    with pytest.raises(InputError, match="does not ask how much better a side is: leave strength out"):
        submit(plain, annotator, Choice.LEFT, Strength.CLEARLY)
    assert Judgment.objects.count() == 0


def test_an_undone_judgment_keeps_its_strength(asking, annotator):
    judgment = submit(asking, annotator, Choice.LEFT, Strength.SLIGHTLY).judgment
    judgment_undo(campaign=asking, annotator=annotator, judgment_id=judgment.pk)
    assert WithdrawnJudgment.objects.get(pk=judgment.pk).strength == Strength.SLIGHTLY


def test_the_page_offers_strength_buttons_and_keys_only_when_the_campaign_asks(annotator_client, asking):
    html = annotator_client.get(reverse("annotator:annotate", args=[asking.pk])).content.decode()
    for value, key in (("left:clearly", "z"), ("left:slightly", "x"), ("right:slightly", "c"), ("right:clearly", "v")):
        assert f'value="{value}"' in html
        assert f"<kbd>{key}</kbd>" in html
    plain = make_campaign("Plain", pairs=1)
    html = annotator_client.get(reverse("annotator:annotate", args=[plain.pk])).content.decode()
    assert "left:clearly" not in html and "How much better" not in html


def test_a_strength_button_records_side_and_strength_and_says_so(annotator_client, annotator, asking):
    page = annotator_client.get(reverse("annotator:annotate", args=[asking.pk]))
    comparison = page.context["comparison"].pk
    response = annotator_client.post(
        reverse("annotator:judge", args=[asking.pk]), {"comparison": comparison, "choice": "right:clearly"}, **HX
    )
    assert "Recorded: right is clearly better." in response.content.decode()
    judgment = Judgment.objects.get(annotator=annotator)
    assert (judgment.comparison_id, judgment.choice, judgment.strength) == (comparison, Choice.RIGHT, "clearly")


def test_a_strength_button_on_a_campaign_that_does_not_ask_is_refused_on_the_page(annotator_client):
    plain = make_campaign("Plain", pairs=1)
    page = annotator_client.get(reverse("annotator:annotate", args=[plain.pk]))
    response = annotator_client.post(
        reverse("annotator:judge", args=[plain.pk]),
        {"comparison": page.context["comparison"].pk, "choice": "left:clearly"},
        **HX,
    )
    assert "does not ask how much better a side is" in response.content.decode()
    assert Judgment.objects.count() == 0


def test_the_api_takes_and_answers_the_strength(annotator, asking):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(annotator)
    shown = client.get(f"/api/campaigns/{asking.pk}/next/").json()
    response = client.post(f"/api/comparisons/{shown['id']}/judgments/", {"choice": "left", "strength": "slightly"})
    assert response.status_code == 201, response.content
    assert response.json()["strength"] == "slightly"
    shown = client.get(f"/api/campaigns/{asking.pk}/next/").json()
    response = client.post(f"/api/comparisons/{shown['id']}/judgments/", {"choice": "tie", "strength": "clearly"})
    assert response.status_code == 400
    assert "it goes with left or right, not 'tie'" in response.content.decode()
