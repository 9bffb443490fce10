"""Writes: creating campaign content, handing out pairs, recording and undoing judgments (people's and AI judges').

Keyword-only functions named `<entity>_<action>`, each one transaction. Views, the API and management
commands call these and nothing else writes to the annotation tables.
"""

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotator.models import (
    DURATION_MS_MAX,
    Assignment,
    Campaign,
    Candidate,
    Choice,
    Comparison,
    JudgeSource,
    Judgment,
    Prompt,
    Side,
    Verdict,
    WithdrawalReason,
    WithdrawnJudgment,
    verdict_for_choice,
)
from annotator.selectors import (
    campaign_is_open_to,
    comparisons_open_for,
    judgment_last_for,
    judgment_undo_deadline,
)
from core.conversations import conversation_hash, conversation_normalize
from core.errors import ConflictError, InputError

# ---------------------------------------------------------------------------------------------------------
# Campaign content


def campaign_create(
    *,
    name: str,
    guidelines: str = "",
    description: str = "",
    overlap: int = 1,
    allow_tie: bool = True,
    allow_both_bad: bool = True,
    created_by: AbstractBaseUser | None = None,
) -> Campaign:
    name = name.strip()
    if not name:
        raise InputError("A campaign needs a name.")
    longest = Campaign._meta.get_field("name").max_length
    if len(name) > longest:
        raise InputError(f"The campaign name is {len(name)} characters long: keep it to {longest}.")
    if overlap < 1:
        raise InputError(f"overlap is {overlap}: each pair needs at least 1 annotator.")
    if Campaign.objects.filter(name=name).exists():
        raise ConflictError(f"A campaign named {name!r} exists already: pick another name.")
    return Campaign.objects.create(
        name=name,
        guidelines=guidelines,
        description=description,
        overlap=overlap,
        allow_tie=allow_tie,
        allow_both_bad=allow_both_bad,
        created_by=created_by,
    )


def campaign_get_or_create(*, name: str, created_by: AbstractBaseUser | None = None) -> tuple[Campaign, bool]:
    campaign = Campaign.objects.filter(name=name.strip()).first()
    if campaign is not None:
        return campaign, False
    return campaign_create(name=name, created_by=created_by), True


def prompt_get_or_create(
    *, campaign: Campaign, prompt: str | list[dict[str, str]], system: str = "", metadata: dict | None = None
) -> tuple[Prompt, bool]:
    """The campaign's prompt with this conversation (one per campaign), created if needed."""
    try:
        messages, system = conversation_normalize(prompt, system)
    except ValueError as error:
        raise InputError(f"Bad prompt: {error}.") from None
    content_hash = conversation_hash(messages, system)
    existing = Prompt.objects.filter(campaign=campaign, content_hash=content_hash).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            created = Prompt.objects.create(
                campaign=campaign, messages=messages, system=system, metadata=metadata or {}, content_hash=content_hash
            )
    except IntegrityError:  # created by someone else a moment ago
        return Prompt.objects.get(campaign=campaign, content_hash=content_hash), False
    return created, True


def candidate_create(*, prompt: Prompt, text: str, **provenance: Any) -> Candidate:
    return Candidate.objects.create(prompt=prompt, text=text, **provenance)


def comparison_create(*, candidate_a: Candidate, candidate_b: Candidate, metadata: dict | None = None) -> Comparison:
    if candidate_a.prompt_id != candidate_b.prompt_id:
        raise InputError(
            f"Candidates {candidate_a.pk} and {candidate_b.pk} answer different prompts: "
            "a comparison pairs two responses to the same prompt."
        )
    if candidate_a.pk == candidate_b.pk:
        raise InputError(f"A comparison needs two different candidates, got {candidate_a.pk} twice.")
    return Comparison.objects.create(
        prompt_id=candidate_a.prompt_id, candidate_a=candidate_a, candidate_b=candidate_b, metadata=metadata or {}
    )


# ---------------------------------------------------------------------------------------------------------
# Assignment: who sees which pair next


def _lease_expiry() -> timezone.datetime:
    return timezone.now() + timedelta(seconds=settings.ANNOTATION_LEASE_SECONDS)


