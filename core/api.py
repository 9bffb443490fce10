"""One mapping from the project's errors to API responses: DRF's EXCEPTION_HANDLER (settings.REST_FRAMEWORK).

API views let services raise; a refusal becomes {"detail": message} with its status, like DRF's own errors.
So does a request over Django's limits on what it reads (DATA_UPLOAD_MAX_MEMORY_SIZE and the number of
fields and files), which Django alone would answer with a bare 400 page.
A database out of reach becomes a 503 with `Retry-After` (see core.db_unavailable).
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.db_unavailable import MESSAGE, RETRY_AFTER_SECONDS, database_unavailable, database_unavailable_log
from core.errors import ConflictError, StudioError


def exception_handler(error: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(error, StudioError):
        code = status.HTTP_409_CONFLICT if isinstance(error, ConflictError) else status.HTTP_400_BAD_REQUEST
        return Response({"detail": error.message}, status=code)
    if isinstance(error, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The request body is over {limit:,} bytes, the most this server takes (DATA_UPLOAD_MAX_MEMORY_SIZE)."
        return Response({"detail": message}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(error, TooManyFieldsSent | TooManyFilesSent):
        return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
    if database_unavailable(error):
        database_unavailable_log(error, context["request"])
        return Response(
            {"detail": MESSAGE},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return drf_exception_handler(error, context)
