"""Staff API for exports: start one for a campaign (202, it runs in the background), list, read, download."""

from django.db import transaction
from django.db.models import QuerySet
from django.http import FileResponse
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
from exports.models import ExportVia
from exports.selectors import campaign_get, dataset_export_file, dataset_exports_list
from exports.serializers import DatasetExportSerializer, ExportOptionsSerializer
from exports.services import dataset_export_create, dataset_export_enqueue


class CampaignExportCreateApi(APIView):
    permission_classes = [IsStaff]
    parser_classes = [JSONParser]

    @extend_schema(
        request=ExportOptionsSerializer,
        responses={
            202: DatasetExportSerializer,
            400: OpenApiResponse(description="A bad option: `detail` names it and says what to use."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        campaign = campaign_get(pk=pk)
        if campaign is None:
            raise NotFound(f"No campaign with id {pk}.")
        if not isinstance(request.data, dict):
            raise ParseError('Send the options as a JSON object, e.g. {"format": "auto", "val_fraction": 0.1}.')
        with transaction.atomic():
            export = dataset_export_create(
                campaign=campaign, options=dict(request.data), created_by=request.user, via=ExportVia.API
            )
            dataset_export_enqueue(export=export)
        export.refresh_from_db()
        return Response(DatasetExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)


class ExportListApi(ListAPIView):
    permission_classes = [IsStaff]
    serializer_class = DatasetExportSerializer

    def get_queryset(self) -> QuerySet:
        return dataset_exports_list()


class ExportDetailApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=DatasetExportSerializer)
    def get(self, request: Request, pk: int) -> Response:
        export = get_object_or_404(dataset_exports_list(), pk=pk)
        return Response(DatasetExportSerializer(export).data)


class ExportFileApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(description="The file.")})
    def get(self, request: Request, pk: int, name: str) -> FileResponse:
        export = get_object_or_404(dataset_exports_list(), pk=pk)
        path = dataset_export_file(export=export, name=name)
        if path is None:
            raise NotFound(
                f"Export {pk} has no file {name!r} as it wrote it (deleted, or replaced by a later export into the "
                "same directory): its `files` lists what it has; export again if needed."
            )
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)
