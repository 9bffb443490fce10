"""The database cannot be reached for now: answer 503 with `Retry-After`, not Django's "Server Error (500)".

While PostgreSQL is stopped or restarting, every request fails the same way and will succeed again by
itself a moment later; so does one that waited out SQLite's lock timeout behind another writer. Clients
should back off and send the request again (a judgment sent twice is recorded once), and a 503 with
`Retry-After` says exactly that. An error in the query itself (a missing table, a bad column) is a bug and
stays a 500.

Pages get the friendly `503.html` from `DatabaseUnavailableMiddleware`; API views get {"detail": ...} from
the API's exception handler (`core.api`), which DRF consults before any middleware sees the error.
"""

import logging
import sqlite3

import psycopg
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
MESSAGE = (
    "The database cannot be reached right now; your request is fine. "
    f"Send it again in {RETRY_AFTER_SECONDS} s: a judgment sent twice is recorded once."
)

# SQLite result codes (the primary code, below the extended bits) that mean "not now": another connection
# holds the lock past the timeout (BUSY, LOCKED) or the file cannot be opened (CANTOPEN). "no such table"
# is an OperationalError too, with the code SQLITE_ERROR: not one of these.
_SQLITE_NOT_NOW = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN}
# PostgreSQL SQLSTATEs besides class 08 (connection exception): the server is shutting down or was
# killed (57P01, 57P02), is starting up (57P03), has no connection slot left (53300).
_POSTGRES_NOT_NOW = {"57P01", "57P02", "57P03", "53300"}


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached now (rather than that the query is wrong)."""
    if not isinstance(error, OperationalError | InterfaceError):
        return False
    cause = error.__cause__  # Django wraps the driver's error and keeps it as the cause
    if isinstance(cause, sqlite3.Error):
        return getattr(cause, "sqlite_errorcode", 0) & 0xFF in _SQLITE_NOT_NOW
    if isinstance(cause, psycopg.InterfaceError) or (cause is None and isinstance(error, InterfaceError)):
        return True  # the connection is closed or broken
    if isinstance(cause, psycopg.Error):
        # No SQLSTATE: the client itself failed to connect or lost the connection (refused, reset, closed).
        return cause.sqlstate is None or cause.sqlstate.startswith("08") or cause.sqlstate in _POSTGRES_NOT_NOW
    return False


def database_unavailable_log(error: BaseException, request: HttpRequest) -> None:
    logger.warning("Database unavailable, answered 503 to %s %s: %s", request.method, request.path, error)


class DatabaseUnavailableMiddleware:
    """Pages: a view that could not reach the database answers the 503 page instead of a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not database_unavailable(exception):
            return None
        database_unavailable_log(exception, request)
        # Rendered without the request, so no context processor runs: they read the session and the user,
        # which live in the database that just failed.
        page = render_to_string("503.html", {"retry_after": RETRY_AFTER_SECONDS})
        return HttpResponse(page, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
