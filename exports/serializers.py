from django.urls import reverse
from rest_framework import serializers

from core.options import options_serializer
from exports.models import DatasetExport
from exports.options import ExportOptions

# For the API schema; the values are checked by ExportOptions, which names the bad one.
ExportOptionsSerializer = options_serializer(ExportOptions, name="ExportOptionsSerializer")


class DatasetExportSerializer(serializers.ModelSerializer):
    campaign_name = serializers.CharField(source="campaign.name")
    created_by = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetExport
        fields = [
            "id",
            "campaign",
            "campaign_name",
            "status",
            "via",
            "options",
            "stats",
            "out_dir",
            "files",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "url",
        ]

    def get_created_by(self, export: DatasetExport) -> str | None:
        return export.created_by.get_username() if export.created_by else None

    def get_files(self, export: DatasetExport) -> dict:
        """Each file's rows, sha256, bytes and path, and `download`: its URL in this API."""
        return {
            name: {**entry, "download": reverse("api-export-file", args=[export.pk, name])}
            for name, entry in export.files.items()
        }

    def get_url(self, export: DatasetExport) -> str:
        return reverse("api-export-detail", args=[export.pk])
