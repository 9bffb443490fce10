"""Staff API for rounds: start a series (and its first round), read series and rounds, start the next round,
advance a round (202: its step runs in the background)."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.generics import ListAPIView
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import IsStaff
from rounds.models import Series
from rounds.options import SeriesOptions
from rounds.selectors import round_get, series_list
from rounds.serializers import (
    AdvanceSerializer,
    RoundSerializer,
    RoundStepSerializer,
    SeriesSerializer,
    SeriesStartSerializer,
)
from rounds.services import round_advance, round_start, series_start

REFUSED = OpenApiResponse(description="A bad setting (400) or a state that forbids it (409): `detail` says why.")


def _object(data: object, example: str) -> dict:
    if not isinstance(data, dict):
        raise ParseError(f"Send a JSON object, e.g. {example}.")
    return data


class SeriesListApi(ListAPIView):
    permission_classes = [IsStaff]
    parser_classes = [JSONParser]
    serializer_class = SeriesSerializer

    def get_queryset(self) -> QuerySet:
        return series_list()

    @extend_schema(request=SeriesStartSerializer, responses={201: RoundSerializer, 400: REFUSED, 409: REFUSED})
    def post(self, request: Request) -> Response:
        data = _object(request.data, '{"name": "Stories", "options": {"base_model": "...", "prompts_file": "..."}}')
        options = SeriesOptions.from_mapping(_object(data.get("options") or {}, '"options": {"base_model": "..."}'))
        round = series_start(name=str(data.get("name", "")), options=options, created_by=request.user)
        if data.get("run_now"):
            round_advance(round=round, created_by=request.user, chain=True)
        return Response(RoundSerializer(round_get(pk=round.pk)).data, status=status.HTTP_201_CREATED)


class SeriesDetailApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=SeriesSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(SeriesSerializer(get_object_or_404(series_list(), pk=pk)).data)


class SeriesNextRoundApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=None, responses={201: RoundSerializer, 409: REFUSED})
    def post(self, request: Request, pk: int) -> Response:
        round = round_start(series=get_object_or_404(Series, pk=pk), created_by=request.user)
        return Response(RoundSerializer(round_get(pk=round.pk)).data, status=status.HTTP_201_CREATED)


class RoundDetailApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=RoundSerializer)
    def get(self, request: Request, pk: int) -> Response:
        round = round_get(pk=pk)
        if round is None:
            raise NotFound(f"No round with id {pk}.")
        return Response(RoundSerializer(round).data)


class RoundAdvanceApi(APIView):
    permission_classes = [IsStaff]
    parser_classes = [JSONParser]

    @extend_schema(request=AdvanceSerializer, responses={202: RoundStepSerializer, 409: REFUSED})
    def post(self, request: Request, pk: int) -> Response:
        round = round_get(pk=pk)
        if round is None:
            raise NotFound(f"No round with id {pk}.")
        values = AdvanceSerializer(data=_object(request.data or {}, '{"anyway": false, "chain": true}'))
        values.is_valid(raise_exception=True)
        job = round_advance(round=round, created_by=request.user, **values.validated_data)
        return Response(RoundStepSerializer(job).data, status=status.HTTP_202_ACCEPTED)
