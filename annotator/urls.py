from django.urls import path

from annotator import views

app_name = "annotator"

urlpatterns = [
    path("", views.campaign_list, name="campaign_list"),
    path("campaigns/<int:pk>/annotate/", views.annotate, name="annotate"),
    path("campaigns/<int:pk>/judge/", views.judge, name="judge"),
    path("campaigns/<int:pk>/rank/", views.rank, name="rank"),
    path("campaigns/<int:pk>/undo/", views.undo, name="undo"),
]
