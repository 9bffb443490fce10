from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from annotator.models import (
    Assignment,
    Choice,
    Comparison,
    Judgment,
    Side,
    Verdict,
    WithdrawalReason,
    WithdrawnJudgment,
)
from annotator.selectors import annotator_waiting_for, campaign_progress_for
from annotator.services import (
    AiVerdict,
    ai_judgments_record,
    assignment_next,
    campaign_create,
    judgment_submit,
    judgment_undo,
    judgments_delete,
)
from core.errors import ConflictError, InputError
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db


def judge_next(campaign, user, choice=Choice.LEFT):
    assignment = assignment_next(campaign=campaign, annotator=user)
    assert assignment is not None
    return judgment_submit(comparison=assignment.comparison, annotator=user, choice=choice).judgment


def test_next_hands_out_each_pair_once_per_annotator_until_none_left(campaign, annotator):
    seen = []
    while (assignment := assignment_next(campaign=campaign, annotator=annotator)) is not None:
        seen.append(assignment.comparison_id)
        judgment_submit(comparison=assignment.comparison, annotator=annotator, choice=Choice.RIGHT)
    assert len(seen) == 3
    assert len(set(seen)) == 3
    assert Judgment.objects.filter(annotator=annotator).count() == 3


def test_higher_priority_pairs_are_handed_out_first_then_in_id_order(campaign, annotator):
    first, second, third = campaign_comparisons = list(Comparison.objects.filter(prompt__campaign=campaign))
    Comparison.objects.filter(pk=third.pk).update(priority=1)
    order = []
    while (assignment := assignment_next(campaign=campaign, annotator=annotator)) is not None:
        order.append(assignment.comparison_id)
        judgment_submit(comparison=assignment.comparison, annotator=annotator, choice=Choice.TIE)
    assert order == [third.pk, first.pk, second.pk], campaign_comparisons


def test_next_returns_the_same_pair_and_sides_until_it_is_judged(campaign, annotator):
    first = assignment_next(campaign=campaign, annotator=annotator)
    again = assignment_next(campaign=campaign, annotator=annotator)
    assert (again.comparison_id, again.shown_left) == (first.comparison_id, first.shown_left)


def test_left_right_order_is_randomised_across_annotators(db):
    campaign = make_campaign("Order", pairs=1, overlap=40)
    sides = set()
    for i in range(40):
        sides.add(assignment_next(campaign=campaign, annotator=make_user(f"u{i}")).shown_left)
    assert sides == {Side.A, Side.B}


def test_judgment_stores_shown_left_and_maps_choice_to_verdict(campaign, annotator):
    assignment = assignment_next(campaign=campaign, annotator=annotator)
    result = judgment_submit(comparison=assignment.comparison, annotator=annotator, choice=Choice.LEFT)
    judgment = result.judgment
    assert result.created
    assert judgment.shown_left == assignment.shown_left
    assert judgment.verdict == (Verdict.A if assignment.shown_left == Side.A else Verdict.B)
    assert judgment.choice == Choice.LEFT
    assert not Assignment.objects.filter(pk=assignment.pk).exists()


def test_repeated_submit_returns_the_first_judgment_and_creates_no_second(campaign, annotator):
    assignment = assignment_next(campaign=campaign, annotator=annotator)
    first = judgment_submit(comparison=assignment.comparison, annotator=annotator, choice=Choice.LEFT)
    repeat = judgment_submit(comparison=assignment.comparison, annotator=annotator, choice=Choice.RIGHT)
    assert not repeat.created
    assert repeat.judgment.pk == first.judgment.pk
    assert repeat.judgment.choice == Choice.LEFT
    assert Judgment.objects.count() == 1


def test_overlap_limits_distinct_annotators_per_pair(db):
    campaign = make_campaign("Overlap", pairs=1, overlap=2)
    users = [make_user(f"u{i}") for i in range(3)]
    judge_next(campaign, users[0])
    judge_next(campaign, users[1])
    assert assignment_next(campaign=campaign, annotator=users[2]) is None


