"""The data model every step of the loop plugs into.

Campaign -> Prompt (a conversation) -> Candidate responses (with provenance) -> Comparison (two candidates
of one prompt) -> Judgment (one annotator's verdict on one comparison). Assignment is a short lease on a
comparison handed to an annotator, which carries the left/right order they see. WithdrawnJudgment keeps
the judgments taken back (undone by their annotator, deleted by staff): Judgment holds only live ones.
"""

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q, QuerySet

from annotator.overlap import OverlapRule
from core.errors import ConflictError


class FrozenOnceJudged:
    """Content a judgment rests on (the class gives `recorded_judgments()`): once a judgment exists on it, its
    `frozen_fields` cannot change, or the judgment would describe text nobody judged. A guard on save(), like
    a constraint, so every code path keeps it (the admin shows those fields read-only); queryset.update() is
    not checked."""

    frozen_fields: ClassVar[tuple[str, ...]] = ()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            changed = self._frozen_fields_changed()
            if changed and self.recorded_judgments().exists():
                name = f"{self._meta.verbose_name.capitalize()} {self.pk}"
                raise ConflictError(
                    f"{name} has judgments, so its {' and '.join(changed)} can no longer change (the judgments "
                    f"are of it as it was): add a new {self._meta.verbose_name} instead."
                )
        super().save(*args, **kwargs)

    def _frozen_fields_changed(self) -> list[str]:
        attnames = {name: self._meta.get_field(name).attname for name in self.frozen_fields}
        stored = type(self).objects.filter(pk=self.pk).values(*attnames.values()).first()
        if stored is None:
            return []
        return [name for name, attname in attnames.items() if stored[attname] != getattr(self, attname)]


class CampaignQuerySet(models.QuerySet):
    def real(self) -> "CampaignQuerySet":
        """Campaigns of real pairs: not the ones that hold another campaign's sentinel pairs."""
        return self.filter(sentinel_of__isnull=True)