def _slots_taken(*, comparison_id: int, annotator: AbstractBaseUser) -> int:
    """Slots of a comparison held by other people: their non-skip judgments (`human_votes`; the annotator
    has none on it when this is asked) plus their unexpired leases. AI judgments take no slot.

    Called while holding the comparison's row lock, in statements of its own, so it sees every lease
    committed before the lock was granted (leases are only written under that lock).
    """
    votes = Comparison.objects.filter(pk=comparison_id).values_list("human_votes", flat=True).get()
    leased = Assignment.objects.filter(comparison_id=comparison_id, expires_at__gt=timezone.now()).exclude(
        annotator=annotator
    )
    return votes + leased.count()


_BUSY = object()  # every open pair was being handed to someone else at that instant: try again

# The hot path's two reads, in SQL written once: the ORM took longer to build these statements (subqueries,
# joins through the prompt) than the database took to run them. Plain SQL that SQLite and PostgreSQL share.

# The annotator's unexpired lease in the campaign on a pair they have not judged, latest first.
_LEASE_CURRENT_SQL = """
SELECT a.* FROM annotator_assignment a
JOIN annotator_comparison c ON c.id = a.comparison_id
JOIN annotator_prompt p ON p.id = c.prompt_id
WHERE a.annotator_id = %s AND p.campaign_id = %s AND a.expires_at > %s
  AND NOT EXISTS (SELECT 1 FROM annotator_judgment j WHERE j.comparison_id = a.comparison_id AND j.annotator_id = %s)
ORDER BY a.served_at DESC, a.id DESC
LIMIT 1"""

# `comparisons_open_for` (selectors.py), the first rows of it: pk and human_votes. tests/annotator/
# test_services.py checks that the two give the same pairs in the same order.
_OPEN_PAIRS_SQL = """
SELECT c.id, c.human_votes FROM annotator_comparison c
JOIN annotator_prompt p ON p.id = c.prompt_id
WHERE p.campaign_id = %s AND c.human_votes < %s
  AND NOT EXISTS (SELECT 1 FROM annotator_judgment j WHERE j.comparison_id = c.id AND j.annotator_id = %s)
  AND c.human_votes + (
    SELECT COUNT(*) FROM annotator_assignment a
    WHERE a.comparison_id = c.id AND a.expires_at > %s AND a.annotator_id <> %s
  ) < %s
ORDER BY c.priority DESC, c.id
LIMIT %s"""


def _lease_current(*, campaign: Campaign, annotator: AbstractBaseUser, now: timezone.datetime) -> Assignment | None:
    at = connection.ops.adapt_datetimefield_value(now)
    leases = Assignment.objects.raw(_LEASE_CURRENT_SQL, [annotator.pk, campaign.pk, at, annotator.pk])
    return next(iter(leases), None)


def _open_pairs_lock(
    *, campaign: Campaign, annotator: AbstractBaseUser, now: timezone.datetime, limit: int, wait: bool
) -> list[tuple[int, int]]:
    """The first `limit` pairs open to the annotator, (pk, human_votes), their rows locked where the database
    locks rows (PostgreSQL), skipping those another transaction is locking unless `wait`. human_votes comes
    from the locking statement, so it is the row's latest committed value."""
    sql = _OPEN_PAIRS_SQL
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE OF c" + ("" if wait else " SKIP LOCKED")
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign.pk, campaign.overlap, annotator.pk, at, annotator.pk, campaign.overlap, limit])
        return cursor.fetchall()


def _assignment_try(*, campaign: Campaign, annotator: AbstractBaseUser, wait: bool) -> Assignment | object | None:
    now = timezone.now()
    with transaction.atomic():
        current = _lease_current(campaign=campaign, annotator=annotator, now=now)
        if current is not None:
            return current
        batch = _open_pairs_lock(campaign=campaign, annotator=annotator, now=now, limit=1 if wait else 8, wait=wait)
        if not batch:
            return _BUSY if comparisons_open_for(campaign=campaign, annotator=annotator).exists() else None
        for comparison_id, votes in batch:
            # Leases live in another table: read them under the row lock, in a statement of its own, since
            # the query above may predate a lease another annotator committed a moment ago.
            leases = list(Assignment.objects.filter(comparison_id=comparison_id))
            held = sum(1 for lease in leases if lease.annotator_id != annotator.pk and lease.expires_at > now)
            if votes + held >= campaign.overlap:
                continue
            mine = next((lease for lease in leases if lease.annotator_id == annotator.pk), None)
            return _lease_write(comparison_id=comparison_id, annotator=annotator, now=now, expired=mine)
        return _BUSY


