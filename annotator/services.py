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
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
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
    Strength,
    Verdict,
    WithdrawalReason,
    WithdrawnJudgment,
    verdict_for_choice,
)
from annotator.overlap import OverlapRule, pair_settled, slots_open
from annotator.ranking import ranking_anchor, ranking_withdraw
from annotator.selectors import (
    campaign_is_open_to,
    campaign_with_sentinels,
    comparisons_open_for,
    judgment_last_for,
    judgment_undo_deadline,
)
from core.conversations import conversation_hash, conversation_normalize
from core.errors import ConflictError, InputError
from core.limits import text_check
from core.rows import Columns

# ---------------------------------------------------------------------------------------------------------
# Campaign content


def campaign_create(
    *,
    name: str,
    guidelines: str = "",
    description: str = "",
    overlap: int = 1,
    min_votes: int | None = None,
    settle_margin: int = 2,
    allow_tie: bool = True,
    allow_both_bad: bool = True,
    ask_strength: bool = False,
    allow_edits: bool = False,
    compare_edits: bool = False,
    judge_uncertain_first: bool = False,
    rank_candidates: bool = False,
    created_by: AbstractBaseUser | None = None,
) -> Campaign:
    """A campaign whose pairs each get `overlap` people's votes; with `min_votes`, adaptive overlap: at least
    `min_votes`, and more up to `overlap` only while a pair is not settled (see `annotator.overlap`)."""
    name = name.strip()
    if not name:
        raise InputError("A campaign needs a name.")
    longest = Campaign._meta.get_field("name").max_length
    if len(name) > longest:
        raise InputError(f"The campaign name is {len(name)} characters long: keep it to {longest}.")
    if problems := OverlapRule(max_votes=overlap, min_votes=min_votes, settle_margin=settle_margin).check():
        raise InputError(" ".join(problems))
    if Campaign.objects.filter(name=name).exists():
        raise ConflictError(f"A campaign named {name!r} exists already: pick another name.")
    return Campaign.objects.create(
        name=name,
        guidelines=guidelines,
        description=description,
        overlap=overlap,
        min_votes=min_votes,
        settle_margin=settle_margin,
        allow_tie=allow_tie,
        allow_both_bad=allow_both_bad,
        ask_strength=ask_strength,
        allow_edits=allow_edits,
        compare_edits=compare_edits,
        judge_uncertain_first=judge_uncertain_first,
        rank_candidates=rank_candidates,
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


def comparisons_put_first(*, ids: Sequence[int], priority: int) -> int:
    """Raise these pairs' priority to `priority` (people get higher priorities first); never lowered, so a pair
    some other rule put further ahead keeps its place. Returns how many pairs moved up."""
    return Comparison.objects.filter(pk__in=ids, priority__lt=priority).update(priority=priority)


@dataclass(frozen=True)
class PromptSpec:
    """A prompt for `prompts_get_or_create`: as `prompt_get_or_create` takes it."""

    prompt: str | list[dict[str, str]]
    system: str = ""
    metadata: dict | None = None


def prompts_get_or_create(*, campaign: Campaign, prompts: Sequence[PromptSpec]) -> list[tuple[Prompt, bool]]:
    """`prompt_get_or_create` for many prompts in a few queries: (prompt, created) for each, in order. When
    another writer creates one of them meanwhile, they are taken one by one instead (the same outcome)."""
    specs = []
    for spec in prompts:
        try:
            messages, system = conversation_normalize(spec.prompt, spec.system)
        except ValueError as error:
            raise InputError(f"Bad prompt: {error}.") from None
        specs.append((messages, system, spec.metadata or {}, conversation_hash(messages, system)))
    found = {
        prompt.content_hash: prompt
        for prompt in Prompt.objects.filter(campaign=campaign, content_hash__in={spec[3] for spec in specs})
    }
    new: dict[str, Prompt] = {}
    for messages, system, metadata, content_hash in specs:
        if content_hash not in found and content_hash not in new:
            new[content_hash] = Prompt(
                campaign=campaign, messages=messages, system=system, metadata=metadata, content_hash=content_hash
            )
    try:
        with transaction.atomic():
            Prompt.objects.bulk_create(new.values(), batch_size=500)
    except IntegrityError:  # someone created one of them a moment ago
        return [
            prompt_get_or_create(campaign=campaign, prompt=spec.prompt, system=spec.system, metadata=spec.metadata)
            for spec in prompts
        ]
    out = []
    for *_, content_hash in specs:
        if content_hash in found:
            out.append((found[content_hash], False))
        else:
            found[content_hash] = new[content_hash]
            out.append((new[content_hash], True))
    return out


def candidates_create(*, candidates: Sequence[Candidate]) -> list[Candidate]:
    """Write unsaved candidates in bulk (their primary keys are set), once each text is one the database can
    store (core.limits.text_check): an InputError names the first that is not, and nothing is written."""
    for candidate in candidates:
        for field in ("text", "prompt_text"):
            try:
                text_check(getattr(candidate, field), what=f"The candidate's {field}")
            except ValueError as error:
                raise InputError(f"{error}.") from None
    return Candidate.objects.bulk_create(candidates, batch_size=500)


def comparisons_create(*, pairs: Sequence[tuple[Candidate, Candidate, dict]]) -> list[Comparison]:
    """`comparison_create` for many (candidate_a, candidate_b, metadata) at once, checked the same way."""
    comparisons = []
    for candidate_a, candidate_b, metadata in pairs:
        if candidate_a.prompt_id != candidate_b.prompt_id or candidate_a.pk == candidate_b.pk:
            comparison_create(candidate_a=candidate_a, candidate_b=candidate_b)  # raises the InputError
        comparisons.append(
            Comparison(
                prompt_id=candidate_a.prompt_id, candidate_a=candidate_a, candidate_b=candidate_b, metadata=metadata
            )
        )
    return Comparison.objects.bulk_create(comparisons, batch_size=500)


# ---------------------------------------------------------------------------------------------------------
# Assignment: who sees which pair next


def _lease_expiry() -> timezone.datetime:
    return timezone.now() + timedelta(seconds=settings.ANNOTATION_LEASE_SECONDS)


def _slots_full(*, campaign: Campaign, comparison_id: int, annotator: AbstractBaseUser) -> bool:
    """Whether other people fill every slot the campaign's overlap rule opens on a comparison now: with their
    unexpired leases beyond its votes (`human_votes`; the annotator has none on it when this is asked), or
    because it is settled. AI judgments take no slot.

    Called while holding the comparison's row lock, in statements of its own, so it sees every lease
    committed before the lock was granted (leases are only written under that lock).
    """
    votes, settled = Comparison.objects.filter(pk=comparison_id).values_list("human_votes", "settled").get()
    leased = Assignment.objects.filter(comparison_id=comparison_id, expires_at__gt=timezone.now()).exclude(
        annotator=annotator
    )
    return leased.count() >= slots_open(campaign.overlap_rule, votes=votes, settled=settled)


_BUSY = object()  # every open pair was being handed to someone else at that instant: try again

# The hot path's two reads, in SQL written once: the ORM took longer to build these statements (subqueries,
# joins through the prompt) than the database took to run them. Plain SQL that SQLite and PostgreSQL share.

# The annotator's unexpired lease in the campaign (or among its sentinel pairs) on a pair they have not judged,
# latest first.
_LEASE_CURRENT_SQL = """
SELECT a.* FROM annotator_assignment a
JOIN annotator_comparison c ON c.id = a.comparison_id
JOIN annotator_campaign q ON q.id = c.campaign_id
WHERE a.annotator_id = %s AND (q.id = %s OR q.sentinel_of_id = %s) AND a.expires_at > %s
  AND NOT EXISTS (SELECT 1 FROM annotator_judgment j WHERE j.comparison_id = a.comparison_id AND j.annotator_id = %s)
ORDER BY a.served_at DESC, a.id DESC
LIMIT 1"""

# `comparisons_open_for` (selectors.py), the first rows of it: pk, human_votes and settled. tests/annotator/
# test_services.py checks that the two give the same pairs in the same order, for every overlap rule.
_OPEN_PAIRS_SQL = """
SELECT c.id, c.human_votes, c.settled FROM annotator_comparison c
WHERE c.campaign_id = %s AND c.human_votes < %s AND NOT c.settled
  AND NOT EXISTS (SELECT 1 FROM annotator_judgment j WHERE j.comparison_id = c.id AND j.annotator_id = %s)
  AND c.human_votes + (
    SELECT COUNT(*) FROM annotator_assignment a
    WHERE a.comparison_id = c.id AND a.expires_at > %s AND a.annotator_id <> %s
  ) < {allowed}{anchors}
ORDER BY c.priority DESC, c.id
LIMIT %s"""
# How many people may hold or have judged a pair at once (annotator.overlap.slots_open, plus its votes): the
# overlap; adaptive, min_votes at first, then one more than its votes (never over the overlap: votes < overlap).
_ALLOWED_FIXED = "%s"
_ALLOWED_ADAPTIVE = "(CASE WHEN c.human_votes + 1 > %s THEN c.human_votes + 1 ELSE %s END)"
# Ranking campaigns (annotator.ranking): a prompt's first pair of the model's responses stands for it; an edit's
# pair is judged on its own.
_RANKING_ANCHORS = """
  AND (c.id = (
      SELECT c2.id FROM annotator_comparison c2
      JOIN annotator_candidate x ON x.id = c2.candidate_a_id JOIN annotator_candidate y ON y.id = c2.candidate_b_id
      WHERE c2.prompt_id = c.prompt_id AND x.edited_from_id IS NULL AND y.edited_from_id IS NULL
      ORDER BY c2.id LIMIT 1)
    OR EXISTS (
      SELECT 1 FROM annotator_candidate e
      WHERE e.id IN (c.candidate_a_id, c.candidate_b_id) AND e.edited_from_id IS NOT NULL))"""


def _lease_current(*, campaign: Campaign, annotator: AbstractBaseUser, now: timezone.datetime) -> Assignment | None:
    at = connection.ops.adapt_datetimefield_value(now)
    leases = Assignment.objects.raw(_LEASE_CURRENT_SQL, [annotator.pk, campaign.pk, campaign.pk, at, annotator.pk])
    return next(iter(leases), None)


def _open_pairs_lock(
    *, campaign: Campaign, annotator: AbstractBaseUser, now: timezone.datetime, limit: int, wait: bool
) -> list[tuple[int, int, bool]]:
    """The first `limit` pairs open to the annotator, (pk, human_votes, settled), their rows locked where the
    database locks rows (PostgreSQL), skipping those another transaction is locking unless `wait`. human_votes
    and settled come from the locking statement, so they are the row's latest committed values."""
    rule = campaign.overlap_rule
    allowed, allowed_params = (
        (_ALLOWED_ADAPTIVE, [rule.min_votes, rule.min_votes]) if rule.adaptive else (_ALLOWED_FIXED, [rule.max_votes])
    )
    sql = _OPEN_PAIRS_SQL.format(allowed=allowed, anchors=_RANKING_ANCHORS if campaign.rank_candidates else "")
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE OF c" + ("" if wait else " SKIP LOCKED")
    at = connection.ops.adapt_datetimefield_value(now)
    params = [campaign.pk, campaign.overlap, annotator.pk, at, annotator.pk, *allowed_params, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(pk, votes, bool(settled)) for pk, votes, settled in cursor.fetchall()]


def _assignment_try(
    *, campaign: Campaign, annotator: AbstractBaseUser, wait: bool, sentinel_due: bool = False
) -> Assignment | object | None:
    now = timezone.now()
    with transaction.atomic():
        current = _lease_current(campaign=campaign, annotator=annotator, now=now)
        if current is not None:
            return current
        batch = _open_pairs_lock(campaign=campaign, annotator=annotator, now=now, limit=1 if wait else 8, wait=wait)
        if not batch:
            return _BUSY if comparisons_open_for(campaign=campaign, annotator=annotator).exists() else None
        if sentinel_due and (sentinel := _sentinel_lease(campaign=campaign, annotator=annotator, now=now)):
            return sentinel
        rule = campaign.overlap_rule
        for comparison_id, votes, settled in batch:
            # Leases live in another table: read them under the row lock, in a statement of its own, since
            # the query above may predate a lease another annotator committed a moment ago.
            leases = list(Assignment.objects.filter(comparison_id=comparison_id))
            held = sum(1 for lease in leases if lease.annotator_id != annotator.pk and lease.expires_at > now)
            if held >= slots_open(rule, votes=votes, settled=settled):
                continue
            mine = next((lease for lease in leases if lease.annotator_id == annotator.pk), None)
            return _lease_write(comparison_id=comparison_id, annotator=annotator, now=now, expired=mine)
        return _BUSY


def _sentinel_lease(*, campaign: Campaign, annotator: AbstractBaseUser, now: timezone.datetime) -> Assignment | None:
    """Lease the annotator one of the campaign's sentinel pairs they have not judged, at random; None when none is
    left for them. A sentinel has no slots to count: every annotator may get each one, once."""
    ids = campaign_with_sentinels(campaign=campaign)
    if len(ids) < 2:
        return None
    judged = Judgment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)
    left = Comparison.objects.filter(campaign=ids[1]).exclude(Exists(judged)).values_list("pk", flat=True)
    choices = list(left)
    if not choices:
        return None
    comparison_id = random.choice(choices)
    mine = Assignment.objects.filter(comparison_id=comparison_id, annotator=annotator).first()
    return _lease_write(comparison_id=comparison_id, annotator=annotator, now=now, expired=mine)


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
    # Sentinel pairs (annotator.sentinels) come at the campaign's rate, among its real pairs.
    sentinel_due = campaign.sentinel_rate > 0 and random.random() < campaign.sentinel_rate
    for attempt in range(5):
        result = _assignment_try(campaign=campaign, annotator=annotator, wait=False, sentinel_due=sentinel_due)
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
    edit: Candidate | None = None  # the annotator's edit of the response they picked, if they made one


