import pytest

from annotator.models import Campaign, Choice, Judgment, choice_for_verdict, verdict_for_choice


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
