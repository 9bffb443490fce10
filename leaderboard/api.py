from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.options import options_serializer
from core.permissions import IsStaff
from leaderboard.options import LeaderboardOptions
from leaderboard.selectors import leaderboard_campaign
from leaderboard.services import leaderboard_build

# For the API schema (the query parameters); the values are checked by LeaderboardOptions, which names the bad one.
LeaderboardOptionsSerializer = options_serializer(LeaderboardOptions, name="LeaderboardOptionsSerializer")


class LeaderboardApi(APIView):
    """Every model of a campaign's comparisons (or of all campaigns) ranked by Bradley-Terry strength, with 95%
    intervals, votes, the pairwise win-rate matrix and the length-controlled strengths."""

    permission_classes = [IsStaff]

    @extend_schema(
        parameters=[
            OpenApiParameter("campaign", int, description="A campaign's id; leave it out for every campaign."),
            LeaderboardOptionsSerializer,
        ],
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(description="A bad parameter: `detail` names it and says what to use."),
        },
    )
    def get(self, request: Request) -> Response:
        # `format` is DRF's own (?format=json); the rest are the options.
        values = {name: value for name, value in request.query_params.items() if name not in {"campaign", "format"}}
        options = LeaderboardOptions.from_mapping(values)
        campaign = leaderboard_campaign(value=request.query_params.get("campaign"))
        return Response(leaderboard_build(campaign=campaign, options=options))
