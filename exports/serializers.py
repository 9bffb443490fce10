from django.urls import reverse
from rest_framework import serializers

from exports.models import DatasetExport
from exports.options import FORMATS, JUDGES, ExportOptions

_DEFAULTS = ExportOptions()


class ExportOptionsSerializer(serializers.Serializer):
    """For the API schema; the values are checked by ExportOptions, which names the bad one."""

    format = serializers.ChoiceField(choices=FORMATS, required=False, default=_DEFAULTS.format)
    judges = serializers.ChoiceField(choices=JUDGES, required=False, default=_DEFAULTS.judges)
    val_fraction = serializers.FloatField(required=False, default=_DEFAULTS.val_fraction)
    seed = serializers.IntegerField(required=False, default=_DEFAULTS.seed)
    min_votes = serializers.IntegerField(required=False, default=_DEFAULTS.min_votes)
    min_agreement = serializers.FloatField(required=False, default=_DEFAULTS.min_agreement)
    tokenizer = serializers.CharField(required=False, allow_blank=True, default="")
    max_length = serializers.IntegerField(required=False, allow_null=True, default=None)
    drop_overlong = serializers.BooleanField(required=False, default=False)


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
