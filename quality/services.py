"""Running the AI judge: its user, and a campaign's pairs judged in both orders, batch by batch, with the
verdicts recorded through the annotation services."""

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, OuterRef

from annotator.models import (
    AUDIT_PRIORITY,
    UNCERTAIN_PRIORITY,
    Campaign,
    Comparison,
    JudgeAuditPair,
    JudgeSource,
    Judgment,
    Side,
    Verdict,
)
from annotator.services import AiVerdict, ai_judgments_record, comparisons_put_first
from core.errors import InputError
from llm.base import PROMPT_TOO_LONG, Backend, GenerationRequest, Sampling, results_raise_failed
from quality.judging import JUDGE_SYSTEM, JudgeTemplate, OrderReading, combine_orders, judge_prompts, read_answer

TOP_LOGPROBS = 20


@dataclass
class JudgeSummary:
    judge: str
    pairs: int = 0  # pairs of the campaign
    already_judged: int = 0
    judged: int = 0  # pairs judged in this run (with or without a verdict)
    consistent: int = 0
    inconsistent: int = 0  # recorded as ties
    unparseable_answers: int = 0
    unparseable_pairs: int = 0  # no verdict recorded
    too_long: int = 0  # judging prompts longer than the judge's context
    methods: Counter = field(default_factory=Counter)  # how answers were read: logprobs / text
    verdicts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    audit: "AuditDraw | None" = None  # the audit sample, when the campaign audits its judge
    uncertain_first: int = 0  # pairs now handed to people first: the judge was unsure (judge_uncertain_first)