def _lease_write(
    *, comparison_id: int, annotator: AbstractBaseUser, now: timezone.datetime, expired: Assignment | None
) -> Assignment:
    """Lease a comparison to an annotator: a fresh lease gets random sides, a renewed one keeps its sides."""
    if expired is not None:
        expired.served_at, expired.expires_at = now, _lease_expiry()
        expired.save(update_fields=["served_at", "expires_at"])
        return expired
    return Assignment.objects.create(
        comparison_id=comparison_id,
        annotator=annotator,
        shown_left=random.choice([Side.A, Side.B]),
        served_at=now,
        expires_at=_lease_expiry(),
    )


def assignment_next(*, campaign: Campaign, annotator: AbstractBaseUser) -> Assignment | None:
    """Hand the annotator the pair they should judge now, or None when nothing is left for them.

    A pair already leased to them and not judged comes back first (a reload shows the same pair, same
    sides). Otherwise the lowest open comparisons are locked, skipping rows other annotators are locking
    at this moment (PostgreSQL), their free slots are recounted under the lock, and a lease is written with
    a random left/right order. On SQLite, IMMEDIATE transactions serialise the same steps. When every open
    pair is being handed out by someone else at that instant, it tries again, and finally waits for a lock.
    """
    if not campaign_is_open_to(campaign=campaign, user=annotator):
        raise ConflictError(f"You are not an annotator of campaign {campaign.name!r}.")
    for attempt in range(5):
        result = _assignment_try(campaign=campaign, annotator=annotator, wait=False)
        if result is not _BUSY:
            return result
        time.sleep(0.002 * (attempt + 1))
    while (result := _assignment_try(campaign=campaign, annotator=annotator, wait=True)) is _BUSY:
        pass
    return result


# ---------------------------------------------------------------------------------------------------------
# Judgments


@dataclass(frozen=True)
class JudgmentResult:
    judgment: Judgment
    created: bool


def _check_choice_offered(*, campaign: Campaign, choice: str) -> None:
    if choice not in Choice.values:
        raise InputError(f"choice is {choice!r}: use one of {', '.join(Choice.values)}.")
    offered = campaign.offered_choices
    if choice not in offered:
        others = ["a side"] + [f"'{c}'" for c in (Choice.TIE, Choice.BOTH_BAD, Choice.SKIP) if c in offered]
        raise InputError(
            f"Campaign {campaign.name!r} does not offer '{choice}': pick {', '.join(others[:-1])} or {others[-1]}."
        )


def judgment_submit(
    *,
    comparison: Comparison,
    annotator: AbstractBaseUser,
    choice: str,
    rationale: str = "",
    duration_ms: int | None = None,
) -> JudgmentResult:
    """Record an annotator's verdict on a pair they were handed. Idempotent: a repeat returns the first.

    The left/right mapping comes from the annotator's lease, never from the client. The comparison row is
    locked while the slot is checked, so double clicks and concurrent submits make exactly one judgment.
    """
    campaign = comparison.prompt.campaign
    _check_choice_offered(campaign=campaign, choice=choice)
    if duration_ms is not None and not 0 <= duration_ms <= DURATION_MS_MAX:
        raise InputError(f"duration_ms is {duration_ms}: it must be 0 to {DURATION_MS_MAX} milliseconds (a day).")
    with transaction.atomic():
        list(Comparison.objects.select_for_update().filter(pk=comparison.pk).values_list("pk", flat=True))
        existing = Judgment.objects.filter(comparison=comparison, annotator=annotator).first()
        if existing is not None:
            return JudgmentResult(existing, created=False)
        assignment = Assignment.objects.filter(comparison=comparison, annotator=annotator).first()
        if assignment is None:
            raise ConflictError(
                f"Comparison {comparison.pk} was not handed to you: ask for the next pair first "
                f"(GET /api/campaigns/{campaign.pk}/next/)."
            )
        now = timezone.now()
        stale = (
            choice != Choice.SKIP
            and assignment.expires_at <= now
            and _slots_taken(comparison_id=comparison.pk, annotator=annotator) >= campaign.overlap
        )
        if stale:
            # Committed with this transaction, before the refusal below: the lease no longer holds anything.
            assignment.delete()
        else:
            return _judgment_record(
                assignment=assignment,
                comparison=comparison,
                annotator=annotator,
                choice=choice,
                rationale=rationale,
                duration_ms=duration_ms,
            )
    raise ConflictError(
        f"Your hold on comparison {comparison.pk} expired and other annotators have judged it "
        "meanwhile: nothing was recorded; go on with the next pair."
    )


