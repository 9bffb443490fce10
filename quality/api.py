from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.models import Campaign
from core.permissions import IsStaff
from quality.report import campaign_quality_report


class CampaignQualityApi(APIView):
    """Agreement, judge reliability, position and length bias, per-annotator figures and win rates."""

    permission_classes = [IsStaff]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, pk: int) -> Response:
        return Response(campaign_quality_report(campaign=get_object_or_404(Campaign, pk=pk)))
