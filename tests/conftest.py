import pytest
from django.test import Client

from tests.factories import make_campaign, make_user


@pytest.fixture
def annotator(db):
    return make_user("ann")


@pytest.fixture
def other_annotator(db):
    return make_user("other")


@pytest.fixture
def staff(db):
    return make_user("boss", staff=True)


@pytest.fixture
def campaign(db):
    return make_campaign("Helpfulness", pairs=3)


@pytest.fixture
def annotator_client(annotator) -> Client:
    client = Client()
    client.force_login(annotator)
    return client


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