def judge_user_get_or_create(*, model: str, name: str = "") -> AbstractBaseUser:
    """The user an AI judge's verdicts are recorded under: inactive, no password, named after the model."""
    if not name:
        short = re.sub(r"[^\w.@+-]+", "-", model.rstrip("/").split("/")[-1]).strip("-") or "model"
        name = f"ai-judge-{short}"[:150]
    user, created = get_user_model().objects.get_or_create(username=name, defaults={"is_active": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif user.is_active:
        raise InputError(f"{name!r} is a person's account: give the judge another name (--judge-name).")
    return user


def _requests(comparison: Comparison, template: JudgeTemplate, guidelines: str, max_tokens: int) -> list[Any]:
    sampling = Sampling(
        temperature=0.0, top_p=1.0, max_tokens=max_tokens, logprobs=TOP_LOGPROBS, choices=template.answers
    )
    return [
        (shown_first, GenerationRequest(messages=[{"role": "user", "content": text}], system=JUDGE_SYSTEM,
                                        sampling=sampling, seed=0))
        for shown_first, text in judge_prompts(comparison, template, guidelines)
    ]  # fmt: skip


def judge_pairs_run(
    *,
    campaign: Campaign,
    backend: Backend,
    template: JudgeTemplate,
    judge: AbstractBaseUser,
    max_tokens: int = 8,
    batch_size: int = 32,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> JudgeSummary:
    """Judge every pair of the campaign this judge has not judged yet, in both orders, batch by batch.

    Each batch is committed on its own, so an interrupted run loses at most one batch and a rerun goes
    on from there.
    """
    if max_tokens < 1 or batch_size < 1:
        raise InputError("--max-tokens and --batch-size must be at least 1.")
    summary = JudgeSummary(judge=judge.get_username())
    comparisons = Comparison.objects.filter(campaign=campaign)
    summary.pairs = comparisons.count()
    todo = comparisons.exclude(judgments__annotator=judge).select_related("prompt", "candidate_a", "candidate_b")
    todo_ids = list(todo.order_by("id").values_list("id", flat=True)[:limit])
    summary.already_judged = summary.pairs - todo.count()
    started = time.monotonic()
    for start in range(0, len(todo_ids), batch_size):
        batch = list(todo.filter(id__in=todo_ids[start : start + batch_size]).order_by("id"))
        calls = [
            (c, shown, request)
            for c in batch
            for shown, request in _requests(c, template, campaign.guidelines, max_tokens)
        ]
        results = backend.generate([request for _, _, request in calls])
        results_raise_failed(results, model=backend.model_name)  # a verdict needs both orders' answers
        readings: dict[int, list[OrderReading]] = {}
        too_long: set[int] = set()
        for (comparison, shown, _), result in zip(calls, results, strict=True):
            if result.finish_reason == PROMPT_TOO_LONG:
                too_long.add(comparison.pk)
            reading = read_answer(response_1=shown, text=result.text, top_logprobs=result.top_logprobs)
            readings.setdefault(comparison.pk, []).append(reading)
        verdicts = []
        for comparison in batch:
            pair = combine_orders(*readings[comparison.pk])
            summary.judged += 1
            summary.unparseable_answers += pair.unparseable
            summary.too_long += comparison.pk in too_long
            summary.methods.update(r.method for r in pair.readings if r.method)
            summary.verdicts[pair.verdict] += 1
            if pair.verdict == Verdict.SKIP:
                summary.unparseable_pairs += 1
            elif pair.consistent:
                summary.consistent += 1
            else:
                summary.inconsistent += 1
            verdicts.append(
                AiVerdict(
                    comparison=comparison,
                    verdict=pair.verdict,
                    shown_left=Side.A,  # the first of the two orders showed candidate a as Response 1
                    details={
                        "model": backend.model_name,
                        "model_revision": backend.model_revision,
                        "backend": backend.name,
                        "template": template.name,
                        "template_sha256": template.sha256,
                        "orders": [r.as_dict() for r in pair.readings],
                        "consistent": pair.consistent,
                        "a_share": pair.a_share,
                        "uncertain": pair.uncertain,
                        "unparseable": pair.unparseable,
                        "prompt_too_long": comparison.pk in too_long,
                    },
                )
            )
        recorded = ai_judgments_record(judge=judge, verdicts=verdicts)
        if campaign.judge_uncertain_first:
            uncertain = [j.comparison_id for j in recorded if j.details.get("uncertain")]
            summary.uncertain_first += comparisons_put_first(ids=uncertain, priority=UNCERTAIN_PRIORITY)
        if progress:
            progress(min(start + batch_size, len(todo_ids)), len(todo_ids))
    summary.seconds = time.monotonic() - started
    if campaign.judge_audit_size > 0:
        summary.audit = judge_audit_sample_draw(campaign=campaign, judge=judge)
    return summary


@dataclass(frozen=True)
class AuditDraw:
    size: int  # the campaign's judge_audit_size
    seed: int
    drawn: int  # pairs added to the sample now
    pairs: int  # pairs in the judge's sample now


def _draw_key(seed: int, comparison_id: int) -> str:
    return hashlib.sha256(f"{seed}:{comparison_id}".encode()).hexdigest()


def judge_audit_sample_draw(*, campaign: Campaign, judge: AbstractBaseUser) -> AuditDraw:
    """Top the judge's audit sample up to the campaign's `judge_audit_size` pairs, drawn at random among the
    pairs the judge gave a verdict (not a skip), and raise their priority so that people get them first.

    The draw is seeded: pairs are taken in the order of sha256("<seed>:<comparison id>"), so the same judged
    pairs and seed give the same sample, and a pair once drawn stays (with the seed it was drawn with). Rerunning
    draws nothing new until the judge has judged pairs beyond a sample that could not be filled, or the size is
    raised; lowering the size removes nothing. Judgments are only read, never changed.
    """
    size, seed = campaign.judge_audit_size, campaign.judge_audit_seed
    with transaction.atomic():
        Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("pk", flat=True).first()
        sampled = JudgeAuditPair.objects.filter(comparison__campaign=campaign, judge=judge)
        have = sampled.count()
        drawn: list[JudgeAuditPair] = []
        if have < size:
            verdicts = Judgment.objects.filter(
                comparison__campaign=campaign, annotator=judge, source=JudgeSource.AI
            ).exclude(verdict=Verdict.SKIP)
            in_sample = JudgeAuditPair.objects.filter(comparison=OuterRef("comparison_id"), judge=judge)
            verdicts = verdicts.exclude(Exists(in_sample))
            keyed = sorted((_draw_key(seed, pk), pk) for pk in verdicts.values_list("comparison_id", flat=True))
            drawn = [
                JudgeAuditPair(comparison_id=pk, judge=judge, seed=seed, draw_key=key)
                for key, pk in keyed[: size - have]
            ]
            JudgeAuditPair.objects.bulk_create(drawn)
            comparisons_put_first(ids=[a.comparison_id for a in drawn], priority=AUDIT_PRIORITY)
    return AuditDraw(size=size, seed=seed, drawn=len(drawn), pairs=have + len(drawn))
