"""Reads: which campaigns and pairs an annotator may work on, and how far they are."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count, Exists, F, IntegerField, Min, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Greatest, Least
from django.http import Http404
from django.utils import timezone

from annotator.models import Assignment, Campaign, Candidate, Comparison, JudgeSource, Judgment, Prompt, Side
from core.rows import Columns, load_all, select_list


def _open_to(*, user: AbstractBaseUser, campaign: str) -> Q:
    """A condition on the campaign at `campaign` (a path from the model queried): the user is one of its
    annotators, or it has none."""
    members = Campaign.annotators.through.objects.filter(campaign=OuterRef(campaign))
    return Q(Exists(members.filter(user=user.pk)) | ~Exists(members))


def campaigns_for(*, user: AbstractBaseUser) -> QuerySet[Campaign]:
    """Active campaigns the user may annotate: those listing them, and those open to everyone."""
    return Campaign.objects.filter(_open_to(user=user, campaign="pk"), is_active=True).order_by("name")


def campaign_with_sentinels(*, campaign: Campaign) -> list[int]:
    """The campaign's id, and that of the campaign holding its sentinel pairs if it has one: what an annotator of
    the campaign may be handed, judge and undo. Remembered on the campaign object."""
    ids = campaign.__dict__.get("_with_sentinels")
    if ids is None:
        shadow = Campaign.objects.filter(sentinel_of=campaign).values_list("pk", flat=True).first()
        ids = campaign.__dict__["_with_sentinels"] = [campaign.pk] + ([shadow] if shadow else [])
    return ids


def campaign_is_open_to(*, campaign: Campaign, user: AbstractBaseUser) -> bool:
    """Active, and the user is one of its annotators or it has none. Remembered on the campaign object
    (and known without asking when `campaign_open_or_404` or `comparison_open_or_404` fetched it for this
    user), so a view and the services it calls ask the database at most once per request. A campaign of
    sentinel pairs is open to whom the campaign it checks is open."""
    if user.pk is not None and user.pk in campaign.__dict__.get("_open_to", ()):
        return True
    if campaign.sentinel_of_id is not None:
        return campaign_is_open_to(campaign=campaign.sentinel_of, user=user)
    if not campaign.is_active:
        return False
    member_ids = campaign.__dict__.get("_member_ids")
    if member_ids is None:
        members = Campaign.annotators.through.objects.filter(campaign_id=campaign.pk).values_list("user_id", flat=True)
        member_ids = campaign.__dict__["_member_ids"] = frozenset(members)
    return not member_ids or user.pk in member_ids


def _remember_open_to(campaign: Campaign, user: AbstractBaseUser) -> None:
    campaign.__dict__.setdefault("_open_to", set()).add(user.pk)


# One answer for "does not exist" and "exists but not yours", on pages and in the API, so that campaigns and
# pairs someone is not part of don't reveal that they exist.
CAMPAIGN_NOT_FOUND = "No campaign with this id is open to you."
COMPARISON_NOT_FOUND = "No pair with this id is open to you."


# `_open_to` in SQL, on the campaign aliased k: what the two lookups below, on every API call, ask with their row
# (the ORM took longer to build these statements than the database took to run them).
_OPEN_TO_SQL = """(
  NOT EXISTS (SELECT 1 FROM annotator_campaign_annotators m WHERE m.campaign_id = k.id)
  OR EXISTS (SELECT 1 FROM annotator_campaign_annotators m WHERE m.campaign_id = k.id AND m.user_id = %s)
)"""
# Constant strings put together, nothing from a request in them (S608).
_CAMPAIGN_OPEN_SQL = "SELECT k.* FROM annotator_campaign k WHERE k.id = %s AND k.is_active AND " + _OPEN_TO_SQL  # noqa: S608
# The pair's campaign is q; k is the campaign whose annotators may judge it: q itself, or the campaign q holds the
# sentinel pairs of (annotator.sentinels).
_COMPARISON_OPEN_SQL = (
    "SELECT q.*, c.id AS comparison_pk, c.prompt_id AS comparison_prompt_pk FROM annotator_comparison c "  # noqa: S608
    "JOIN annotator_campaign q ON q.id = c.campaign_id "
    "JOIN annotator_campaign k ON k.id = COALESCE(q.sentinel_of_id, q.id) "
    "WHERE c.id = %s AND k.is_active AND " + _OPEN_TO_SQL
)


def _an_id(pk: int) -> bool:
    """Whether `pk` can be a row's id at all (the ORM answers "none" for one that cannot; the driver would fail)."""
    low, high = connection.ops.integer_field_range("BigAutoField")
    return low <= pk <= high