def _judgment_record(
    *,
    assignment: Assignment,
    comparison: Comparison,
    annotator: AbstractBaseUser,
    choice: str,
    rationale: str,
    duration_ms: int | None,
) -> JudgmentResult:
    """A person's judgment on the pair leased to them, in the caller's transaction, which holds the pair's row
    lock: the judgment, their vote in `human_votes`, and the lease it used up removed."""
    if duration_ms is None:
        duration_ms = int((timezone.now() - assignment.served_at).total_seconds() * 1000)
    try:
        with transaction.atomic():
            judgment = Judgment.objects.create(
                comparison=comparison,
                annotator=annotator,
                verdict=verdict_for_choice(choice=choice, shown_left=assignment.shown_left),
                shown_left=assignment.shown_left,
                rationale=rationale.strip(),
                duration_ms=duration_ms,
                source=JudgeSource.HUMAN,
            )
    except IntegrityError:
        # Only reachable where the row lock is a no-op and transactions are not serialised.
        return JudgmentResult(Judgment.objects.get(comparison=comparison, annotator=annotator), created=False)
    if judgment.verdict != Verdict.SKIP:
        Comparison.objects.filter(pk=comparison.pk).update(human_votes=F("human_votes") + 1)
    assignment.delete()
    return JudgmentResult(judgment, created=True)


@dataclass(frozen=True)
class WithdrawalResult:
    withdrawn: WithdrawnJudgment
    created: bool  # False: it had been withdrawn already (a repeated undo), nothing changed


def _withdrawn_copy(judgment: Judgment, *, by: AbstractBaseUser, reason: str) -> WithdrawnJudgment:
    """The judgment as a withdrawn record (unsaved): every field it has, its id too, and who, when and why."""
    fields = {field.attname: getattr(judgment, field.attname) for field in Judgment._meta.concrete_fields}
    return WithdrawnJudgment(**fields, withdrawn_at=timezone.now(), withdrawn_by=by, reason=reason)


def _seconds_in_words(seconds: int) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def judgment_undo(*, campaign: Campaign, annotator: AbstractBaseUser, judgment_id: int) -> WithdrawalResult:
    """Take back the annotator's judgment `judgment_id` and hand its pair back to them, same sides, fresh lease.

    Only their latest human judgment in the campaign, within `ANNOTATION_UNDO_SECONDS` of recording it. The
    judgment moves to WithdrawnJudgment, so exports and reports never count it and the pair can be judged
    again. Naming the judgment makes a repeat harmless: undoing one already undone returns it unchanged.
    """
    mine = Judgment.objects.filter(
        pk=judgment_id, annotator=annotator, comparison__prompt__campaign=campaign, source=JudgeSource.HUMAN
    )
    with transaction.atomic():
        target = mine.first()
        if target is not None:
            # The pair's row lock first, as every judgment write takes it; then the judgment again, under it
            # (a concurrent undo of the same judgment may have moved it meanwhile).
            comparisons = Comparison.objects.filter(pk=target.comparison_id)
            list(comparisons.select_for_update().values_list("pk", flat=True))
            target = mine.first()
        if target is None:
            return WithdrawalResult(
                _judgment_undone_already(campaign=campaign, annotator=annotator, judgment_id=judgment_id), created=False
            )
        latest = judgment_last_for(campaign=campaign, annotator=annotator)
        if latest.pk != target.pk:
            raise ConflictError(
                f"Judgment {target.pk} is not your latest in campaign {campaign.name!r}: only your latest "
                f"judgment ({latest.pk}) can be undone; nothing was undone."
            )
        if timezone.now() >= judgment_undo_deadline(judgment=target):
            window = _seconds_in_words(settings.ANNOTATION_UNDO_SECONDS)
            raise ConflictError(
                f"Judgment {target.pk} was recorded more than {window} ago: a judgment can be undone only "
                f"within {window} of recording it; nothing was undone."
            )
        withdrawn = _withdrawn_copy(target, by=annotator, reason=WithdrawalReason.UNDO)
        withdrawn.save(force_insert=True)
        target.delete()
        if target.verdict != Verdict.SKIP:
            comparisons.update(human_votes=F("human_votes") - 1)
        Assignment.objects.update_or_create(
            comparison_id=target.comparison_id,
            annotator=annotator,
            defaults={"shown_left": target.shown_left, "served_at": timezone.now(), "expires_at": _lease_expiry()},
        )
        return WithdrawalResult(withdrawn, created=True)


