"""A database out of reach answers 503 with Retry-After (JSON for the API, a page for browsers), not a 500.

The database really is out of reach here: the connection's settings point at a closed port (PostgreSQL) or
at a file that cannot be opened (SQLite), whichever engine the tests run on; the errors are the drivers' own.
"""

import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import DatabaseError, connection
from django.db.utils import ConnectionHandler
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from core.db_unavailable import MESSAGE, RETRY_AFTER_SECONDS, database_unavailable
from tests.factories import make_campaign, make_user

# transactional_db: no test transaction is open on the connection, so it can be closed and pointed elsewhere.
pytestmark = pytest.mark.django_db(transaction=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def database_out_of_reach() -> Iterator[None]:
    """Point the default connection at a database that cannot be reached, then back."""
    settings = connection.settings_dict
    saved = dict(settings)
    connection.close()
    if connection.vendor == "sqlite":
        settings["NAME"] = "/nonexistent-folder/prefstudio.sqlite3"
    else:
        settings.update(HOST="127.0.0.1", PORT=str(closed_port()))
    try:
        yield
    finally:
        connection.close()
        settings.clear()
        settings.update(saved)


def probe_connection(**settings):
    """A real Django connection of its own (not the default one), with these settings."""
    return ConnectionHandler({"default": settings})["default"]


def raised_by(function) -> DatabaseError:
    with pytest.raises(DatabaseError) as caught:
        function()
    return caught.value


def test_api_answers_503_in_json_with_retry_after_while_the_database_is_down():
    client = Client(headers={"authorization": "Token " + "0" * 40})
    with database_out_of_reach():
        listing = client.get(reverse("api-campaign-list"))
        submit = client.post(
            reverse("api-judgment-create", args=[1]), {"choice": "left"}, content_type="application/json"
        )
    for response in (listing, submit):
        assert response.status_code == 503
        assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert response.json() == {"detail": MESSAGE}
    assert "Send it again in 2 s" in MESSAGE


def test_pages_answer_a_503_page_with_retry_after_while_the_database_is_down():
    client = Client()
    client.cookies["sessionid"] = "a" * 32  # a visitor with a session: reading it needs the database
    with database_out_of_reach():
        page = client.get(reverse("annotator:annotate", args=[1]))
        judge = client.post(reverse("annotator:judge", args=[1]), {"choice": "left"}, headers={"hx-request": "true"})
    for response in (page, judge):
        assert response.status_code == 503
        assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert response["Content-Type"].startswith("text/html")
        content = response.content.decode()
        assert "<h1>Back in a moment</h1>" in content
        assert "Nothing you recorded before is lost." in content
        assert "Try again in 2 seconds" in content


def test_the_app_serves_again_once_the_database_is_back_without_a_restart():
    user = make_user("ann")
    campaign = make_campaign("Helpfulness", pairs=1)
    token = Token.objects.create(user=user)
    api = Client(headers={"authorization": f"Token {token.key}"})
    browser = Client()
    browser.force_login(user)
    with database_out_of_reach():
        assert api.get(reverse("api-campaign-list")).status_code == 503
        assert browser.get(reverse("annotator:campaign_list")).status_code == 503
    listing = api.get(reverse("api-campaign-list"))
    assert listing.status_code == 200
    assert [row["name"] for row in listing.json()["results"]] == ["Helpfulness"]
    page = browser.get(reverse("annotator:annotate", args=[campaign.pk]))
    assert page.status_code == 200
    assert b"Helpfulness" in page.content


def test_errors_that_mean_the_database_is_out_of_reach(tmp_path):
    sqlite_missing = probe_connection(ENGINE="django.db.backends.sqlite3", NAME="/nonexistent-folder/x.sqlite3")
    assert database_unavailable(raised_by(sqlite_missing.ensure_connection))  # SQLITE_CANTOPEN

    postgres_refused = probe_connection(
        ENGINE="django.db.backends.postgresql", NAME="x", USER="x", PASSWORD="x", HOST="127.0.0.1", PORT=closed_port()
    )
    assert database_unavailable(raised_by(postgres_refused.ensure_connection))  # connection refused

    locked_file = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(locked_file)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # another process writing: a backup, a long import
    waiting = probe_connection(ENGINE="django.db.backends.sqlite3", NAME=str(locked_file), OPTIONS={"timeout": 0.05})
    try:
        error = raised_by(lambda: waiting.cursor().execute("INSERT INTO t VALUES (1)"))
        assert "database is locked" in str(error)
        assert database_unavailable(error)  # SQLITE_BUSY: it passes once the other writer is done
    finally:
        waiting.close()
        holder.close()


def test_a_connection_the_server_ended_is_out_of_reach():
    probe = probe_connection(**connection.settings_dict)
    try:
        probe.ensure_connection()
        if connection.vendor == "postgresql":
            # What a fast shutdown or an administrator does to every session: "terminating connection due
            # to administrator command" (SQLSTATE 57P01) on the session's next query.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [probe.connection.info.backend_pid])
            error = raised_by(lambda: probe.cursor().execute("SELECT 1"))
        else:
            # SQLite has no server: the nearest thing is another writer holding the lock past the timeout.
            probe.connection.execute("PRAGMA busy_timeout = 50")
            holder = sqlite3.connect(connection.settings_dict["NAME"])
            holder.execute("BEGIN IMMEDIATE")
            try:
                error = raised_by(lambda: probe.cursor().execute("DELETE FROM django_session"))
            finally:
                holder.close()
        assert database_unavailable(error)
    finally:
        probe.close()


def test_an_error_in_the_query_is_not_the_database_being_out_of_reach():
    error = raised_by(lambda: connection.cursor().execute("SELECT * FROM no_such_table"))
    assert not database_unavailable(error)  # a bug: it stays a 500
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 1")
            error = raised_by(lambda: cursor.execute("SELECT pg_sleep(1)"))  # QueryCanceled: an OperationalError
            cursor.execute("SET statement_timeout = 0")
        assert not database_unavailable(error)