def test_an_unexpired_lease_holds_the_last_slot(db):
    campaign = make_campaign("Lease", pairs=1, overlap=1)
    holder, latecomer = make_user("holder"), make_user("latecomer")
    assert assignment_next(campaign=campaign, annotator=holder) is not None
    assert assignment_next(campaign=campaign, annotator=latecomer) is None


def test_a_pair_held_by_someone_else_comes_back_when_they_skip_it(db):
    campaign = make_campaign("Held", pairs=1, overlap=1)
    holder, latecomer = make_user("holder"), make_user("latecomer")
    lease = assignment_next(campaign=campaign, annotator=holder)
    assert assignment_next(campaign=campaign, annotator=latecomer) is None
    waiting = annotator_waiting_for(campaign=campaign, annotator=latecomer)
    assert waiting.pairs == 1
    assert 0 < waiting.retry_after <= settings.ANNOTATION_LEASE_SECONDS
    assert annotator_waiting_for(campaign=campaign, annotator=holder) is None, "their own lease is not a wait"
    judgment_submit(comparison=lease.comparison, annotator=holder, choice=Choice.SKIP)
    assert assignment_next(campaign=campaign, annotator=latecomer).comparison_id == lease.comparison_id


def test_nothing_to_wait_for_once_every_pair_has_its_votes(db):
    campaign = make_campaign("Full", pairs=1, overlap=1)
    first, second = make_user("first"), make_user("second")
    judge_next(campaign, first)
    assert assignment_next(campaign=campaign, annotator=second) is None
    assert annotator_waiting_for(campaign=campaign, annotator=second) is None


def test_an_expired_lease_frees_its_slot(db):
    campaign = make_campaign("Lease", pairs=1, overlap=1)
    holder, latecomer = make_user("holder"), make_user("latecomer")
    lease = assignment_next(campaign=campaign, annotator=holder)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert assignment_next(campaign=campaign, annotator=latecomer).comparison_id == lease.comparison_id


def test_late_submit_after_lease_expired_and_pair_filled_is_refused_and_records_nothing(db):
    campaign = make_campaign("Lease", pairs=1, overlap=1)
    slow, fast = make_user("slow"), make_user("fast")
    lease = assignment_next(campaign=campaign, annotator=slow)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    judge_next(campaign, fast)
    with pytest.raises(ConflictError, match="expired and other annotators have judged it"):
        judgment_submit(comparison=lease.comparison, annotator=slow, choice=Choice.LEFT)
    assert Judgment.objects.filter(annotator=slow).count() == 0
    assert not Assignment.objects.filter(annotator=slow).exists(), "the stale lease is removed, not rolled back"


def test_late_submit_after_lease_expired_is_accepted_while_a_slot_is_free(db):
    campaign = make_campaign("Lease", pairs=1, overlap=1)
    slow = make_user("slow")
    lease = assignment_next(campaign=campaign, annotator=slow)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert judgment_submit(comparison=lease.comparison, annotator=slow, choice=Choice.TIE).created


def test_submit_without_being_handed_the_pair_is_refused(campaign, annotator):
    comparison = campaign.prompts.first().comparisons.first()
    with pytest.raises(ConflictError, match="was not handed to you"):
        judgment_submit(comparison=comparison, annotator=annotator, choice=Choice.LEFT)


def test_skip_is_recorded_frees_the_slot_and_is_never_shown_again(db):
    campaign = make_campaign("Skip", pairs=1, overlap=1)
    skipper, other = make_user("skipper"), make_user("other")
    skipped = judge_next(campaign, skipper, Choice.SKIP)
    assert skipped.verdict == Verdict.SKIP
    assert assignment_next(campaign=campaign, annotator=skipper) is None
    assert assignment_next(campaign=campaign, annotator=other).comparison_id == skipped.comparison_id