def _judgment_undone_already(*, campaign: Campaign, annotator: AbstractBaseUser, judgment_id: int) -> WithdrawnJudgment:
    """The annotator's judgment `judgment_id` that they undid before; a refusal saying why if there is none."""
    withdrawn = WithdrawnJudgment.objects.filter(
        pk=judgment_id, annotator=annotator, comparison__prompt__campaign=campaign
    ).first()
    if withdrawn is None:
        raise ConflictError(
            f"You have no judgment {judgment_id} in campaign {campaign.name!r}: nothing was undone. Undo names one "
            "of your judgments by its id (the id its POST /api/comparisons/<id>/judgments/ answered)."
        )
    if withdrawn.reason != WithdrawalReason.UNDO:
        raise ConflictError(f"Judgment {judgment_id} was {withdrawn.get_reason_display()}: nothing was undone.")
    return withdrawn


@dataclass(frozen=True)
class AiVerdict:
    """An AI judge's verdict on a pair, with what it rests on (model, prompt template, raw outputs)."""

    comparison: Comparison
    verdict: str  # a Verdict; SKIP when the judge's answers could not be read
    shown_left: str  # the candidate the judge was shown first
    details: dict[str, Any]


def ai_judgments_record(*, judge: AbstractBaseUser, verdicts: Sequence[AiVerdict]) -> list[Judgment]:
    """Record an AI judge's verdicts as its judgments, one per pair, like people's: a pair the judge has
    judged already keeps its first judgment. Returns the judgments created.

    An AI judgment takes no slot (`overlap` counts people), so `Comparison.human_votes` stays as it is. The
    pairs' rows are locked, as for people's judgments, so two runs of one judge never judge a pair twice.
    """
    for item in verdicts:
        if item.verdict not in Verdict.values:
            raise InputError(f"verdict is {item.verdict!r}: use one of {', '.join(Verdict.values)}.")
    ids = [item.comparison.pk for item in verdicts]
    with transaction.atomic():
        list(Comparison.objects.select_for_update().filter(pk__in=ids).values_list("pk", flat=True))
        judged = set(
            Judgment.objects.filter(annotator=judge, comparison_id__in=ids).values_list("comparison_id", flat=True)
        )
        fresh = []
        for item in verdicts:
            if item.comparison.pk in judged:
                continue
            judged.add(item.comparison.pk)
            fresh.append(
                Judgment(
                    comparison=item.comparison,
                    annotator=judge,
                    verdict=item.verdict,
                    shown_left=item.shown_left,
                    source=JudgeSource.AI,
                    details=item.details,
                )
            )
        return Judgment.objects.bulk_create(fresh)


def judgments_delete(*, judgments: QuerySet[Judgment], deleted_by: AbstractBaseUser) -> int:
    """Delete judgments (staff removing a spammer's work, say): each is kept as withdrawn, with who deleted it
    and when, and their pairs' human votes are recounted, so those pairs open up again for other annotators.
    Returns how many were deleted."""
    with transaction.atomic():
        comparison_ids = set(judgments.values_list("comparison_id", flat=True))
        comparisons = Comparison.objects.filter(pk__in=comparison_ids)
        list(comparisons.select_for_update().values_list("pk", flat=True))
        doomed = Judgment.objects.filter(pk__in=judgments.values("pk"))
        WithdrawnJudgment.objects.bulk_create(
            _withdrawn_copy(judgment, by=deleted_by, reason=WithdrawalReason.DELETED) for judgment in doomed
        )
        deleted, _ = doomed.delete()
        votes = (
            Judgment.objects.filter(comparison=OuterRef("pk"), source=JudgeSource.HUMAN)
            .exclude(verdict=Verdict.SKIP)
            .order_by()
            .values("comparison")
            .annotate(n=Count("*"))
            .values("n")
        )
        comparisons.update(human_votes=Coalesce(Subquery(votes), 0))
    return deleted
