from django.urls import path

from training import api

urlpatterns = [
    path("training-runs/", api.TrainingRunListApi.as_view(), name="api-training-run-list"),
    path("training-runs/<int:pk>/", api.TrainingRunDetailApi.as_view(), name="api-training-run-detail"),
]