def test_options_the_campaign_does_not_offer_are_refused(db):
    campaign = make_campaign("Strict", pairs=1, allow_tie=False, allow_both_bad=False)
    user = make_user("u")
    lease = assignment_next(campaign=campaign, annotator=user)
    for choice in (Choice.TIE, Choice.BOTH_BAD):
        with pytest.raises(InputError, match="does not offer"):
            judgment_submit(comparison=lease.comparison, annotator=user, choice=choice)
    with pytest.raises(InputError, match="choice is 'middle'"):
        judgment_submit(comparison=lease.comparison, annotator=user, choice="middle")


@pytest.mark.parametrize(
    ("options", "choice", "message"),
    [
        ({"allow_tie": False}, Choice.TIE, "does not offer 'tie': pick a side, 'both_bad' or 'skip'."),
        ({"allow_both_bad": False}, Choice.BOTH_BAD, "does not offer 'both_bad': pick a side, 'tie' or 'skip'."),
        ({"allow_tie": False, "allow_both_bad": False}, Choice.TIE, "does not offer 'tie': pick a side or 'skip'."),
    ],
)
def test_a_refused_option_names_the_options_the_campaign_offers(db, options, choice, message):
    campaign = make_campaign("Strict", pairs=1, **options)
    user = make_user("u")
    lease = assignment_next(campaign=campaign, annotator=user)
    with pytest.raises(InputError) as refused:
        judgment_submit(comparison=lease.comparison, annotator=user, choice=choice)
    assert refused.value.message == f"Campaign 'Strict' {message}"


def test_undo_withdraws_the_judgment_and_hands_the_same_pair_back_with_same_sides(campaign, annotator):
    first = judge_next(campaign, annotator)
    second = judge_next(campaign, annotator, Choice.RIGHT)
    now_showing = assignment_next(campaign=campaign, annotator=annotator)
    result = judgment_undo(campaign=campaign, annotator=annotator, judgment_id=second.pk)
    assert result.created
    assert list(Judgment.objects.values_list("pk", flat=True)) == [first.pk]
    withdrawn = WithdrawnJudgment.objects.get()
    assert withdrawn == result.withdrawn
    assert (withdrawn.pk, withdrawn.choice, withdrawn.reason) == (second.pk, Choice.RIGHT, WithdrawalReason.UNDO)
    assert withdrawn.withdrawn_by == annotator and withdrawn.withdrawn_at >= second.created_at
    again = assignment_next(campaign=campaign, annotator=annotator)
    assert (again.comparison_id, again.shown_left) == (second.comparison_id, second.shown_left)
    assert now_showing.comparison_id != again.comparison_id


def test_a_withdrawn_judgment_keeps_every_field_the_judgment_had(campaign, annotator):
    lease = assignment_next(campaign=campaign, annotator=annotator)
    judgment = judgment_submit(
        comparison=lease.comparison, annotator=annotator, choice=Choice.TIE, rationale="same", duration_ms=1234
    ).judgment
    withdrawn = judgment_undo(campaign=campaign, annotator=annotator, judgment_id=judgment.pk).withdrawn
    withdrawn.refresh_from_db()
    for field in Judgment._meta.concrete_fields:
        assert getattr(withdrawn, field.attname) == getattr(judgment, field.attname), field.name


def test_undoing_the_same_judgment_again_returns_it_and_undoes_nothing_more(campaign, annotator):
    first = judge_next(campaign, annotator)
    second = judge_next(campaign, annotator)
    undone = judgment_undo(campaign=campaign, annotator=annotator, judgment_id=second.pk)
    repeat = judgment_undo(campaign=campaign, annotator=annotator, judgment_id=second.pk)
    assert not repeat.created
    assert repeat.withdrawn == undone.withdrawn
    assert list(Judgment.objects.values_list("pk", flat=True)) == [first.pk], "the judgment before stays"
    assert WithdrawnJudgment.objects.count() == 1


