from django.urls import path

from quality import api

urlpatterns = [
    path("campaigns/<int:pk>/quality/", api.CampaignQualityApi.as_view(), name="api-campaign-quality"),
]
