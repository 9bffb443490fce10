"""Logins are rate-limited (django-axes): failures for one username from one address lock that pair out, the
right password included, with a page that says so; staff see the lock-out in the admin and lift it there."""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse

from tests.factories import make_user

pytestmark = pytest.mark.django_db

LOCKED = "Logins as kim from this address are locked after 5 failed attempts for 15 minutes"


def log_in(client: Client, password: str, *, url: str = "/accounts/login/", **extra):
    return client.post(url, {"username": "kim", "password": password}, **extra)


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def test_five_failures_lock_the_login_out_even_with_the_right_password():
    make_user("kim")
    client = Client()
    for _ in range(4):
        response = log_in(client, "wrong")
        assert response.status_code == 200
        assert "Your username and password didn't match." in response.content.decode()
    fifth = log_in(client, "wrong")
    assert fifth.status_code == 429 and LOCKED in " ".join(fifth.content.decode().split())
    right = log_in(client, "pw-for-tests")
    assert right.status_code == 429 and LOCKED in " ".join(right.content.decode().split())
    assert not signed_in(client)


def test_the_lock_out_is_per_username_and_address():
    make_user("kim")
    for _ in range(5):
        log_in(Client(), "wrong")
    elsewhere = Client()
    assert log_in(elsewhere, "pw-for-tests", REMOTE_ADDR="192.0.2.7").status_code == 302
    assert signed_in(elsewhere)


def test_a_successful_login_forgets_the_failures_before_it():
    make_user("kim")
    client = Client()
    for _ in range(4):
        log_in(client, "wrong")
    assert log_in(client, "pw-for-tests").status_code == 302
    client.post(reverse("logout"))
    for _ in range(4):
        assert log_in(client, "wrong").status_code == 200
    assert log_in(client, "pw-for-tests").status_code == 302


def test_admin_logins_count_too():
    make_user("kim", staff=True)
    client = Client()
    for _ in range(5):
        response = log_in(client, "wrong", url="/admin/login/")
    assert response.status_code == 429
    assert log_in(client, "pw-for-tests").status_code == 429


def test_staff_see_the_lock_out_in_the_admin_and_lift_it(staff_client):
    make_user("kim")
    for _ in range(5):
        log_in(Client(), "wrong")
    listing = staff_client.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "kim" in page and "127.0.0.1" in page
    attempt = AccessAttempt.objects.get(username="kim")
    assert attempt.failures_since_start == 5
    delete = staff_client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 302
    client = Client()
    assert log_in(client, "pw-for-tests").status_code == 302 and signed_in(client)