def test_a_repeated_undo_after_judging_the_pair_again_leaves_the_new_judgment(campaign, annotator):
    judgment = judge_next(campaign, annotator, Choice.LEFT)
    judgment_undo(campaign=campaign, annotator=annotator, judgment_id=judgment.pk)
    rejudged = judge_next(campaign, annotator, Choice.RIGHT)
    assert rejudged.comparison_id == judgment.comparison_id and rejudged.pk != judgment.pk
    assert not judgment_undo(campaign=campaign, annotator=annotator, judgment_id=judgment.pk).created
    assert list(Judgment.objects.values_list("pk", "verdict")) == [(rejudged.pk, rejudged.verdict)]


def test_only_the_latest_judgment_can_be_undone(campaign, annotator):
    first = judge_next(campaign, annotator)
    second = judge_next(campaign, annotator)
    with pytest.raises(ConflictError) as refused:
        judgment_undo(campaign=campaign, annotator=annotator, judgment_id=first.pk)
    assert refused.value.message == (
        f"Judgment {first.pk} is not your latest in campaign 'Helpfulness': only your latest judgment "
        f"({second.pk}) can be undone; nothing was undone."
    )
    assert Judgment.objects.count() == 2 and not WithdrawnJudgment.objects.exists()


def test_undo_is_refused_once_its_window_has_passed(campaign, annotator, settings):
    settings.ANNOTATION_UNDO_SECONDS = 120
    judgment = judge_next(campaign, annotator)
    Judgment.objects.filter(pk=judgment.pk).update(created_at=timezone.now() - timedelta(seconds=121))
    with pytest.raises(ConflictError) as refused:
        judgment_undo(campaign=campaign, annotator=annotator, judgment_id=judgment.pk)
    assert refused.value.message == (
        f"Judgment {judgment.pk} was recorded more than 2 minutes ago: a judgment can be undone only within "
        "2 minutes of recording it; nothing was undone."
    )
    assert Judgment.objects.filter(pk=judgment.pk).exists() and not WithdrawnJudgment.objects.exists()


def test_undo_of_a_judgment_that_is_not_yours_is_refused(campaign, annotator, other_annotator):
    theirs = judge_next(campaign, other_annotator)
    with pytest.raises(ConflictError, match=f"You have no judgment {theirs.pk} in campaign 'Helpfulness'"):
        judgment_undo(campaign=campaign, annotator=annotator, judgment_id=theirs.pk)
    judgment_undo(campaign=campaign, annotator=other_annotator, judgment_id=theirs.pk)
    with pytest.raises(ConflictError, match="You have no judgment"):
        judgment_undo(campaign=campaign, annotator=annotator, judgment_id=theirs.pk)
    assert WithdrawnJudgment.objects.get().withdrawn_by == other_annotator


def test_undo_of_a_judgment_staff_deleted_is_refused(campaign, annotator, staff):
    judgment = judge_next(campaign, annotator)
    judgments_delete(judgments=Judgment.objects.filter(pk=judgment.pk), deleted_by=staff)
    with pytest.raises(ConflictError) as refused:
        judgment_undo(campaign=campaign, annotator=annotator, judgment_id=judgment.pk)
    assert refused.value.message == f"Judgment {judgment.pk} was deleted in the admin: nothing was undone."


def test_progress_counts_done_and_what_is_still_open_for_the_annotator(db):
    campaign = make_campaign("Progress", pairs=4, overlap=1)
    me, other = make_user("me"), make_user("other")
    judge_next(campaign, me)
    judge_next(campaign, other)
    progress = campaign_progress_for(campaign=campaign, annotator=me)
    assert (progress.done, progress.remaining, progress.total) == (1, 2, 3)


def test_annotators_outside_a_restricted_campaign_are_refused(campaign, annotator, other_annotator):
    campaign.annotators.add(other_annotator)
    with pytest.raises(ConflictError, match="not an annotator"):
        assignment_next(campaign=campaign, annotator=annotator)


