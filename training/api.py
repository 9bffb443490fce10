"""Staff API for training runs: list them, read one with its configuration and per-step metrics."""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import IsStaff
from training.models import TrainingMetric
from training.selectors import training_runs_list
from training.serializers import TrainingRunDetailSerializer, TrainingRunSerializer


class TrainingRunListApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=TrainingRunSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(TrainingRunSerializer(training_runs_list()[:200], many=True).data)


class TrainingRunDetailApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=TrainingRunDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        runs = training_runs_list().prefetch_related(
            Prefetch("metrics", queryset=TrainingMetric.objects.order_by("step", "id"))
        )
        return Response(TrainingRunDetailSerializer(get_object_or_404(runs, pk=pk)).data)
