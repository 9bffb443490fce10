"""The OpenAPI schema at /api/schema/ is for signed-in users (browser session or API token) only."""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_anonymous_callers_get_401_and_no_schema():
    response = APIClient().get(reverse("api-schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_signed_in_users_get_the_schema_by_session_or_token(annotator_client, annotator):
    by_session = annotator_client.get(reverse("api-schema"), HTTP_ACCEPT="application/json")
    assert by_session.status_code == 200 and "/api/campaigns/{id}/next/" in by_session.json()["paths"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")
    assert client.get(reverse("api-schema"), HTTP_ACCEPT="application/json").status_code == 200
