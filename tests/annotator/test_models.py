import pytest

from annotator.models import Campaign, Choice, Comparison, Judgment, Prompt, choice_for_verdict, verdict_for_choice
from annotator.services import candidate_create
from tests.factories import make_campaign


@pytest.mark.parametrize(
    ("choice", "shown_left", "verdict"),
    [
        ("left", "a", "a"),
        ("left", "b", "b"),
        ("right", "a", "b"),
        ("right", "b", "a"),
        ("tie", "b", "tie"),
        ("both_bad", "a", "both_bad"),
        ("skip", "a", "skip"),
    ],
)
def test_verdict_maps_screen_side_back_to_the_candidate_shown_there(choice, shown_left, verdict):
    assert verdict_for_choice(choice=choice, shown_left=shown_left) == verdict


@pytest.mark.parametrize("shown_left", ["a", "b"])
@pytest.mark.parametrize("choice", list(Choice))
def test_a_judgment_shows_its_verdict_as_the_choice_that_made_it(choice, shown_left):
    verdict = verdict_for_choice(choice=choice, shown_left=shown_left)
    assert choice_for_verdict(verdict=verdict, shown_left=shown_left) == choice
    assert Judgment(verdict=verdict, shown_left=shown_left).choice == choice


def test_a_campaign_offers_tie_and_both_bad_only_when_allowed():
    assert Campaign().offered_choices == list(Choice)
    strict = Campaign(allow_tie=False, allow_both_bad=False)
    assert strict.offered_choices == [Choice.LEFT, Choice.RIGHT, Choice.SKIP]
    assert Choice.TIE not in Campaign(allow_tie=False).offered_choices
    assert Choice.BOTH_BAD in Campaign(allow_tie=False).offered_choices


def test_a_pair_names_its_prompts_campaign_however_it_is_made_or_moved(db):
    campaign, other = make_campaign("One", pairs=1), make_campaign("Two", pairs=0)
    made = Comparison.objects.get(prompt__campaign=campaign)
    assert made.campaign == campaign, "comparison_create (Comparison.objects.create)"
    prompt = made.prompt
    a, b = (candidate_create(prompt=prompt, text=t, model_name="m", backend="test") for t in ("C", "D"))
    [in_bulk] = Comparison.objects.bulk_create([Comparison(prompt_id=prompt.pk, candidate_a=a, candidate_b=b)])
    assert Comparison.objects.get(pk=in_bulk.pk).campaign == campaign, "bulk_create with only the prompt's id"

    prompt.campaign = other  # allowed while nothing is judged
    prompt.save()
    assert set(Comparison.objects.filter(prompt=prompt).values_list("campaign", flat=True)) == {other.pk}
    made.refresh_from_db()
    made.prompt = Prompt.objects.create(campaign=campaign, messages=[{"role": "user", "content": "New?"}])
    made.save(update_fields=["prompt"])
    assert Comparison.objects.get(pk=made.pk).campaign == campaign, "a pair moved to a prompt follows it"
