from django.contrib import admin

from rounds.models import Round, RoundStep, Series


class RoundInline(admin.TabularInline):
    model = Round
    fields = ["number", "step", "policy_model", "tuned_model", "win_rate"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["options", "created_by", "created_at"]
    inlines = [RoundInline]


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["id", "series", "number", "step", "policy_model", "win_rate", "created_at"]
    list_filter = ["step"]
    search_fields = ["series__name", "policy_model", "tuned_model"]
    readonly_fields = [f.name for f in Round._meta.fields if f.name != "id"]


@admin.register(RoundStep)
class RoundStepAdmin(admin.ModelAdmin):
    list_display = ["id", "round", "step", "status", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "step"]
    readonly_fields = [f.name for f in RoundStep._meta.fields if f.name != "id"]
