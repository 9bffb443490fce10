"""Sentinel pairs: annotator checks without hand-written gold.

A sentinel pair is one of the campaign's responses against a controlled degradation of it (`annotator.degrade`:
cut mid-sentence, sentences shuffled, or the answer to a different prompt of the campaign), so its better side
is known by construction: the original, always candidate a. Annotators get them mixed into their queue at the
campaign's `sentinel_rate`, shown like any other pair (random sides, the same page and keys).

Sentinels live in a campaign of their own, linked to the real one by `Campaign.sentinel_of` and never active on
its own: every export, report, overlap count and leaderboard reads one campaign's pairs, so sentinel judgments
are never exported and never count toward overlap or agreement, by construction rather than by a filter that
each reader would have to remember. What reads them: the queue (`annotator.services.assignment_next`), the
judging and undo paths (a sentinel is judged and undone like any pair), and the quality report
(`quality.selectors.campaign_sentinel_scores`).
"""

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from annotator import degrade
from annotator.models import FINISH_LENGTH, Campaign, Candidate, Comparison, Prompt, Verdict
from annotator.services import comparison_create, prompt_get_or_create
from core.errors import InputError

SENTINEL_CAMPAIGN_SUFFIX = " · sentinels"

# ---------------------------------------------------------------------------------------------------------
# Writes


def sentinel_campaign_get_or_create(*, campaign: Campaign) -> Campaign:
    """The campaign that holds `campaign`'s sentinel pairs (inactive, so it is listed nowhere as a campaign)."""
    existing = Campaign.objects.filter(sentinel_of=campaign).first()
    if existing is not None:
        return existing
    longest = Campaign._meta.get_field("name").max_length
    name = campaign.name[: longest - len(SENTINEL_CAMPAIGN_SUFFIX)] + SENTINEL_CAMPAIGN_SUFFIX
    return Campaign.objects.create(
        name=name,
        description=f"Sentinel pairs of campaign {campaign.name!r} (made by make_sentinels).",
        is_active=False,
        sentinel_of=campaign,
        allow_tie=campaign.allow_tie,
        allow_both_bad=campaign.allow_both_bad,
    )


def sentinel_rate_set(*, campaign: Campaign, rate: float) -> Campaign:
    """How often annotators get a sentinel among their pairs: `rate` of them, 0 (none) to 0.5."""
    if not 0 <= rate <= 0.5:
        raise InputError(f"The sentinel rate is {rate}: give a share of each annotator's pairs, 0 to 0.5.")
    campaign.sentinel_rate = rate
    campaign.save(update_fields=["sentinel_rate"])
    return campaign


@dataclass(frozen=True)
class SentinelsResult:
    sentinel_campaign: Campaign
    created: Counter  # kind -> sentinel pairs made now
    total: int  # sentinel pairs the campaign has, these included


def _copy(candidate: Candidate, *, prompt: Prompt, text: str, metadata: dict) -> Candidate:
    """A candidate like `candidate` in every visible way (provenance, finish reason), for the sentinel prompt."""
    return Candidate.objects.create(
        prompt=prompt,
        text=text,
        model_name=candidate.model_name,
        model_revision=candidate.model_revision,
        backend=candidate.backend,
        sampling_params=candidate.sampling_params,
        seed=candidate.seed,
        finish_reason=candidate.finish_reason,
        prompt_format=candidate.prompt_format,
        prompt_text=candidate.prompt_text,
        metadata=metadata,
    )


def sentinels_create(
    *, campaign: Campaign, count: int, seed: int = 0, kinds: Sequence[str] = degrade.KINDS
) -> SentinelsResult:
    """Make up to `count` new sentinel pairs from the campaign's responses, the kinds kept balanced, seeded.

    Sources are candidates of the campaign's pairs that ended on their own (not cut at the token limit) and
    are the model's own (not a person's edit); each source and kind is used once, so a rerun makes new ones.
    All or nothing, in one transaction."""
    if campaign.sentinel_of_id is not None:
        raise InputError(f"Campaign {campaign.name!r} holds sentinels itself: make them for the campaign it checks.")
    unknown = sorted(set(kinds) - set(degrade.KINDS))
    if unknown or not kinds:
        raise InputError(f"Unknown sentinel kinds {unknown or kinds}: use some of {', '.join(degrade.KINDS)}.")
    if count < 1:
        raise InputError(f"count is {count}: make at least 1 sentinel pair.")
    rng = random.Random(seed)
    sources = list(
        Candidate.objects.filter(prompt__campaign=campaign, edited_from__isnull=True)
        .exclude(finish_reason=FINISH_LENGTH)
        .exclude(text="")
        .order_by("id")
    )
    if not sources:
        raise InputError(f"Campaign {campaign.name!r} has no responses to make sentinels from: add pairs first.")
    rng.shuffle(sources)
    with transaction.atomic():
        shadow = sentinel_campaign_get_or_create(campaign=campaign)
        used = {
            (pair.metadata.get("source_candidate"), pair.metadata.get("sentinel"))
            for pair in Comparison.objects.filter(campaign=shadow).only("metadata")
        }
        created: Counter = Counter()
        for source in sources:
            if sum(created.values()) >= count:
                break
            # The kind made least so far first, so that the kinds stay balanced whatever the sources allow.
            for kind in sorted(kinds, key=lambda k: (created[k], kinds.index(k))):
                if (source.pk, kind) in used:
                    continue
                worse = _degraded(source, kind=kind, sources=sources, rng=rng)
                if worse is None:
                    continue
                _sentinel_pair(shadow=shadow, source=source, worse=worse, kind=kind)
                used.add((source.pk, kind))
                created[kind] += 1
                break
        total = Comparison.objects.filter(campaign=shadow).count()
    return SentinelsResult(sentinel_campaign=shadow, created=created, total=total)


def _degraded(source: Candidate, *, kind: str, sources: list[Candidate], rng: random.Random) -> str | None:
    if kind == degrade.TRUNCATED:
        return degrade.truncated(source.text, rng)
    if kind == degrade.SHUFFLED:
        return degrade.shuffled(source.text, rng)
    others = [c for c in sources if c.prompt_id != source.prompt_id and c.text.strip() != source.text.strip()]
    return rng.choice(others).text if others else None


def _sentinel_pair(*, shadow: Campaign, source: Candidate, worse: str, kind: str) -> Comparison:
    """The source's prompt (copied into the sentinel campaign), the source's text as a, the degraded text as b."""
    original = source.prompt
    prompt, _ = prompt_get_or_create(
        campaign=shadow, prompt=original.messages, system=original.system, metadata=original.metadata
    )
    about = {"sentinel": kind, "source_candidate": source.pk}
    better = _copy(source, prompt=prompt, text=source.text, metadata=about)
    degraded = _copy(source, prompt=prompt, text=worse, metadata=about)
    return comparison_create(
        candidate_a=better,
        candidate_b=degraded,
        metadata={**about, "better": Verdict.A, "source_prompt": original.pk},
    )
