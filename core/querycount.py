"""For benchmarks only: each response says in an `X-Queries` header how many SQL statements it sent.

On when PREFSTUDIO_COUNT_QUERIES=1 (bench/annotate.py sets it), first in settings.MIDDLEWARE, so it counts
the middleware's statements too (the session, the user). It counts what goes through Django's cursors, as
`assertNumQueries` does, with one wrapper call per statement: no query log, no DEBUG, so timings stay honest.
PostgreSQL's BEGIN and COMMIT are sent by the driver, not a cursor, and are not counted; SQLite's BEGIN
IMMEDIATE is.
"""

from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponse


class QueryCountMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        count = 0

        def counted(execute, sql, params, many, context):
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counted):
            response = self.get_response(request)
        response["X-Queries"] = str(count)
        return response
