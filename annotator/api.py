"""REST API for annotators (and scripts) and staff: thin adapters over the same services as the pages."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.importing import pairs_import_file
from annotator.models import Campaign
from annotator.ranking import ranking_applies, ranking_candidates, ranking_shown_order, ranking_submit
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
    JudgmentWithNextSerializer,
    NextComparisonSerializer,
    ProgressSerializer,
    RankingInputSerializer,
    RankingSerializer,
    UndoInputSerializer,
    WithdrawnJudgmentSerializer,
    judgment_data,
    next_comparison_data,
)
from annotator.services import assignment_next, judgment_submit, judgment_undo
from core.errors import InputError
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


_NOTHING_OPEN = (
    "Nothing open for you now. With a Retry-After header (seconds), pairs that other annotators hold may still "
    "come back to you: ask again then. Without it, you are done."
)


def _next_for(*, campaign: Campaign, annotator: AbstractBaseUser) -> tuple[dict | None, dict[str, str] | None]:
    """The annotator's next pair as the API answers it, or None and the headers that say whether to ask again."""
    assignment = assignment_next(campaign=campaign, annotator=annotator)
    if assignment is None:
        # Pairs that other annotators hold may still come back: Retry-After says when to ask again.
        waiting = annotator_waiting_for(campaign=campaign, annotator=annotator)
        return None, ({"Retry-After": str(waiting.retry_after)} if waiting else None)
    shown = comparison_as_shown(assignment=assignment)
    rank = None
    if campaign.rank_candidates:
        candidates = ranking_candidates(prompt_id=shown.comparison.prompt_id)
        if ranking_applies(campaign=campaign, candidates=candidates):
            rank = ranking_shown_order(assignment=assignment, candidates=candidates)
    return next_comparison_data(shown=shown, expires_at=assignment.expires_at, rank=rank), None


class CampaignNextApi(APIView):
    @extend_schema(responses={200: NextComparisonSerializer, 204: OpenApiResponse(description=_NOTHING_OPEN)})
    def get(self, request: Request, pk: int) -> Response:
        campaign = campaign_open_or_404(pk=pk, user=request.user)
        pair, headers = _next_for(campaign=campaign, annotator=request.user)
        if pair is None:
            return Response(status=status.HTTP_204_NO_CONTENT, headers=headers)
        return Response(pair)


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


_WITH_NEXT = {"1": True, "true": True, "0": False, "false": False}
_JUDGMENT_ANSWER = PolymorphicProxySerializer(
    component_name="JudgmentAnswer",
    serializers=[JudgmentSerializer, JudgmentWithNextSerializer],
    resource_type_field_name=None,
)


class JudgmentCreateApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "next",
                bool,
                description='1: answer with your next pair too, {"judgment": ..., "next": ... or null} (one '
                "request per judgment instead of two: GET next, then POST). A null next comes with a Retry-After "
                "header when pairs others hold may still come back (seconds), as next's 204 does. Refusals (400, "
                "404, 409) are answered as without it, with no next: ask GET /api/campaigns/<id>/next/.",
            )
        ],
        request=JudgmentInputSerializer,
        responses={
            201: OpenApiResponse(
                _JUDGMENT_ANSWER, description="Recorded: the judgment (with ?next=1, and your next pair)."
            ),
            200: OpenApiResponse(
                _JUDGMENT_ANSWER,
                description="Already judged: the first judgment, unchanged (with ?next=1, and your next pair).",
            ),
            409: OpenApiResponse(description="The pair was not handed to you, or your hold expired and it is full."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        flag = request.query_params.get("next", "0")
        if flag.lower() not in _WITH_NEXT:
            raise InputError(f"next is {flag!r}: use next=1 for the judgment and your next pair, or leave it out.")
        comparison = comparison_open_or_404(pk=pk, user=request.user)
        data = JudgmentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = judgment_submit(comparison=comparison, annotator=request.user, **data.validated_data)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        judgment = judgment_data(result.judgment)
        if not _WITH_NEXT[flag.lower()]:
            return Response(judgment, status=code)
        # The judgment is committed already: a failure from here on loses nothing, and a retry answers 200.
        campaign = comparison.prompt.campaign
        if campaign.sentinel_of_id is not None:  # a sentinel pair: the next one comes from the campaign it checks
            campaign = campaign.sentinel_of
        pair, headers = _next_for(campaign=campaign, annotator=request.user)
        return Response({"judgment": judgment, "next": pair}, status=code, headers=headers)


class RankingCreateApi(APIView):
    @extend_schema(
        request=RankingInputSerializer,
        responses={
            201: RankingSerializer,
            200: OpenApiResponse(RankingSerializer, description="Ranked already: the first ranking, unchanged."),
            409: OpenApiResponse(description="The responses were not handed to you, or your hold expired."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        comparison = comparison_open_or_404(pk=pk, user=request.user)
        data = RankingInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = ranking_submit(comparison=comparison, annotator=request.user, **data.validated_data)
        ranking = result.ranking
        body = {
            "id": ranking.pk,
            "order": ranking.order,
            "shown": ranking.shown,
            "judgments": sorted(j.pk for j in result.judgments),
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


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