def _check_choice_offered(*, campaign: Campaign, choice: str) -> None:
    if choice not in Choice.values:
        raise InputError(f"choice is {choice!r}: use one of {', '.join(Choice.values)}.")
    offered = campaign.offered_choices
    if choice not in offered:
        others = ["a side"] + [f"'{c}'" for c in (Choice.TIE, Choice.BOTH_BAD, Choice.SKIP) if c in offered]
        raise InputError(
            f"Campaign {campaign.name!r} does not offer '{choice}': pick {', '.join(others[:-1])} or {others[-1]}."
        )


def _check_strength(*, campaign: Campaign, choice: str, strength: str) -> None:
    if not strength:
        return
    if strength not in Strength.values:
        raise InputError(f"strength is {strength!r}: use {' or '.join(Strength.values)}, or leave it out.")
    if not campaign.ask_strength:
        raise InputError(
            f"Campaign {campaign.name!r} does not ask how much better a side is: leave strength out "
            "(staff can turn on 'ask strength' in the campaign's settings)."
        )
    if choice not in (Choice.LEFT, Choice.RIGHT):
        raise InputError(f"strength says how much better a side is: it goes with left or right, not {str(choice)!r}.")


def _check_edit(*, campaign: Campaign, choice: str, edited_text: str) -> None:
    if not edited_text:
        return
    if not campaign.allow_edits:
        raise InputError(
            f"Campaign {campaign.name!r} does not take edited responses: leave edited_text out "
            "(staff can turn on 'allow edits' in the campaign's settings)."
        )
    if choice not in (Choice.LEFT, Choice.RIGHT):
        raise InputError(
            f"edited_text is an edit of the response you pick: it goes with left or right, not {str(choice)!r}."
        )
    try:
        text_check(
            edited_text,
            what="The edited response",
            max_chars=settings.MAX_RESPONSE_CHARS,
            limit_name="PREFSTUDIO_MAX_RESPONSE_CHARS",
        )
    except ValueError as error:
        raise InputError(f"{error}.") from None


