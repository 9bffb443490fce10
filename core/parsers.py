"""The API's request parsers (settings.REST_FRAMEWORK): DRF's own, refusing with a 400 what they would let
through to a 500 or into memory.

JSON nested more than core.limits.JSON_MAX_DEPTH levels is refused (Python's parser, and anything walking the
data after it, would raise RecursionError). A multipart body (a file upload) may hold up to
settings.MAX_UPLOAD_BYTES, checked from its length before any of it is read. JSON and form bodies stop at
Django's DATA_UPLOAD_MAX_MEMORY_SIZE (DRF reads them through `request.body`; core.api words the refusal).
"""

from typing import IO, Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from core.limits import JSON_MAX_DEPTH, json_too_deep

TOO_DEEP = f"JSON parse error - the body is nested more than {JSON_MAX_DEPTH} levels deep: flatten it."


class JSONParser(parsers.JSONParser):
    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if json_too_deep(data):
            raise ParseError(TOO_DEEP)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: dict | None = None) -> Any:
        meta = parser_context["request"].META
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django's multipart parser refuses it
        if length > settings.MAX_UPLOAD_BYTES:
            raise ParseError(
                f"The upload is {length:,} bytes, over the limit of {settings.MAX_UPLOAD_BYTES:,} bytes "
                "(PREFSTUDIO_MAX_UPLOAD_BYTES): split the file."
            )
        return super().parse(stream, media_type, parser_context)
