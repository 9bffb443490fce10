from django.urls import path

from generation import views

app_name = "generation"

urlpatterns = [
    path("", views.run_list, name="run_list"),
    path("start/", views.run_start, name="run_start"),
]