def judgment_submit(
    *,
    comparison: Comparison,
    annotator: AbstractBaseUser,
    choice: str,
    strength: str = "",
    edited_text: str = "",
    rationale: str = "",
    duration_ms: int | None = None,
) -> JudgmentResult:
    """Record an annotator's verdict on a pair they were handed. Idempotent: a repeat returns the first.
    With the campaign's `ask_strength`, a side may come with how much better it is (`Strength`); with its
    `allow_edits`, with `edited_text`, the annotator's better version of the response they picked (recorded
    with the judgment, in the same transaction: see `candidate_edit_create`).

    The left/right mapping comes from the annotator's lease, never from the client. The comparison row is
    locked while the slot is checked, so double clicks and concurrent submits make exactly one judgment.
    """
    campaign = comparison.prompt.campaign
    sentinel = campaign.sentinel_of_id is not None
    if sentinel:  # a sentinel pair is judged under the settings of the campaign it checks
        campaign = campaign.sentinel_of
    _check_choice_offered(campaign=campaign, choice=choice)
    _check_strength(campaign=campaign, choice=choice, strength=strength)
    edited_text = edited_text.strip()
    _check_edit(campaign=campaign, choice=choice, edited_text=edited_text)
    if duration_ms is not None and not 0 <= duration_ms <= DURATION_MS_MAX:
        raise InputError(f"duration_ms is {duration_ms}: it must be 0 to {DURATION_MS_MAX} milliseconds (a day).")
    with transaction.atomic():
        judged_id, assignment = _submit_lock(comparison_id=comparison.pk, annotator=annotator)
        if judged_id is not None:
            return JudgmentResult(Judgment.objects.get(pk=judged_id), created=False)
        if assignment is None:
            raise ConflictError(
                f"Comparison {comparison.pk} was not handed to you: ask for the next pair first "
                f"(GET /api/campaigns/{campaign.pk}/next/)."
            )
        now = timezone.now()
        stale = (
            choice != Choice.SKIP
            and not sentinel  # a sentinel has no slots to fill
            and assignment.expires_at <= now
            and _slots_full(campaign=campaign, comparison_id=comparison.pk, annotator=annotator)
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
                strength=strength,
                edited_text=edited_text,
                rationale=rationale,
                duration_ms=duration_ms,
            )
    raise ConflictError(
        f"Your hold on comparison {comparison.pk} expired and other annotators have judged it "
        "meanwhile: nothing was recorded; go on with the next pair."
    )