class Campaign(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators beside every pair.")
    overlap = models.PositiveSmallIntegerField(
        default=1,
        help_text="How many distinct annotators judge each pair (with min votes set: at most this many).",
    )
    min_votes = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Adaptive overlap: ask each pair for this many votes first, and more (up to the overlap) only "
        "while it is not settled. Empty: every pair gets the overlap.",
    )
    settle_margin = models.PositiveSmallIntegerField(
        default=2,
        help_text="Adaptive overlap: a pair is settled once its leading verdict has this many votes more than "
        "any other (2: two agreeing votes settle it, a split asks for a third).",
    )
    allow_tie = models.BooleanField(default=True, help_text="Offer 'tie' as a verdict.")
    allow_both_bad = models.BooleanField(default=True, help_text="Offer 'both bad' as a verdict.")
    allow_edits = models.BooleanField(
        default=False,
        help_text="Let annotators edit the response they pick into a better one (stored as a new candidate, with "
        "who edited it and from which response).",
    )
    compare_edits = models.BooleanField(
        default=False,
        help_text="Make each edit a new pair to judge: the edited response against the one it came from.",
    )
    judge_uncertain_first = models.BooleanField(
        default=False,
        help_text="Hand people first the pairs the AI judge was unsure of: its two orders disagreed, or its "
        "answer was near 50/50 between the two responses.",
    )
    sentinel_rate = models.FloatField(
        default=0.0,
        help_text="Sentinel pairs: the share of each annotator's pairs that are sentinels, whose better side is "
        "known by construction (0 = none; at most 0.5). Make them with `manage.py make_sentinels`.",
    )
    sentinel_min_accuracy = models.FloatField(
        default=0.8, help_text="The quality report flags annotators whose sentinel accuracy is under this."
    )
    sentinel_of = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sentinel_campaign",
        editable=False,
        help_text="This campaign holds the sentinel pairs of that one: kept apart, so that their judgments are "
        "never exported and never count toward its overlap, agreement or leaderboard.",
    )
    rank_candidates = models.BooleanField(
        default=False,
        help_text="For prompts with more than two candidates, show them all at once and ask for a full order "
        "(best first); the pairs' judgments are derived from it.",
    )
    ask_strength = models.BooleanField(
        default=False,
        help_text="Let annotators say how much better the side they pick is: slightly or clearly (optional on "
        "each pair; a plain pick records no strength).",
    )
    is_active = models.BooleanField(default=True, help_text="Inactive campaigns are hidden from annotators.")
    judge_audit_size = models.PositiveIntegerField(
        default=0,
        help_text="How many of an AI judge's pairs are drawn at random and served to people first, so that the "
        "judge's verdicts can be checked against theirs before an export uses them (0: none, and no check). "
        "See docs/judge.md.",
    )
    judge_audit_seed = models.BigIntegerField(
        default=0, help_text="Seeds the judge's audit sample: another seed, another (equally random) sample."
    )
    annotators = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="campaigns",
        help_text="Who may annotate. Leave empty to let every user annotate.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_at_least_1"),
            models.CheckConstraint(
                condition=Q(min_votes__isnull=True) | Q(min_votes__gte=1, min_votes__lte=F("overlap")),
                name="campaign_min_votes_within_overlap",
                violation_error_message="Min votes must be 1 to the overlap (the most votes a pair gets), or "
                "empty for a fixed overlap.",
            ),
            models.CheckConstraint(
                condition=Q(sentinel_rate__gte=0, sentinel_rate__lte=0.5),
                name="campaign_sentinel_rate_0_to_half",
                violation_error_message="Sentinel rate must be 0 to 0.5 (a share of each annotator's pairs).",
            ),
            models.CheckConstraint(
                condition=Q(settle_margin__gte=1),
                name="campaign_settle_margin_at_least_1",
                violation_error_message="Settle margin must be at least 1 vote.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def overlap_rule(self) -> OverlapRule:
        return OverlapRule(max_votes=self.overlap, min_votes=self.min_votes, settle_margin=self.settle_margin)

    def recorded_judgments(self) -> QuerySet["Judgment"]:
        return Judgment.objects.filter(comparison__campaign=self)

    @property
    def offered_choices(self) -> list["Choice"]:
        """What annotators may answer in this campaign: a side or skip always; tie and both bad if allowed."""
        withheld = {Choice.TIE: not self.allow_tie, Choice.BOTH_BAD: not self.allow_both_bad}
        return [choice for choice in Choice if not withheld.get(choice, False)]


class Role(models.TextChoices):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class Prompt(FrozenOnceJudged, models.Model):
    frozen_fields = ("campaign", "messages", "system")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="prompts")
    messages = models.JSONField(help_text='The conversation: [{"role": "user", "content": "..."}, ...].')
    system = models.TextField(blank=True, help_text="Optional system message.")
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(
        max_length=64, db_index=True, help_text="sha256 of the system message and the conversation."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "content_hash"], name="prompt_unique_per_campaign"),
        ]

    def __str__(self) -> str:
        last = self.messages[-1]["content"] if self.messages else ""
        return f"Prompt {self.pk}: {last[:60]}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        adding = self._state.adding
        super().save(*args, **kwargs)
        update_fields = kwargs.get("update_fields")
        if not adding and (update_fields is None or "campaign" in update_fields):
            # A prompt moved to another campaign (allowed until it is judged) takes its pairs with it.
            self.comparisons.exclude(campaign_id=self.campaign_id).update(campaign_id=self.campaign_id)

    def recorded_judgments(self) -> QuerySet["Judgment"]:
        return Judgment.objects.filter(comparison__prompt=self)

    @property
    def is_multi_turn(self) -> bool:
        return sum(1 for m in self.messages if m["role"] == Role.USER) > 1


