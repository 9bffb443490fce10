from rest_framework import serializers

from training.models import TrainingMetric, TrainingRun


class TrainingRunSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.get_username", default=None)
    validation_reward_accuracy = serializers.FloatField(allow_null=True, read_only=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "status",
            "base_model",
            "dataset_path",
            "dataset_sha256",
            "export",
            "output_dir",
            "device",
            "global_step",
            "validation_reward_accuracy",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]


class TrainingMetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingMetric
        fields = ["split", "step", "epoch", "values"]


class TrainingRunDetailSerializer(TrainingRunSerializer):
    metrics = TrainingMetricSerializer(many=True, read_only=True)

    class Meta(TrainingRunSerializer.Meta):
        fields = [
            *TrainingRunSerializer.Meta.fields,
            "config",
            "dataset_files",
            "final_metrics",
            "warnings",
            "metrics",
        ]