# The submit's reads, in one plain statement under the pair's row lock (where the database locks rows): the
# annotator's judgment of the pair if there is one already (a repeat), and their lease on it.
_SUBMIT_LOCK_SQL = """
SELECT (SELECT j.id FROM annotator_judgment j WHERE j.comparison_id = c.id AND j.annotator_id = %s), {lease}
FROM annotator_comparison c
LEFT JOIN annotator_assignment a ON a.comparison_id = c.id AND a.annotator_id = %s
WHERE c.id = %s"""
_LEASE = Columns(Assignment, "a")


def _submit_lock(*, comparison_id: int, annotator: AbstractBaseUser) -> tuple[int | None, Assignment | None]:
    sql = _SUBMIT_LOCK_SQL.format(lease=_LEASE.sql)
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE OF c"
    with connection.cursor() as cursor:
        cursor.execute(sql, [annotator.pk, annotator.pk, comparison_id])
        judged_id, *lease = cursor.fetchone()
    return judged_id, (_LEASE.load(lease) if lease[0] is not None else None)


def _judgment_record(
    *,
    assignment: Assignment,
    comparison: Comparison,
    annotator: AbstractBaseUser,
    choice: str,
    strength: str,
    edited_text: str,
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
                strength=strength,
                rationale=rationale.strip(),
                duration_ms=duration_ms,
                source=JudgeSource.HUMAN,
            )
    except IntegrityError:
        # Only reachable where the row lock is a no-op and transactions are not serialised.
        return JudgmentResult(Judgment.objects.get(comparison=comparison, annotator=annotator), created=False)
    with connection.cursor() as cursor:  # plain statements: the ORM's update and delete cost more to build
        if judgment.verdict != Verdict.SKIP:
            cursor.execute(
                "UPDATE annotator_comparison SET human_votes = human_votes + 1 WHERE id = %s", [comparison.pk]
            )
        cursor.execute("DELETE FROM annotator_assignment WHERE id = %s", [assignment.pk])  # nothing refers to a lease
    if judgment.verdict != Verdict.SKIP and comparison.prompt.campaign.overlap_rule.adaptive:
        _settled_update(campaign=comparison.prompt.campaign, comparison_ids=[comparison.pk])
    edit = None
    if edited_text:
        picked = comparison.candidate_a if judgment.verdict == Verdict.A else comparison.candidate_b
        edit = candidate_edit_create(source=picked, text=edited_text, editor=annotator, judgment=judgment)
    return JudgmentResult(judgment, created=True, edit=edit)