def test_campaign_create_refuses_bad_input(db):
    with pytest.raises(InputError, match="at least 1 annotator"):
        campaign_create(name="x", overlap=0)
    campaign_create(name="taken")
    with pytest.raises(ConflictError, match="exists already"):
        campaign_create(name="taken")


def test_ai_judgments_take_no_human_slot(db):
    campaign = make_campaign("With judge", pairs=1, overlap=1)
    comparison = campaign.prompts.first().comparisons.first()
    ai_judgments_record(
        judge=make_user("ai-judge"), verdicts=[AiVerdict(comparison, Verdict.A, shown_left=Side.A, details={})]
    )
    assert assignment_next(campaign=campaign, annotator=make_user("human")).comparison_id == comparison.pk


def test_an_ai_judge_records_one_judgment_per_pair_and_its_first_verdict_stays(db):
    campaign = make_campaign("Judged twice", pairs=2, overlap=1)
    first, second = (prompt.comparisons.get() for prompt in campaign.prompts.order_by("id"))
    judge = make_user("ai-judge")
    created = ai_judgments_record(
        judge=judge,
        verdicts=[
            AiVerdict(first, Verdict.A, shown_left=Side.A, details={"consistent": True}),
            AiVerdict(first, Verdict.B, shown_left=Side.A, details={}),
        ],
    )
    assert [(j.comparison_id, j.verdict, j.source) for j in created] == [(first.pk, Verdict.A, "ai")]
    again = ai_judgments_record(
        judge=judge,
        verdicts=[AiVerdict(first, Verdict.TIE, Side.A, {}), AiVerdict(second, Verdict.SKIP, Side.A, {})],
    )
    assert [j.comparison_id for j in again] == [second.pk]
    stored = Judgment.objects.get(comparison=first, annotator=judge)
    assert (stored.verdict, stored.details) == (Verdict.A, {"consistent": True})
    assert set(campaign.prompts.values_list("comparisons__human_votes", flat=True)) == {0}
    with pytest.raises(InputError, match="verdict is 'left'"):
        ai_judgments_record(judge=judge, verdicts=[AiVerdict(second, "left", Side.A, {})])


