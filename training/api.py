"""Staff API for training runs: list them, read one with its configuration and per-step metrics."""

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import IsStaff
from training.models import TrainingMetric
from training.selectors import training_runs_list
from training.serializers import TrainingRunDetailSerializer, TrainingRunSerializer


class TrainingRunListApi(ListAPIView):
    permission_classes = [IsStaff]
    serializer_class = TrainingRunSerializer

    def get_queryset(self) -> QuerySet:
        return training_runs_list()


class TrainingRunDetailApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=TrainingRunDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        runs = training_runs_list().prefetch_related(
            Prefetch("metrics", queryset=TrainingMetric.objects.order_by("step", "id"))
        )
        return Response(TrainingRunDetailSerializer(get_object_or_404(runs, pk=pk)).data)