EDIT_MODEL_NAME = "human edit"  # what leaderboards and exports name a person's edit: it is no model's sample


def candidate_edit_create(
    *, source: Candidate, text: str, editor: AbstractBaseUser, judgment: Judgment
) -> Candidate | None:
    """A person's better version of `source`, made while judging (`judgment`): a new candidate of the same
    prompt, with who edited it and from which candidate, seen through the same prompt format as its source (it
    answers the same prompt text); and, if the campaign compares edits, a new pair: the edit against its source.
    None when the text is the source's own (nothing was edited). In the caller's transaction."""
    if text == source.text.strip():
        return None
    edit = Candidate.objects.create(
        prompt_id=source.prompt_id,
        text=text,
        model_name=EDIT_MODEL_NAME,
        backend="edit",
        prompt_format=source.prompt_format,
        prompt_text=source.prompt_text,
        edited_from=source,
        edited_by=editor,
        metadata={"judgment": judgment.pk},
    )
    if judgment.comparison.prompt.campaign.compare_edits:
        comparison_create(candidate_a=edit, candidate_b=source, metadata={"edit_of": source.pk})
    return edit


def _settled_update(*, campaign: Campaign, comparison_ids: Sequence[int] | QuerySet) -> None:
    """Recompute `Comparison.settled` of these pairs from people's votes, under the caller's row locks. Only an
    adaptive rule settles pairs early (a fixed overlap needs no flag: its pairs want votes until full), so
    judgments in fixed-overlap campaigns skip this; `campaign_overlap_set` clears the flags when a campaign
    goes back to a fixed overlap."""
    rule = campaign.overlap_rule
    comparisons = Comparison.objects.filter(pk__in=comparison_ids)
    if not rule.adaptive:
        comparisons.filter(settled=True).update(settled=False)
        return
    counts: dict[int, dict[str, int]] = {}
    votes = (
        Judgment.objects.filter(comparison__in=comparisons, source=JudgeSource.HUMAN)
        .exclude(verdict=Verdict.SKIP)
        .values_list("comparison_id", "verdict")
        .annotate(n=Count("*"))
        .order_by()
    )
    for comparison_id, verdict, n in votes:
        counts.setdefault(comparison_id, {})[verdict] = n
    settled = [pk for pk, by_verdict in counts.items() if pair_settled(rule, by_verdict.values())]
    comparisons.exclude(pk__in=settled).filter(settled=True).update(settled=False)
    comparisons.filter(pk__in=settled, settled=False).update(settled=True)


