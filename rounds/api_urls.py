from django.urls import path

from rounds import api

urlpatterns = [
    path("round-series/", api.SeriesListApi.as_view(), name="api-round-series-list"),
    path("round-series/<int:pk>/", api.SeriesDetailApi.as_view(), name="api-round-series-detail"),
    path("round-series/<int:pk>/rounds/", api.SeriesNextRoundApi.as_view(), name="api-round-series-next"),
    path("rounds/<int:pk>/", api.RoundDetailApi.as_view(), name="api-round-detail"),
    path("rounds/<int:pk>/advance/", api.RoundAdvanceApi.as_view(), name="api-round-advance"),
]
