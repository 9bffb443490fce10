from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/", include("annotator.api_urls")),
    path("api/", include("exports.api_urls")),
    path("api/", include("training.api_urls")),
    path("api/", include("quality.api_urls")),
    path("api/", include("rounds.api_urls")),
    path("api/", include("leaderboard.api_urls")),
    path("generation/", include("generation.urls")),
    path("exports/", include("exports.urls")),
    path("training/", include("training.urls")),
    path("quality/", include("quality.urls")),
    path("rounds/", include("rounds.urls")),
    path("leaderboard/", include("leaderboard.urls")),
    path("", include("annotator.urls")),
]