def campaign_overlap_set(
    *, campaign: Campaign, overlap: int, min_votes: int | None = None, settle_margin: int = 2
) -> Campaign:
    """Change how many votes the campaign's pairs want (a fixed overlap, or adaptive: `min_votes` to
    `overlap`, settled on a lead of `settle_margin`), and re-decide which pairs are settled under the new rule.
    Recorded judgments are untouched; pairs that now want more votes open up again."""
    rule = OverlapRule(max_votes=overlap, min_votes=min_votes, settle_margin=settle_margin)
    if problems := rule.check():
        raise InputError(" ".join(problems))
    with transaction.atomic():
        comparisons = Comparison.objects.filter(campaign=campaign)
        list(comparisons.select_for_update().values_list("pk", flat=True))
        campaign.overlap, campaign.min_votes, campaign.settle_margin = overlap, min_votes, settle_margin
        campaign.save(update_fields=["overlap", "min_votes", "settle_margin"])
        _settled_update(campaign=campaign, comparison_ids=comparisons.values("pk"))
    return campaign


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
        pk=judgment_id,
        annotator=annotator,
        comparison__campaign__in=campaign_with_sentinels(campaign=campaign),
        source=JudgeSource.HUMAN,
    )
    with transaction.atomic():
        target = mine.first()
        if target is not None:
            # The pair's row lock first, as every judgment write takes it; then the judgment again, under it
            # (a concurrent undo of the same judgment may have moved it meanwhile).
            comparisons = Comparison.objects.filter(pk=target.comparison_id)
            if target.ranking_id:  # a ranking's judgments are undone together: lock all its prompt's pairs
                prompt = Comparison.objects.filter(pk=target.comparison_id).values("prompt_id")
                list(Comparison.objects.filter(prompt_id__in=prompt).select_for_update().values_list("pk", flat=True))
            list(comparisons.select_for_update().values_list("pk", flat=True))
            target = mine.first()
        if target is None:
            return WithdrawalResult(
                _judgment_undone_already(campaign=campaign, annotator=annotator, judgment_id=judgment_id), created=False
            )
        latest = judgment_last_for(campaign=campaign, annotator=annotator)
        if latest.pk != target.pk and not (target.ranking_id and latest.ranking_id == target.ranking_id):
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
        if target.ranking_id:
            return _ranking_undo(target=target, annotator=annotator)
        withdrawn = _withdrawn_copy(target, by=annotator, reason=WithdrawalReason.UNDO)
        withdrawn.save(force_insert=True)
        _edits_take_back(judgment=target)
        target.delete()
        if target.verdict != Verdict.SKIP:
            comparisons.update(human_votes=F("human_votes") - 1)
            if campaign.overlap_rule.adaptive:
                _settled_update(campaign=campaign, comparison_ids=[target.comparison_id])
        Assignment.objects.update_or_create(
            comparison_id=target.comparison_id,
            annotator=annotator,
            defaults={"shown_left": target.shown_left, "served_at": timezone.now(), "expires_at": _lease_expiry()},
        )
        return WithdrawalResult(withdrawn, created=True)


