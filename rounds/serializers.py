from django.urls import reverse
from rest_framework import serializers

from core.options import options_serializer
from rounds.models import Round, RoundStep, Series
from rounds.options import SeriesOptions
from rounds.selectors import round_next, round_steps

# For the API schema; the values are checked by SeriesOptions, which names the bad one.
SeriesOptionsSerializer = options_serializer(SeriesOptions, name="SeriesOptionsSerializer")


class SeriesStartSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150)
    options = SeriesOptionsSerializer(help_text="The settings every round shares; prompts files are server paths.")
    run_now = serializers.BooleanField(default=False, help_text="Queue the steps that need no people at once.")


class AdvanceSerializer(serializers.Serializer):
    anyway = serializers.BooleanField(default=False, help_text="Go on with what people judged so far.")
    chain = serializers.BooleanField(default=False, help_text="Then the next steps, until one needs people.")


class RoundStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = RoundStep
        fields = ["id", "step", "status", "chain", "result", "error", "created_at", "started_at", "finished_at"]


class RoundSummarySerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Round
        fields = ["id", "number", "step", "policy_model", "tuned_model", "win_rate", "win_rate_low", "win_rate_high",
                  "eval_pairs", "url"]  # fmt: skip

    def get_url(self, round: Round) -> str:
        return reverse("api-round-detail", args=[round.pk])


class RoundSerializer(RoundSummarySerializer):
    series_name = serializers.CharField(source="series.name")
    next = serializers.SerializerMethodField(help_text="What is left to do, in a line.")
    progress = serializers.SerializerMethodField(help_text="Each step: its state, how far it is, its last attempt.")

    class Meta(RoundSummarySerializer.Meta):
        fields = [*RoundSummarySerializer.Meta.fields, "series", "series_name", "policy_revision", "prompts_sha256",
                  "eval_prompts_sha256", "campaign", "generation_run", "export", "training_run", "tuned_revision",
                  "eval_campaign", "eval_generation_run", "created_at", "finished_at", "next", "progress"]  # fmt: skip

    def get_next(self, round: Round) -> str:
        return round_next(round=round)

    def get_progress(self, round: Round) -> list[dict]:
        return [
            {
                "step": view.step.value,
                "state": view.state,
                "detail": view.detail,
                "job": RoundStepSerializer(view.job).data if view.job else None,
            }
            for view in round_steps(round=round)
        ]


class SeriesSerializer(serializers.ModelSerializer):
    rounds = RoundSummarySerializer(many=True, read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Series
        fields = ["id", "name", "options", "created_at", "rounds", "url"]

    def get_url(self, series: Series) -> str:
        return reverse("api-round-series-detail", args=[series.pk])