def campaign_open_or_404(*, pk: int, user: AbstractBaseUser) -> Campaign:
    """The campaign, for a user who may annotate it; a 404 otherwise (the API answers it as JSON). One query."""
    if not _an_id(pk):
        raise Http404(CAMPAIGN_NOT_FOUND)
    campaign = next(iter(Campaign.objects.raw(_CAMPAIGN_OPEN_SQL, [pk, user.pk])), None)
    if campaign is None:
        raise Http404(CAMPAIGN_NOT_FOUND)
    _remember_open_to(campaign, user)
    return campaign


def comparison_open_or_404(*, pk: int, user: AbstractBaseUser) -> Comparison:
    """The pair, with its campaign, for a user who may annotate that campaign; a 404 otherwise. One query:
    the campaign's row with the pair's ids; the pair's and its prompt's other fields load when first read."""
    if not _an_id(pk):
        raise Http404(COMPARISON_NOT_FOUND)
    campaign = next(iter(Campaign.objects.raw(_COMPARISON_OPEN_SQL, [pk, user.pk])), None)
    if campaign is None:
        raise Http404(COMPARISON_NOT_FOUND)
    _remember_open_to(campaign, user)
    comparison_pk, prompt_pk = campaign.__dict__.pop("comparison_pk"), campaign.__dict__.pop("comparison_prompt_pk")
    prompt = Prompt.from_db(campaign._state.db, ["id", "campaign_id"], [prompt_pk, campaign.pk])
    Prompt.campaign.field.set_cached_value(prompt, campaign)
    comparison = Comparison.from_db(campaign._state.db, ["id", "prompt_id"], [comparison_pk, prompt_pk])
    Comparison.prompt.field.set_cached_value(comparison, prompt)
    return comparison


def campaigns_with_judged_count_for(*, user: AbstractBaseUser) -> QuerySet[Campaign]:
    """`campaigns_for`, each with `judged_by_me`: the pairs the user judged or skipped in it (one query)."""
    mine = Judgment.objects.filter(comparison__campaign=OuterRef("pk"), annotator=user)
    return campaigns_for(user=user).annotate(judged_by_me=_count_subquery(mine, per="annotator"))


def _count_subquery(queryset: QuerySet, *, per: str) -> Coalesce:
    """The number of rows of `queryset` (filtered on an OuterRef), grouped by its field `per`; 0 when none."""
    counted = queryset.order_by().values(per).annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def comparisons_open_for(*, campaign: Campaign, annotator: AbstractBaseUser) -> QuerySet[Comparison]:
    """Comparisons the annotator has not judged (or skipped) and that still have a free slot.

    A slot is taken by a person's non-skip judgment or by someone else's unexpired lease (an AI judge's
    verdict takes none: `overlap` counts human annotators). Ordered by priority, then id, so pairs
    fill up in order and finished pairs accumulate instead of many half-judged ones.
    """
    leases = Assignment.objects.filter(comparison=OuterRef("pk"), expires_at__gt=timezone.now())
    taken_by_leases = _count_subquery(leases.exclude(annotator=annotator), per="comparison")
    pairs = comparisons_short_of_votes(campaign=campaign)
    if campaign.rank_candidates:
        # A prompt is ranked whole, as one task: the queue hands out its first pair of the model's responses only
        # (see annotator.ranking). An edit's pair (edit against its source) is judged on its own.
        models_only = Q(candidate_a__edited_from__isnull=True, candidate_b__edited_from__isnull=True)
        first = Comparison.objects.filter(models_only, prompt=OuterRef("prompt")).order_by("id").values("pk")[:1]
        pairs = pairs.filter(Q(pk=Subquery(first)) | ~models_only)
    return (
        pairs.exclude(Exists(Judgment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)))
        .alias(taken=F("human_votes") + taken_by_leases, allowed=_votes_allowed(campaign))
        .filter(taken__lt=F("allowed"))
        .order_by("-priority", "id")
    )


def comparisons_short_of_votes(*, campaign: Campaign) -> QuerySet[Comparison]:
    """The campaign's pairs that still want people's votes: under the overlap and not settled."""
    return Comparison.objects.filter(campaign=campaign, human_votes__lt=campaign.overlap, settled=False)


def _votes_allowed(campaign: Campaign) -> Value | Least:
    """How many people may have judged or hold an unsettled pair at once (`annotator.overlap.slots_open` plus its
    votes, in SQL): the overlap; adaptive, `min_votes` at first and then one more than its votes."""
    rule = campaign.overlap_rule
    if not rule.adaptive:
        return Value(rule.max_votes)
    return Least(Value(rule.max_votes), Greatest(Value(rule.min_votes), F("human_votes") + 1))


