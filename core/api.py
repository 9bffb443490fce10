"""One mapping from the project's errors to API responses: DRF's EXCEPTION_HANDLER (settings.REST_FRAMEWORK).

API views let services raise; a refusal becomes {"detail": message} with its status, like DRF's own errors.
A database out of reach becomes a 503 with `Retry-After` (see core.db_unavailable).
"""

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.db_unavailable import MESSAGE, RETRY_AFTER_SECONDS, database_unavailable, database_unavailable_log
from core.errors import ConflictError, StudioError


def exception_handler(error: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(error, StudioError):
        code = status.HTTP_409_CONFLICT if isinstance(error, ConflictError) else status.HTTP_400_BAD_REQUEST
        return Response({"detail": error.message}, status=code)
    if database_unavailable(error):
        database_unavailable_log(error, context["request"])
        return Response(
            {"detail": MESSAGE},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return drf_exception_handler(error, context)
