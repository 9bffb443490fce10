from django.urls import path

from quality import views

app_name = "quality"

urlpatterns = [
    path("", views.campaign_list, name="campaign_list"),
    path("campaigns/<int:pk>/", views.campaign_quality, name="campaign_quality"),
]