@dataclass(frozen=True)
class Waiting:
    """Pairs the annotator may still get, though none is open to them now: other annotators hold every free
    slot of them. One comes back if its holder skips it or lets the lease run out (`retry_after` seconds
    from now at the latest)."""

    pairs: int
    retry_after: int


def annotator_waiting_for(*, campaign: Campaign, annotator: AbstractBaseUser) -> Waiting | None:
    """Asked when nothing is open to the annotator: None when nothing can come back to them either."""
    short = comparisons_short_of_votes(campaign=campaign).exclude(
        Exists(Judgment.objects.filter(comparison=OuterRef("pk"), annotator=annotator))
    )
    now = timezone.now()
    leases = Assignment.objects.filter(comparison__in=short, expires_at__gt=now).exclude(annotator=annotator)
    held = leases.aggregate(pairs=Count("comparison", distinct=True), first_expiry=Min("expires_at"))
    if not held["pairs"]:
        return None
    seconds = (held["first_expiry"] - now).total_seconds()
    return Waiting(pairs=held["pairs"], retry_after=max(1, math.ceil(seconds)))


@dataclass(frozen=True)
class Progress:
    done: int
    remaining: int

    @property
    def total(self) -> int:
        return self.done + self.remaining

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100


def campaign_progress_for(*, campaign: Campaign, annotator: AbstractBaseUser) -> Progress:
    """The annotator's own progress: pairs they judged or skipped, and pairs still open to them."""
    mine = Judgment.objects.filter(comparison__campaign__in=campaign_with_sentinels(campaign=campaign))
    done = mine.filter(annotator=annotator).count()
    remaining = comparisons_open_for(campaign=campaign, annotator=annotator).count()
    return Progress(done=done, remaining=remaining)


def judgment_last_for(*, campaign: Campaign, annotator: AbstractBaseUser) -> Judgment | None:
    return (
        Judgment.objects.filter(
            comparison__campaign__in=campaign_with_sentinels(campaign=campaign),
            annotator=annotator,
            source=JudgeSource.HUMAN,
        )
        .order_by("-created_at", "-id")
        .first()
    )


def judgment_undo_deadline(*, judgment: Judgment) -> datetime:
    """Until when its annotator may undo a judgment (if it is still their latest)."""
    return judgment.created_at + timedelta(seconds=settings.ANNOTATION_UNDO_SECONDS)


def judgment_undoable_for(*, campaign: Campaign, annotator: AbstractBaseUser) -> Judgment | None:
    """The judgment the annotator may undo now: their latest in the campaign, if its undo window is open."""
    last = judgment_last_for(campaign=campaign, annotator=annotator)
    if last is None or timezone.now() >= judgment_undo_deadline(judgment=last):
        return None
    return last


def comparison_in_campaign(*, campaign: Campaign, comparison_id: int) -> Comparison | None:
    """The comparison with this id if it belongs to the campaign, else None."""
    in_campaign = Comparison.objects.filter(campaign__in=campaign_with_sentinels(campaign=campaign))
    return in_campaign.filter(pk=comparison_id).first()


@dataclass(frozen=True)
class ShownPair:
    comparison: Comparison
    left: Candidate
    right: Candidate


# The pair as shown, in one plain statement (building the ORM's select_related took longer than running it).
_SHOWN = (Columns(Comparison, "c"), Columns(Prompt, "p"), Columns(Candidate, "x"), Columns(Candidate, "y"))
_SHOWN_SQL = (
    "SELECT {columns} FROM annotator_comparison c JOIN annotator_prompt p ON p.id = c.prompt_id "
    "JOIN annotator_candidate x ON x.id = c.candidate_a_id JOIN annotator_candidate y ON y.id = c.candidate_b_id "
    "WHERE c.id = %s"
)


def comparison_as_shown(*, assignment: Assignment) -> ShownPair:
    """The assigned comparison with its prompt and both candidates (one query), on the sides the annotator sees."""
    with connection.cursor() as cursor:
        cursor.execute(_SHOWN_SQL.format(columns=select_list(_SHOWN)), [assignment.comparison_id])
        row = cursor.fetchone()
    if row is None:
        raise Comparison.DoesNotExist(f"Comparison {assignment.comparison_id} does not exist.")
    comparison, prompt, a, b = load_all(_SHOWN, row)
    Comparison.prompt.field.set_cached_value(comparison, prompt)
    Comparison.candidate_a.field.set_cached_value(comparison, a)
    Comparison.candidate_b.field.set_cached_value(comparison, b)
    left, right = (a, b) if assignment.shown_left == Side.A else (b, a)
    return ShownPair(comparison, left, right)