def test_a_prompt_is_stored_once_per_campaign(db):
    from annotator.services import prompt_get_or_create

    campaign, other = make_campaign("One", pairs=0), make_campaign("Two", pairs=0)
    first, created = prompt_get_or_create(campaign=campaign, prompt="Hi", system="Be brief.")
    again, created_again = prompt_get_or_create(
        campaign=campaign, prompt=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    elsewhere, created_elsewhere = prompt_get_or_create(campaign=other, prompt="Hi", system="Be brief.")
    assert (created, created_again, created_elsewhere) == (True, False, True)
    assert again.pk == first.pk and elsewhere.pk != first.pk
    with pytest.raises(InputError, match="Bad prompt: 'prompt' must end with a user turn"):
        prompt_get_or_create(campaign=campaign, prompt=[{"role": "assistant", "content": "x"}])


def test_human_votes_follow_judgments_skips_and_undo(db):
    campaign = make_campaign("Votes", pairs=1, overlap=3)
    comparison = campaign.prompts.first().comparisons.first()
    users = [make_user(f"v{i}") for i in range(3)]
    judge_next(campaign, users[0], Choice.LEFT)
    judge_next(campaign, users[1], Choice.SKIP)
    judge_next(campaign, users[2], Choice.TIE)
    comparison.refresh_from_db()
    assert comparison.human_votes == 2
    for user in (users[2], users[1]):
        judgment_undo(campaign=campaign, annotator=user, judgment_id=Judgment.objects.get(annotator=user).pk)
    comparison.refresh_from_db()
    assert comparison.human_votes == 1


def test_deleting_judgments_keeps_them_as_withdrawn_and_reopens_their_pairs(db):
    campaign = make_campaign("Spam", pairs=2, overlap=1)
    spammer, honest, staff = make_user("spammer"), make_user("honest"), make_user("boss", staff=True)
    judged = [judge_next(campaign, spammer).pk, judge_next(campaign, spammer).pk]
    assert assignment_next(campaign=campaign, annotator=honest) is None
    assert judgments_delete(judgments=Judgment.objects.filter(annotator=spammer), deleted_by=staff) == 2
    assert set(campaign.prompts.values_list("comparisons__human_votes", flat=True)) == {0}
    assert assignment_next(campaign=campaign, annotator=honest) is not None
    assert list(WithdrawnJudgment.objects.values_list("pk", "annotator", "withdrawn_by", "reason")) == [
        (pk, spammer.pk, staff.pk, WithdrawalReason.DELETED) for pk in judged
    ]


def test_judged_content_cannot_be_edited(campaign, annotator):
    judged = judge_next(campaign, annotator).comparison
    prompt, candidate = judged.prompt, judged.candidate_a
    prompt.messages = [{"role": "user", "content": "Something else?"}]
    with pytest.raises(ConflictError) as refused:
        prompt.save()
    assert refused.value.message == (
        f"Prompt {prompt.pk} has judgments, so its messages can no longer change (the judgments are of it as it "
        "was): add a new prompt instead."
    )
    candidate.text = "Edited"
    with pytest.raises(ConflictError, match=f"Candidate {candidate.pk} has judgments, so its text can no longer"):
        candidate.save()
    judged.candidate_b = judged.candidate_a
    with pytest.raises(ConflictError, match=f"Comparison {judged.pk} has judgments, so its candidate_b can no"):
        judged.save()
    judged.refresh_from_db()
    judged.metadata = {"note": "fine"}
    judged.save()
    open_pair = campaign.prompts.exclude(pk=prompt.pk).first()
    open_pair.system = "Be brief."
    open_pair.save()
    open_pair.refresh_from_db()
    assert open_pair.system == "Be brief.", "content nobody judged yet can still be fixed"


def test_the_open_pairs_statement_gives_what_comparisons_open_for_gives_in_the_same_order(db):
    """The assignment's locking read is written in SQL (annotator/services.py): it must pick the very pairs
    `comparisons_open_for` describes, in its order, whatever the votes, leases and priorities."""
    from annotator.selectors import comparisons_open_for
    from annotator.services import _open_pairs_lock

    campaign = make_campaign("Mixed", pairs=12, overlap=2)
    me, other, third = make_user("me"), make_user("other"), make_user("third")
    pairs = list(Comparison.objects.filter(prompt__campaign=campaign).order_by("id"))
    Comparison.objects.filter(pk__in=[pairs[3].pk, pairs[7].pk]).update(priority=2)
    Comparison.objects.filter(pk=pairs[5].pk).update(priority=-1)
    now = timezone.now()

    def lease(pair, user, *, expires_in):
        Assignment.objects.create(
            comparison=pair, annotator=user, shown_left=Side.A, served_at=now, expires_at=now + expires_in
        )

    lease(pairs[0], me, expires_in=timedelta(minutes=5))  # then judged by me: never again for me
    judgment_submit(comparison=pairs[0], annotator=me, choice=Choice.SKIP)
    for user in (other, third):  # full by votes
        lease(pairs[1], user, expires_in=timedelta(minutes=5))
        judgment_submit(comparison=pairs[1], annotator=user, choice=Choice.LEFT)
    lease(pairs[2], other, expires_in=timedelta(minutes=5))  # one vote and one live lease: full
    judgment_submit(comparison=pairs[2], annotator=other, choice=Choice.LEFT)
    lease(pairs[2], third, expires_in=timedelta(minutes=5))
    lease(pairs[3], other, expires_in=timedelta(minutes=5))  # two live leases of others: full
    lease(pairs[3], third, expires_in=timedelta(minutes=5))
    lease(pairs[4], other, expires_in=timedelta(minutes=5))  # one live lease: a slot left
    lease(pairs[6], other, expires_in=-timedelta(minutes=5))  # expired leases hold nothing
    lease(pairs[6], third, expires_in=-timedelta(seconds=1))
    lease(pairs[7], me, expires_in=timedelta(minutes=5))  # my own lease takes no slot from me

    expected = list(comparisons_open_for(campaign=campaign, annotator=me).values_list("pk", "human_votes", "settled"))
    assert [pk for pk, *_ in expected] == [pairs[i].pk for i in (7, 4, 6, 8, 9, 10, 11, 5)]
    for limit in (1, 3, 8, 20):
        got = _open_pairs_lock(campaign=campaign, annotator=me, now=timezone.now(), limit=limit, wait=False)
        assert [tuple(row) for row in got] == expected[:limit]


@pytest.mark.parametrize("ranking", [False, True])
def test_the_open_pairs_statement_agrees_under_adaptive_overlap_and_in_ranking_campaigns(db, ranking):
    import itertools

    from annotator.selectors import comparisons_open_for
    from annotator.services import (
        _open_pairs_lock,
        campaign_overlap_set,
        candidate_create,
        comparison_create,
        prompt_get_or_create,
    )

    campaign = make_campaign("Adaptive mixed", pairs=6, overlap=3, min_votes=2, rank_candidates=ranking)
    prompt, _ = prompt_get_or_create(campaign=campaign, prompt="Three answers")
    three = [candidate_create(prompt=prompt, text=f"Answer {i}") for i in range(3)]
    for a, b in itertools.combinations(three, 2):
        comparison_create(candidate_a=a, candidate_b=b)
    pairs = list(Comparison.objects.filter(prompt__campaign=campaign).order_by("id"))
    users = [make_user(f"u{i}") for i in range(3)]
    me = make_user("me")
    now = timezone.now()
    for user, verdict in zip(users[:2], ("left", "left"), strict=True):  # pair 0: two agreeing votes, settled
        Assignment.objects.create(comparison=pairs[0], annotator=user, shown_left=Side.A, served_at=now,
                                  expires_at=now + timedelta(minutes=5))  # fmt: skip
        judgment_submit(comparison=pairs[0], annotator=user, choice=verdict)
    for user, verdict in zip(users[:2], ("left", "right"), strict=True):  # pair 1: split, a third wanted
        Assignment.objects.create(comparison=pairs[1], annotator=user, shown_left=Side.A, served_at=now,
                                  expires_at=now + timedelta(minutes=5))  # fmt: skip
        judgment_submit(comparison=pairs[1], annotator=user, choice=verdict)
    Assignment.objects.create(comparison=pairs[2], annotator=users[0], shown_left=Side.A, served_at=now,
                              expires_at=now + timedelta(minutes=5))  # fmt: skip  # pair 2: one of 2 slots held
    for user in users[:2]:  # pair 3: both first slots held
        Assignment.objects.create(comparison=pairs[3], annotator=user, shown_left=Side.A, served_at=now,
                                  expires_at=now + timedelta(minutes=5))  # fmt: skip
    campaign_overlap_set(campaign=campaign, overlap=3, min_votes=2)
    campaign.refresh_from_db()
    expected = list(comparisons_open_for(campaign=campaign, annotator=me).values_list("pk", "human_votes", "settled"))
    open_ids = [pk for pk, *_ in expected]
    assert pairs[0].pk not in open_ids and pairs[3].pk not in open_ids
    assert pairs[1].pk in open_ids and pairs[2].pk in open_ids
    ranked = [c.pk for c in pairs[6:]]
    assert [pk for pk in open_ids if pk in ranked] == (ranked[:1] if ranking else ranked)
    for limit in (1, 4, 20):
        got = _open_pairs_lock(campaign=campaign, annotator=me, now=timezone.now(), limit=limit, wait=False)
        assert [tuple(row) for row in got] == expected[:limit]
