from django.contrib import admin

from exports.models import DatasetExport


@admin.register(DatasetExport)
class DatasetExportAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "status", "via", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "via", "campaign"]
    list_select_related = ["campaign", "created_by"]
    readonly_fields = [f.name for f in DatasetExport._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # exports are started from /exports/new/, the API or the command
