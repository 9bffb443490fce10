from datetime import datetime
from typing import TYPE_CHECKING, Any

from rest_framework import serializers

from annotator.models import DURATION_MS_MAX, RATIONALE_MAX_CHARS, Campaign, Choice, Judgment, Strength
from core.conversations import conversation_with_system

if TYPE_CHECKING:
    from annotator.selectors import ShownPair


class CampaignSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    guidelines = serializers.CharField()
    overlap = serializers.IntegerField()
    allow_tie = serializers.BooleanField()
    allow_both_bad = serializers.BooleanField()
    ask_strength = serializers.BooleanField(help_text="Whether a side may come with its strength.")
    judged_by_me = serializers.IntegerField(help_text="Pairs the caller judged or skipped.")


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    remaining = serializers.IntegerField()
    total = serializers.IntegerField()


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


class ResponseSideSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Candidate id.")
    text = serializers.CharField()
    truncated = serializers.BooleanField(
        help_text="The response stopped at its token limit (finish_reason length), not at the end of its answer."
    )


class NextComparisonSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Comparison id: POST the verdict to /api/comparisons/<id>/judgments/.")
    prompt = MessageSerializer(many=True, help_text="The conversation, system message first if there is one.")
    left = ResponseSideSerializer()
    right = ResponseSideSerializer()
    expires_at = serializers.DateTimeField(help_text="The pair is held for you until then.")
    rank = ResponseSideSerializer(
        many=True,
        allow_null=True,
        help_text="In a campaign that ranks more than two responses: every response of the prompt, in the order "
        "shown to you; POST their ids, best first, to /api/comparisons/<id>/ranking/ (left and right are its first "
        "two). Null for a pair to judge as a pair.",
    )


class RankingInputSerializer(serializers.Serializer):
    order = serializers.ListField(
        child=serializers.IntegerField(), min_length=3, help_text="The candidate ids of `rank`, best first."
    )
    duration_ms = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=DURATION_MS_MAX, default=None
    )


class RankingSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The ranking.")
    order = serializers.ListField(child=serializers.IntegerField(), help_text="Candidate ids, best first.")
    shown = serializers.ListField(child=serializers.IntegerField(), help_text="In the order you saw them.")
    judgments = serializers.ListField(
        child=serializers.IntegerField(), help_text="The pairs' judgments derived from it (undo one to undo it)."
    )


class JudgmentInputSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=Choice.choices)
    edited_text = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Your better version of the response you pick (left or right), in campaigns that allow edits: "
        "stored as a new candidate that records you and the response it came from.",
    )
    strength = serializers.ChoiceField(
        choices=Strength.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text="How much better the chosen side is (left or right only), in campaigns that ask for it.",
    )
    rationale = serializers.CharField(required=False, allow_blank=True, max_length=RATIONALE_MAX_CHARS, default="")
    duration_ms = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=DURATION_MS_MAX, default=None
    )


class JudgmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    comparison = serializers.IntegerField(source="comparison_id")
    choice = serializers.CharField()
    verdict = serializers.CharField(help_text="On the fixed candidates: a, b, tie, both_bad or skip.")
    shown_left = serializers.CharField(help_text="Which candidate (a or b) was on the left.")
    strength = serializers.CharField(help_text="slightly or clearly better, or blank when not said.")
    rationale = serializers.CharField()
    duration_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class JudgmentWithNextSerializer(serializers.Serializer):
    """The answer to POST /api/comparisons/<id>/judgments/?next=1."""

    judgment = JudgmentSerializer()
    next = NextComparisonSerializer(
        allow_null=True,
        help_text="Your next pair, as GET /api/campaigns/<id>/next/ gives it; null when nothing is open for you "
        "now (then a Retry-After header, in seconds, says when to ask next again, as next's 204 does; without "
        "it you are done).",
    )


class UndoInputSerializer(serializers.Serializer):
    judgment = serializers.IntegerField(
        min_value=1,
        help_text="The id of the judgment to undo (your latest in the campaign), as its POST answered it.",
        error_messages={
            "required": "Name the judgment to undo: its id, as POST /api/comparisons/<id>/judgments/ answered it."
        },
    )


class WithdrawnJudgmentSerializer(JudgmentSerializer):
    withdrawn_at = serializers.DateTimeField(help_text="When it was undone.")


class ImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSONL or Parquet with prompt, response_a, response_b per row.")
    campaign = serializers.CharField(
        max_length=Campaign._meta.get_field("name").max_length,
        help_text="Campaign name; created if it does not exist.",
    )
    format = serializers.ChoiceField(
        choices=["jsonl", "parquet"], required=False, help_text="Default: from the file name."
    )


class ImportResultSerializer(serializers.Serializer):
    campaign_id = serializers.IntegerField(source="campaign.id")
    campaign = serializers.CharField(source="campaign.name")
    campaign_created = serializers.BooleanField()
    rows = serializers.IntegerField()
    imported = serializers.IntegerField()
    already_present = serializers.IntegerField()


# The hot path's answers, written without a serializer instance: DRF builds and copies every field of a
# serializer each time one is instantiated, which cost more than the rest of the answer. The same values as
# NextComparisonSerializer and JudgmentSerializer (tests/annotator/test_api.py compares them); those stay
# the schema.
_DATETIME = serializers.DateTimeField()


def _side(candidate: Any) -> dict[str, Any]:
    return {"id": candidate.pk, "text": candidate.text, "truncated": candidate.is_truncated}


def next_comparison_data(*, shown: "ShownPair", expires_at: datetime, rank: list | None = None) -> dict[str, Any]:
    prompt = shown.comparison.prompt
    return {
        "id": shown.comparison.pk,
        "prompt": conversation_with_system(prompt.messages, prompt.system),
        "left": _side(shown.left),
        "right": _side(shown.right),
        "expires_at": _DATETIME.to_representation(expires_at),
        "rank": None if rank is None else [_side(candidate) for candidate in rank],
    }


def judgment_data(judgment: Judgment) -> dict[str, Any]:
    return {
        "id": judgment.pk,
        "comparison": judgment.comparison_id,
        "choice": judgment.choice,
        "verdict": judgment.verdict,
        "shown_left": judgment.shown_left,
        "strength": judgment.strength,
        "rationale": judgment.rationale,
        "duration_ms": judgment.duration_ms,
        "created_at": _DATETIME.to_representation(judgment.created_at),
    }
