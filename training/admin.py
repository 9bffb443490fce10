from django.contrib import admin

from training.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "base_model", "dataset_path", "global_step", "created_by", "created_at"]
    list_filter = ["status"]
    search_fields = ["base_model", "dataset_path", "output_dir", "dataset_sha256"]
    readonly_fields = [
        "status",
        "config",
        "export",
        "dataset_path",
        "dataset_sha256",
        "dataset_files",
        "base_model",
        "output_dir",
        "device",
        "global_step",
        "final_metrics",
        "warnings",
        "error",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