class PromptFormat(models.TextChoices):
    """How the model saw the prompt when it wrote a candidate; the export shows it the same context again."""

    CHAT = "chat", "through the model's chat template"
    TEXT = "text", "as a raw text completion"
    UNKNOWN = "", "unknown (imported, or not recorded)"


# The finish reason of a response that stopped at its token limit (max_tokens or the context) instead of ending.
FINISH_LENGTH = "length"


class Candidate(FrozenOnceJudged, models.Model):
    """One response to a prompt, with everything needed to reproduce it."""

    frozen_fields = ("prompt", "text", "prompt_format", "prompt_text")

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="candidates")
    text = models.TextField()
    model_name = models.CharField(max_length=500, blank=True, help_text="Model name or path.")
    model_revision = models.CharField(max_length=200, blank=True)
    backend = models.CharField(max_length=50, blank=True, help_text="vllm, openai, transformers, import, ...")
    sampling_params = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=50, blank=True)
    prompt_format = models.CharField(
        max_length=10,
        choices=PromptFormat.choices,
        blank=True,
        default=PromptFormat.UNKNOWN,
        help_text="How the model saw the prompt: through its chat template, or as a raw text (prompt_text).",
    )
    prompt_text = models.TextField(
        blank=True, help_text="For a raw text completion: the exact text the model continued, nothing added."
    )
    metadata = models.JSONField(default=dict, blank=True)
    edited_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="edits",
        help_text="A person's edit of this candidate: not the model's own sample.",
    )
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Candidate {self.pk} ({self.model_name or self.backend})"

    @property
    def is_edit(self) -> bool:
        return self.edited_from_id is not None

    def recorded_judgments(self) -> QuerySet["Judgment"]:
        return Judgment.objects.filter(Q(comparison__candidate_a=self) | Q(comparison__candidate_b=self))

    @property
    def is_truncated(self) -> bool:
        """Cut off at the token limit: the response never ended."""
        return self.finish_reason == FINISH_LENGTH


class ComparisonQuerySet(models.QuerySet):
    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list["Comparison"]:
        objs = list(objs)
        _campaigns_fill(objs)
        return super().bulk_create(objs, *args, **kwargs)


def _campaigns_fill(comparisons: list["Comparison"]) -> None:
    """Set each comparison's `campaign` to its prompt's: from the prompt where it is loaded, else read."""
    unknown = {c.prompt_id for c in comparisons if not Comparison.prompt.is_cached(c)}
    campaign_of = dict(Prompt.objects.filter(pk__in=unknown).values_list("pk", "campaign_id")) if unknown else {}
    for comparison in comparisons:
        if Comparison.prompt.is_cached(comparison):
            comparison.campaign_id = comparison.prompt.campaign_id
        else:
            comparison.campaign_id = campaign_of.get(comparison.prompt_id)


class Comparison(FrozenOnceJudged, models.Model):
    """Two candidates of one prompt, to be judged. `a` and `b` are fixed; sides shown vary per annotator."""

    frozen_fields = ("prompt", "candidate_a", "candidate_b")

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="+",
        editable=False,
        help_text="Its prompt's campaign, set from the prompt whenever the pair is saved or created in bulk: the "
        "hand-out order's index starts with it, so the next open pair is found without sorting the campaign's.",
    )
    candidate_a = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    candidate_b = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    metadata = models.JSONField(default=dict, blank=True)
    human_votes = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="People's non-skip judgments of this pair, kept by the judgment services under the pair's "
        "row lock, so finding an open pair never has to count judgments.",
    )
    settled = models.BooleanField(
        default=False,
        editable=False,
        help_text="Needs no more votes under the campaign's adaptive overlap (its leading verdict leads by the "
        "settle margin), kept by the judgment services under the pair's row lock.",
    )
    priority = models.SmallIntegerField(
        default=0,
        help_text="Open pairs are handed out highest priority first, then in id order (0 for most pairs; the "
        "services raise it for pairs that should reach people first, such as a judge's audit sample).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ComparisonQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=~Q(candidate_a=F("candidate_b")), name="comparison_candidates_differ"),
            models.UniqueConstraint(fields=["candidate_a", "candidate_b"], name="comparison_unique_pair"),
        ]
        # The order a campaign's open pairs are handed out in: finding the next ones walks it and stops at the
        # first few, rather than sorting every open pair of the campaign on every request.
        indexes = [models.Index(fields=["campaign", "-priority", "id"], name="comparison_handout_order")]

    def __str__(self) -> str:
        return f"Comparison {self.pk}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "prompt" in update_fields:
            _campaigns_fill([self])
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "campaign"}
        super().save(*args, **kwargs)

    def recorded_judgments(self) -> QuerySet["Judgment"]:
        return self.judgments.all()


