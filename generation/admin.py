from django.contrib import admin
from django.http import HttpRequest

from generation.models import GenerationRun


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    """Runs are started with `manage.py generate_pairs` or from the Generation page (/generation/), not added here."""

    change_list_template = "generation/admin_change_list.html"
    list_display = [
        "id",
        "campaign",
        "model_name",
        "backend",
        "status",
        "prompts_done",
        "candidates",
        "comparisons",
        "skipped",
        "tokens_per_second",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "campaign"]
    list_select_related = ["campaign"]
    readonly_fields = [
        "campaign",
        "status",
        "config",
        "stats",
        "error",
        "task_id",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="prompts")
    def prompts_done(self, obj: GenerationRun) -> str:
        return f"{obj.stats.get('generated', 0)} / {obj.stats.get('prompts', '?')}"

    @admin.display(description="candidates")
    def candidates(self, obj: GenerationRun) -> int:
        return obj.stats.get("candidates", 0)

    @admin.display(description="comparisons")
    def comparisons(self, obj: GenerationRun) -> int:
        return obj.stats.get("comparisons", 0)

    @admin.display(description="skipped")
    def skipped(self, obj: GenerationRun) -> int:
        return obj.skipped_count

    @admin.display(description="tokens/s")
    def tokens_per_second(self, obj: GenerationRun) -> float:
        return obj.stats.get("tokens_per_second", 0)
