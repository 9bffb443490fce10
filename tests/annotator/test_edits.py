"""Edit into a better response: an annotator's edit of the side they pick, kept as a new candidate."""

import pytest
from django.urls import reverse

from annotator.models import Candidate, Choice, Comparison, Judgment, Side
from annotator.services import EDIT_MODEL_NAME, assignment_next, judgment_submit, judgment_undo
from core.errors import InputError
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def pick(campaign, user, side=Side.A, **options):
    """`user` takes the next pair and picks candidate `side` (a or b), wherever it is shown."""
    assignment = assignment_next(campaign=campaign, annotator=user)
    choice = Choice.LEFT if assignment.shown_left == side else Choice.RIGHT
    return judgment_submit(comparison=assignment.comparison, annotator=user, choice=choice, **options)


@pytest.fixture
def editing():
    return make_campaign("Edits", pairs=2, allow_edits=True)


def test_an_edit_is_a_new_candidate_of_the_same_prompt_with_who_and_from_which(editing, annotator):
    result = pick(editing, annotator, Side.B, edited_text="  A better answer.  ")
    source = result.judgment.comparison.candidate_b
    edit = Candidate.objects.get(pk=result.edit.pk)
    assert edit.text == "A better answer."
    assert (edit.prompt_id, edit.edited_from, edit.edited_by) == (source.prompt_id, source, annotator)
    assert (edit.model_name, edit.backend, edit.is_edit) == (EDIT_MODEL_NAME, "edit", True)
    assert edit.prompt_format == source.prompt_format and edit.prompt_text == source.prompt_text
    assert edit.metadata == {"judgment": result.judgment.pk}
    assert Comparison.objects.filter(candidate_a=edit).count() == 0, "no new pair unless the campaign asks"


def test_a_campaign_that_compares_edits_makes_a_pair_of_the_edit_and_its_source(annotator):
    campaign = make_campaign("Compare edits", pairs=1, allow_edits=True, compare_edits=True, overlap=2)
    result = pick(campaign, annotator, Side.A, edited_text="Better.")
    pair = Comparison.objects.get(candidate_a=result.edit)
    assert pair.candidate_b == result.judgment.comparison.candidate_a
    assert pair.metadata == {"edit_of": pair.candidate_b.pk}
    # The new pair is judged like any other: the editor has not judged it either.
    handed = []
    while (assignment := assignment_next(campaign=campaign, annotator=annotator)) is not None:
        handed.append(assignment.comparison_id)
        judgment_submit(comparison=assignment.comparison, annotator=annotator, choice=Choice.TIE)
    assert handed == [pair.pk]


def test_the_unchanged_text_is_no_edit(editing, annotator):
    assignment = assignment_next(campaign=editing, annotator=annotator)
    left = assignment.comparison.candidate_a if assignment.shown_left == Side.A else assignment.comparison.candidate_b
    result = judgment_submit(
        comparison=assignment.comparison, annotator=annotator, choice=Choice.LEFT, edited_text=left.text + "\n"
    )
    assert result.edit is None and not Candidate.objects.filter(edited_from__isnull=False).exists()


@pytest.mark.parametrize(
    ("choice", "text", "message"),
    [
        (Choice.TIE, "Better.", "it goes with left or right, not 'tie'"),
        (Choice.LEFT, "Bad \x00 byte", "The edited response holds a NUL character"),
    ],
)
def test_a_bad_edit_is_refused_and_nothing_is_written(editing, annotator, choice, text, message):
    assignment = assignment_next(campaign=editing, annotator=annotator)
    with pytest.raises(InputError, match=message):
        judgment_submit(comparison=assignment.comparison, annotator=annotator, choice=choice, edited_text=text)
    assert not Judgment.objects.exists() and not Candidate.objects.filter(edited_from__isnull=False).exists()


def test_an_over_long_edit_is_refused_with_the_limit_to_change(editing, annotator, settings):
    settings.MAX_RESPONSE_CHARS = 10
    with pytest.raises(InputError, match="over the limit of 10 \\(PREFSTUDIO_MAX_RESPONSE_CHARS\\)"):
        pick(editing, annotator, edited_text="x" * 11)
    assert not Judgment.objects.exists()


def test_a_campaign_without_edits_refuses_one(annotator):
    plain = make_campaign("Plain", pairs=1)
    with pytest.raises(InputError, match="does not take edited responses"):
        pick(plain, annotator, edited_text="Better.")
    assert not Judgment.objects.exists()


def test_a_repeated_submit_makes_one_edit(editing, annotator):
    assignment = assignment_next(campaign=editing, annotator=annotator)
    for _ in range(2):
        judgment_submit(comparison=assignment.comparison, annotator=annotator, choice="left", edited_text="Better.")
    assert Candidate.objects.filter(edited_by=annotator).count() == 1


def test_undo_takes_back_the_edit_and_its_unjudged_pair(annotator):
    campaign = make_campaign("Undo edits", pairs=1, allow_edits=True, compare_edits=True)
    result = pick(campaign, annotator, edited_text="Better.")
    judgment_undo(campaign=campaign, annotator=annotator, judgment_id=result.judgment.pk)
    assert not Candidate.objects.filter(pk=result.edit.pk).exists()
    assert Comparison.objects.filter(prompt__campaign=campaign).count() == 1


def test_undo_keeps_an_edit_whose_pair_someone_judged(annotator):
    campaign = make_campaign("Judged edit", pairs=1, allow_edits=True, compare_edits=True, overlap=2)
    result = pick(campaign, annotator, edited_text="Better.")
    other = make_user("other")
    while (assignment := assignment_next(campaign=campaign, annotator=other)) is not None:
        judgment_submit(comparison=assignment.comparison, annotator=other, choice=Choice.LEFT)
    judgment_undo(campaign=campaign, annotator=annotator, judgment_id=result.judgment.pk)
    assert Candidate.objects.filter(pk=result.edit.pk).exists()


def test_the_page_offers_the_editor_only_when_the_campaign_allows_edits(annotator_client, editing):
    html = annotator_client.get(reverse("annotator:annotate", args=[editing.pk])).content.decode()
    assert 'name="edited_text"' in html and "<kbd>e</kbd>" in html
    assert '<template id="raw-left">' in html
    plain = make_campaign("Plain", pairs=1)
    html = annotator_client.get(reverse("annotator:annotate", args=[plain.pk])).content.decode()
    assert "edited_text" not in html


def test_the_raw_text_for_the_editor_is_escaped(annotator_client, annotator):
    from tests.factories import add_pair

    campaign = make_campaign("Escaped", pairs=0, allow_edits=True)
    add_pair(campaign, "Q?", "<script>alert(1)</script>", "fine")
    html = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_posting_a_pick_with_an_edit_records_both_and_says_so(annotator_client, annotator, editing):
    page = annotator_client.get(reverse("annotator:annotate", args=[editing.pk]))
    response = annotator_client.post(
        reverse("annotator:judge", args=[editing.pk]),
        {"comparison": page.context["comparison"].pk, "choice": "left", "edited_text": "Much better."},
        **HX,
    )
    assert "Recorded: left is better, with your edit." in response.content.decode()
    edit = Candidate.objects.get(edited_by=annotator)
    assert edit.edited_from == page.context["left"] and edit.text == "Much better."