class Side(models.TextChoices):
    A = "a", "Candidate A"
    B = "b", "Candidate B"


class Verdict(models.TextChoices):
    A = "a", "A better"
    B = "b", "B better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"
    SKIP = "skip", "Skipped"


class Choice(models.TextChoices):
    """What an annotator clicks, in screen terms; mapped to a Verdict through the sides they saw."""

    LEFT = "left", "Left is better"
    RIGHT = "right", "Right is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"
    SKIP = "skip", "Skip"


class Strength(models.TextChoices):
    """How much better the picked side is, when the campaign asks and the annotator says (else blank)."""

    SLIGHTLY = "slightly", "Slightly better"
    CLEARLY = "clearly", "Clearly better"


# What was clicked, with the candidate shown on the left -> the verdict on the fixed candidates a/b. Tie,
# both bad and skip are the same word on the screen and in the verdict.
_VERDICT_FOR_CHOICE = {
    (Choice.LEFT, Side.A): Verdict.A,
    (Choice.LEFT, Side.B): Verdict.B,
    (Choice.RIGHT, Side.A): Verdict.B,
    (Choice.RIGHT, Side.B): Verdict.A,
}
_CHOICE_FOR_VERDICT = {(verdict, side): choice for (choice, side), verdict in _VERDICT_FOR_CHOICE.items()}


def verdict_for_choice(*, choice: str, shown_left: str) -> str:
    """Map what was clicked (left/right/...) to a verdict on the fixed candidates a/b."""
    return _VERDICT_FOR_CHOICE.get((choice, shown_left)) or Verdict(choice)


def choice_for_verdict(*, verdict: str, shown_left: str) -> str:
    """Map a verdict on the fixed candidates back to what was clicked by someone who saw `shown_left` on the left."""
    return _CHOICE_FOR_VERDICT.get((verdict, shown_left), verdict)


class JudgeSource(models.TextChoices):
    HUMAN = "human"
    AI = "ai"


