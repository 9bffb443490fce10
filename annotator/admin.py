from typing import Any

from django.contrib import admin
from django.db.models import Count, Model, Q, QuerySet
from django.http import HttpRequest

from annotator.models import (
    Assignment,
    Campaign,
    Candidate,
    Comparison,
    JudgeAuditPair,
    Judgment,
    Prompt,
    Verdict,
    WithdrawnJudgment,
)
from annotator.services import campaign_overlap_set, judgments_delete


class JudgedWorkAdmin(admin.ModelAdmin):
    """Admin of what judgments rest on: once one exists, the object cannot be deleted here (its judgments
    would go with it) and its `frozen_fields` are read-only (the model refuses to save them changed)."""

    instead_of_deleting = ""

    @staticmethod
    def judgment_count(obj: Model) -> int:
        if "_judgment_count" not in obj.__dict__:
            obj.__dict__["_judgment_count"] = obj.recorded_judgments().count()
        return obj.__dict__["_judgment_count"]

    def judged_name(self, obj: Model) -> str:
        return f"{obj._meta.verbose_name.capitalize()} {obj.pk}"

    @admin.display(description="judged")
    def kept_because_judged(self, obj: Model) -> str:
        count = self.judgment_count(obj)
        frozen = getattr(obj, "frozen_fields", ())
        refusal = f"{self.judged_name(obj)} has {count} judgment{'s' if count != 1 else ''}: it cannot be deleted"
        if frozen:
            refusal += f" and its {' and '.join(frozen)} cannot change"
        return f"{refusal}. {self.instead_of_deleting}".strip()

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and self.judgment_count(obj):
            fields += [*getattr(obj, "frozen_fields", ()), "kept_because_judged"]
        return fields

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if obj is not None and self.judgment_count(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list, dict, set, list]:
        """Deleting several at once: judged ones are listed as protected, with the reason and what to do, beside
        the records (exports, withdrawn judgments, rounds) that protect them."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        protected = [self.kept_because_judged(obj) for obj in objs if self.judgment_count(obj)] + protected
        if protected:
            # Nothing is deleted then: show why. The admin would name missing permissions first, and judged
            # objects and withdrawn judgments lack the delete permission for that very reason.
            perms_needed = set()
        return deleted, counts, perms_needed, protected


@admin.register(Campaign)
class CampaignAdmin(JudgedWorkAdmin):
    instead_of_deleting = (
        "Deactivate it instead (untick Active): annotators no longer see it, and its judgments, exports and "
        "training runs stay."
    )

    def judged_name(self, obj: Campaign) -> str:
        return f"Campaign {obj.name!r}"

    list_display = [
        "name",
        "is_active",
        "overlap",
        "min_votes",
        "allow_tie",
        "allow_both_bad",
        "judge_audit_size",
        "n_comparisons",
        "n_judgments",
        "created_at",
    ]
    list_filter = ["is_active"]
    search_fields = ["name", "description"]
    filter_horizontal = ["annotators"]
    readonly_fields = ["created_by", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _comparisons=Count("prompts__comparisons", distinct=True),
                _judgments=Count(
                    "prompts__comparisons__judgments",
                    filter=~Q(prompts__comparisons__judgments__verdict=Verdict.SKIP),
                    distinct=True,
                ),
            )
        )

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and {"overlap", "min_votes", "settle_margin"} & set(form.changed_data):
            # Which pairs are settled depends on the rule: decide again under the new one.
            campaign_overlap_set(
                campaign=obj, overlap=obj.overlap, min_votes=obj.min_votes, settle_margin=obj.settle_margin
            )

    @admin.display(description="pairs", ordering="_comparisons")
    def n_comparisons(self, obj: Campaign) -> int:
        return obj._comparisons

    @admin.display(description="judgments", ordering="_judgments")
    def n_judgments(self, obj: Campaign) -> int:
        return obj._judgments


@admin.register(Prompt)
class PromptAdmin(JudgedWorkAdmin):
    list_display = ["id", "__str__", "campaign", "created_at"]
    list_filter = ["campaign"]
    list_select_related = ["campaign"]
    search_fields = ["content_hash", "system"]
    readonly_fields = ["content_hash", "created_at"]


@admin.register(Candidate)
class CandidateAdmin(JudgedWorkAdmin):
    list_display = [
        "id",
        "prompt_id",
        "model_name",
        "backend",
        "seed",
        "completion_tokens",
        "finish_reason",
        "prompt_format",
        "created_at",
    ]
    list_filter = ["backend", "finish_reason", "prompt_format"]
    search_fields = ["model_name", "text"]
    raw_id_fields = ["prompt"]


class JudgmentInline(admin.TabularInline):
    model = Judgment
    extra = 0
    fields = ["annotator", "verdict", "shown_left", "source", "duration_ms", "rationale", "created_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(Comparison)
class ComparisonAdmin(JudgedWorkAdmin):
    list_display = ["id", "prompt_id", "campaign", "candidate_a_id", "candidate_b_id", "n_judgments", "created_at"]
    list_filter = ["campaign"]
    raw_id_fields = ["prompt", "candidate_a", "candidate_b"]
    inlines = [JudgmentInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Comparison]:
        return super().get_queryset(request).select_related("campaign").annotate(_judgments=Count("judgments"))

    @admin.display(description="judgments", ordering="_judgments")
    def n_judgments(self, obj: Comparison) -> int:
        return obj._judgments


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "comparison_id",
        "campaign",
        "annotator",
        "verdict",
        "shown_left",
        "source",
        "duration_ms",
        "created_at",
    ]
    list_filter = ["source", "verdict", "shown_left", "comparison__campaign"]
    list_select_related = ["annotator", "comparison__campaign"]
    search_fields = ["annotator__username", "rationale"]
    raw_id_fields = ["comparison", "annotator"]
    date_hierarchy = "created_at"

    # Judgments are records: read them here, delete them if needed (through the service that keeps each
    # deleted one as withdrawn, with who and when, and each pair's vote count right), but never edit or add
    # them by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Judgment | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Judgment) -> None:
        judgments_delete(judgments=Judgment.objects.filter(pk=obj.pk), deleted_by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Judgment]) -> None:
        judgments_delete(judgments=queryset, deleted_by=request.user)

    @admin.display(ordering="comparison__campaign__name")
    def campaign(self, obj: Judgment) -> str:
        return obj.comparison.campaign.name


@admin.register(WithdrawnJudgment)
class WithdrawnJudgmentAdmin(admin.ModelAdmin):
    """Judgments taken back (undone, or deleted in the admin): a record, read-only."""

    list_display = [
        "id",
        "comparison_id",
        "campaign",
        "annotator",
        "verdict",
        "source",
        "created_at",
        "reason",
        "withdrawn_by",
        "withdrawn_at",
    ]
    list_filter = ["reason", "source", "comparison__campaign"]
    list_select_related = ["annotator", "withdrawn_by", "comparison__campaign"]
    search_fields = ["annotator__username", "withdrawn_by__username", "rationale"]
    date_hierarchy = "withdrawn_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WithdrawnJudgment | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: WithdrawnJudgment | None = None) -> bool:
        return False

    @admin.display(ordering="comparison__campaign__name")
    def campaign(self, obj: WithdrawnJudgment) -> str:
        return obj.comparison.campaign.name


@admin.register(JudgeAuditPair)
class JudgeAuditPairAdmin(admin.ModelAdmin):
    """The AI judges' audit samples (drawn by judge_pairs, docs/judge.md): a record, read-only."""

    list_display = ["id", "comparison_id", "campaign", "judge", "seed", "draw_key", "created_at"]
    list_filter = ["comparison__campaign", "judge"]
    list_select_related = ["judge", "comparison__campaign"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: JudgeAuditPair | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: JudgeAuditPair | None = None) -> bool:
        return False

    @admin.display(ordering="comparison__campaign__name")
    def campaign(self, obj: JudgeAuditPair) -> str:
        return obj.comparison.campaign.name


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison_id", "annotator", "shown_left", "served_at", "expires_at"]
    list_select_related = ["annotator"]
    raw_id_fields = ["comparison", "annotator"]
