"""What every input is checked against before anything is written: text the database can store, and JSON
shallow enough to walk.

PostgreSQL refuses NUL characters in text and JSON, and no database takes a lone surrogate (half of a UTF-16
pair, which is not UTF-8): either would end a write in an error, after other rows went in. JSON nested
deeper than JSON_MAX_DEPTH is refused too: Python's parser, and any code walking the data after it, would
end in a RecursionError. How much one request or file may bring (bytes, rows, characters of a prompt or a
response) is set in settings, from PREFSTUDIO_* variables (.env.example).
"""

from typing import Any

JSON_MAX_DEPTH = 64  # arrays and objects inside one another; a prompt's messages need 3


def text_check(value: str, *, what: str, max_chars: int | None = None, limit_name: str = "") -> None:
    """Raise ValueError("<what> ...") when the database could not store `value` as it is, or it is longer
    than `max_chars` (set by `limit_name`, e.g. PREFSTUDIO_MAX_RESPONSE_CHARS, when a setting sets it)."""
    nul = value.find("\x00")
    if nul >= 0:
        raise ValueError(f"{what} holds a NUL character (at character {nul + 1}), which cannot be stored: remove it")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"{what} holds a lone surrogate (U+{ord(value[error.start]):04X} at character {error.start + 1}), "
                "half of a character that is not text: fix the encoding that produced it"
            ) from None
    if max_chars is not None:
        length_check(len(value), what=what, max_chars=max_chars, limit_name=limit_name)


def length_check(length: int, *, what: str, max_chars: int, limit_name: str = "") -> None:
    """Raise ValueError("<what> is N characters long, over the limit of M (LIMIT_NAME)") beyond `max_chars`."""
    if length > max_chars:
        set_by = f" ({limit_name})" if limit_name else ""
        raise ValueError(f"{what} is {length:,} characters long, over the limit of {max_chars:,}{set_by}")


def json_too_deep(value: Any, *, limit: int = JSON_MAX_DEPTH) -> bool:
    """Whether parsed JSON nests arrays and objects more than `limit` levels deep. Iterative, so it is safe
    on any depth."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
