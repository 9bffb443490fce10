"""REST API for annotators (and scripts) and staff: thin adapters over the same services as the pages."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.importing import pairs_import_file
from annotator.selectors import (
    annotator_waiting_for,
    campaign_open_or_404,
    campaign_progress_for,
    campaigns_with_judged_count_for,
    comparison_as_shown,
    comparison_open_or_404,
)
from annotator.serializers import (
    CampaignSerializer,
    ImportInputSerializer,
    ImportResultSerializer,
    JudgmentInputSerializer,
    JudgmentSerializer,
    NextComparisonSerializer,
    ProgressSerializer,
    UndoInputSerializer,
    WithdrawnJudgmentSerializer,
)
from annotator.services import assignment_next, judgment_submit, judgment_undo
from core.conversations import conversation_with_system
from core.parsers import MultiPartParser
from core.permissions import IsStaff


class CampaignListApi(ListAPIView):
    serializer_class = CampaignSerializer

    def get_queryset(self) -> QuerySet:
        return campaigns_with_judged_count_for(user=self.request.user)


class CampaignProgressApi(APIView):
    @extend_schema(responses=ProgressSerializer)
    def get(self, request: Request, pk: int) -> Response:
        progress = campaign_progress_for(
            campaign=campaign_open_or_404(pk=pk, user=request.user), annotator=request.user
        )
        return Response(ProgressSerializer(progress).data)


class CampaignNextApi(APIView):
    @extend_schema(
        responses={
            200: NextComparisonSerializer,
            204: OpenApiResponse(
                description="Nothing open for you now. With a Retry-After header (seconds), pairs that other "
                "annotators hold may still come back to you: ask again then. Without it, you are done."
            ),
        }
    )
    def get(self, request: Request, pk: int) -> Response:
        campaign = campaign_open_or_404(pk=pk, user=request.user)
        assignment = assignment_next(campaign=campaign, annotator=request.user)
        if assignment is None:
            # Pairs that other annotators hold may still come back: Retry-After says when to ask again.
            waiting = annotator_waiting_for(campaign=campaign, annotator=request.user)
            headers = {"Retry-After": str(waiting.retry_after)} if waiting else None
            return Response(status=status.HTTP_204_NO_CONTENT, headers=headers)
        shown = comparison_as_shown(assignment=assignment)
        prompt = shown.comparison.prompt
        payload = {
            "id": shown.comparison.pk,
            "prompt": conversation_with_system(prompt.messages, prompt.system),
            "left": {"id": shown.left.pk, "text": shown.left.text, "truncated": shown.left.is_truncated},
            "right": {"id": shown.right.pk, "text": shown.right.text, "truncated": shown.right.is_truncated},
            "expires_at": assignment.expires_at,
        }
        return Response(NextComparisonSerializer(payload).data)


class CampaignUndoApi(APIView):
    @extend_schema(
        request=UndoInputSerializer,
        responses={
            200: OpenApiResponse(
                WithdrawnJudgmentSerializer, description="Undone now, or undone already (a repeat undoes nothing more)."
            ),
            409: OpenApiResponse(
                description="Not your latest judgment in the campaign, or its undo window passed: why."
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        campaign = campaign_open_or_404(pk=pk, user=request.user)
        data = UndoInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = judgment_undo(campaign=campaign, annotator=request.user, judgment_id=data.validated_data["judgment"])
        return Response(WithdrawnJudgmentSerializer(result.withdrawn).data)


class JudgmentCreateApi(APIView):
    @extend_schema(
        request=JudgmentInputSerializer,
        responses={
            201: JudgmentSerializer,
            200: OpenApiResponse(JudgmentSerializer, description="Already judged: the first judgment, unchanged."),
            409: OpenApiResponse(description="The pair was not handed to you, or your hold expired and it is full."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        comparison = comparison_open_or_404(pk=pk, user=request.user)
        data = JudgmentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = judgment_submit(comparison=comparison, annotator=request.user, **data.validated_data)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(JudgmentSerializer(result.judgment).data, status=code)


class PairsImportApi(APIView):
    permission_classes = [IsStaff]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=ImportInputSerializer, responses={201: ImportResultSerializer})
    def post(self, request: Request) -> Response:
        data = ImportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        result = pairs_import_file(
            upload.file,
            name=upload.name,
            campaign_name=data.validated_data["campaign"],
            file_format=data.validated_data.get("format"),
            created_by=request.user,
        )
        return Response(ImportResultSerializer(result).data, status=status.HTTP_201_CREATED)
