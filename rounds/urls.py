from django.urls import path

from rounds import views

app_name = "rounds"

urlpatterns = [
    path("", views.series_index, name="series_index"),
    path("series/<int:pk>/", views.series_detail, name="series_detail"),
    path("series/<int:pk>/next/", views.series_next_round, name="series_next_round"),
    path("<int:pk>/", views.round_detail, name="round_detail"),
    path("<int:pk>/advance/", views.round_advance_view, name="round_advance"),
]
