from django.urls import path

from annotator import api

urlpatterns = [
    path("campaigns/", api.CampaignListApi.as_view(), name="api-campaign-list"),
    path("campaigns/import/", api.PairsImportApi.as_view(), name="api-pairs-import"),
    path("campaigns/<int:pk>/progress/", api.CampaignProgressApi.as_view(), name="api-campaign-progress"),
    path("campaigns/<int:pk>/next/", api.CampaignNextApi.as_view(), name="api-campaign-next"),
    path("campaigns/<int:pk>/undo/", api.CampaignUndoApi.as_view(), name="api-campaign-undo"),
    path("comparisons/<int:pk>/judgments/", api.JudgmentCreateApi.as_view(), name="api-judgment-create"),
    path("comparisons/<int:pk>/ranking/", api.RankingCreateApi.as_view(), name="api-ranking-create"),
]
