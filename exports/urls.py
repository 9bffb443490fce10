from django.urls import path

from exports import views

app_name = "exports"

urlpatterns = [
    path("", views.export_list, name="list"),
    path("new/", views.export_create, name="create"),
    path("<int:pk>/", views.export_detail, name="detail"),
    path("<int:pk>/files/<str:name>/", views.export_download, name="download"),
]
