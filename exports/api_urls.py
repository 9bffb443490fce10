from django.urls import path

from exports import api

urlpatterns = [
    path("campaigns/<int:pk>/exports/", api.CampaignExportCreateApi.as_view(), name="api-campaign-export-create"),
    path("exports/", api.ExportListApi.as_view(), name="api-export-list"),
    path("exports/<int:pk>/", api.ExportDetailApi.as_view(), name="api-export-detail"),
    path("exports/<int:pk>/files/<str:name>/", api.ExportFileApi.as_view(), name="api-export-file"),
]