class Assignment(models.Model):
    """A comparison handed to an annotator: holds one of its `overlap` slots until `expires_at`."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    shown_left = models.CharField(max_length=1, choices=Side.choices)
    served_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["comparison", "annotator"], name="assignment_one_per_annotator")]
        indexes = [models.Index(fields=["annotator", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.comparison} for {self.annotator} until {self.expires_at:%H:%M:%S}"


# What a judgment may carry, on every surface (the page's form, the API, the services). Time on task is
# measured in the browser (or on the server): more than a day is a broken clock, not work, and it keeps
# duration_ms far inside PostgreSQL's integer column.
DURATION_MS_MAX = 24 * 3600 * 1000
RATIONALE_MAX_CHARS = 5000


class Ranking(models.Model):
    """A person's full order of a prompt's candidates, best first: one judgment of n > 2 responses. The pairs'
    judgments are derived from it (`annotator.ranking.ranking_submit`), each pointing back to it; undoing it
    withdraws them all and keeps the ranking, withdrawn."""

    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="rankings")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rankings")
    order = models.JSONField(help_text="Candidate ids, best first.")
    shown = models.JSONField(help_text="Candidate ids in the order the annotator saw them, first on top.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time on task.")
    created_at = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True, help_text="When its annotator undid it.")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "annotator"],
                condition=Q(withdrawn_at__isnull=True),
                name="ranking_one_live_per_annotator",
            )
        ]

    def __str__(self) -> str:
        return f"Ranking {self.pk} of {self.annotator} on {self.prompt}"


class Judgment(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="judgments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgments")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    shown_left = models.CharField(
        max_length=1, choices=Side.choices, help_text="Which candidate the annotator saw on the left."
    )
    strength = models.CharField(
        max_length=10,
        choices=Strength.choices,
        blank=True,
        default="",
        help_text="How much better the chosen side is, if the annotator said (campaigns that ask for it).",
    )
    rationale = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time on task.")
    source = models.CharField(max_length=10, choices=JudgeSource.choices, default=JudgeSource.HUMAN)
    details = models.JSONField(default=dict, blank=True, help_text="For AI judges: model, template and raw outputs.")
    ranking = models.ForeignKey(
        Ranking,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="judgments",
        help_text="The ranking this pair's verdict was derived from, if it came from one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="judgment_one_per_annotator"),
        ]
        indexes = [models.Index(fields=["annotator", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.annotator} on {self.comparison}: {self.verdict}"

    @property
    def choice(self) -> str:
        """The verdict in the screen terms the annotator used (left/right/tie/both_bad/skip)."""
        return choice_for_verdict(verdict=self.verdict, shown_left=self.shown_left)


# Audit pairs go out to people before every other open pair (`Comparison.priority`); then, in campaigns that ask
# for it, the pairs the AI judge was unsure of.
AUDIT_PRIORITY = 100
UNCERTAIN_PRIORITY = 50


class JudgeAuditPair(models.Model):
    """One pair of an AI judge's audit sample: drawn at random among the pairs the judge gave a verdict, and
    served to people first (its comparison's priority is raised), so that the judge's verdicts can be compared
    with theirs. Drawn by quality.services.judge_audit_sample_draw; never changes a judgment."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="audits")
    judge = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    seed = models.BigIntegerField(help_text="The campaign's judge_audit_seed when the pair was drawn.")
    draw_key = models.CharField(
        max_length=64, help_text='sha256("<seed>:<comparison id>"): pairs are drawn in the order of this key.'
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["comparison", "judge"], name="judge_audit_pair_once")]

    def __str__(self) -> str:
        return f"{self.comparison} in the audit sample of {self.judge}"


class WithdrawalReason(models.TextChoices):
    UNDO = "undo", "undone by its annotator"
    DELETED = "deleted", "deleted in the admin"


class WithdrawnJudgment(models.Model):
    """A judgment taken back: a copy of every field it had (its id too), who took it back, when and why.

    Kept here rather than flagged in Judgment, so exports, reports, slot counts and the one-judgment-per-pair
    rule see live judgments only, and the annotator may judge the pair again.
    """

    id = models.BigIntegerField(primary_key=True, help_text="The judgment's id, as the page and the API gave it.")
    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="withdrawn_judgments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    shown_left = models.CharField(max_length=1, choices=Side.choices)
    strength = models.CharField(max_length=10, choices=Strength.choices, blank=True, default="")
    rationale = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=JudgeSource.choices)
    details = models.JSONField(default=dict, blank=True)
    ranking = models.ForeignKey(Ranking, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(help_text="When the judgment was recorded.")
    withdrawn_at = models.DateTimeField()
    withdrawn_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=10, choices=WithdrawalReason.choices)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Judgment {self.pk} of {self.annotator} on {self.comparison}, {self.get_reason_display()}"

    @property
    def choice(self) -> str:
        return choice_for_verdict(verdict=self.verdict, shown_left=self.shown_left)