def _ranking_undo(*, target: Judgment, annotator: AbstractBaseUser) -> WithdrawalResult:
    """Undo the ranking `target` was derived from: all its judgments, and hand its prompt back (same order)."""
    ranking = target.ranking
    ranking_withdraw(ranking=ranking, by=annotator, reason=WithdrawalReason.UNDO)
    Assignment.objects.update_or_create(
        comparison=ranking_anchor(prompt_id=ranking.prompt_id),
        annotator=annotator,
        defaults={"shown_left": Side.A, "served_at": timezone.now(), "expires_at": _lease_expiry()},
    )
    return WithdrawalResult(WithdrawnJudgment.objects.get(pk=target.pk), created=True)


def _edits_take_back(*, judgment: Judgment) -> None:
    """Undoing a judgment takes back the edit made with it, with the pair it made, unless someone judged that
    pair already (judged content stays: the edit is then kept, as it is)."""
    for edit in Candidate.objects.filter(edited_by=judgment.annotator_id, metadata__judgment=judgment.pk):
        pairs = Comparison.objects.filter(Q(candidate_a=edit) | Q(candidate_b=edit))
        judged = Judgment.objects.filter(comparison__in=pairs).exists()
        if judged or WithdrawnJudgment.objects.filter(comparison__in=pairs).exists() or edit.edits.exists():
            continue
        pairs.delete()
        edit.delete()


def _judgment_undone_already(*, campaign: Campaign, annotator: AbstractBaseUser, judgment_id: int) -> WithdrawnJudgment:
    """The annotator's judgment `judgment_id` that they undid before; a refusal saying why if there is none."""
    withdrawn = WithdrawnJudgment.objects.filter(
        pk=judgment_id, annotator=annotator, comparison__campaign__in=campaign_with_sentinels(campaign=campaign)
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
        for campaign in Campaign.objects.filter(prompts__comparisons__in=comparison_ids).distinct():
            mine = comparisons.filter(campaign=campaign).values("pk")
            _settled_update(campaign=campaign, comparison_ids=mine)
    return deleted
