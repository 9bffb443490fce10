"""Errors that services raise for callers (views, API, commands) to turn into clear messages.

Every message says what is wrong, where, and how to fix it; callers show it as it is, in their own terms
(`worded`: an option is `--beta` on the command line, "Beta" on a form, `beta` in the API).
"""

import enum
from collections.abc import Iterator
from contextlib import contextmanager


class Surface(enum.Enum):
    API = "api"  # the plain name: beta
    COMMAND_LINE = "command line"  # --beta
    FORM = "form"  # the field's label: Beta


class StudioError(Exception):
    """Base class: a request the service refused, with a message fit for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def worded(self, surface: Surface) -> str:
        """The message as `surface` says it (only option errors name things differently per surface)."""
        return self.message


class InputError(StudioError):
    """The input is malformed or out of range (HTTP 400, CommandError)."""


class ConflictError(StudioError):
    """The input is valid but the current state forbids it (HTTP 409)."""


@contextmanager
def command_errors() -> Iterator[None]:
    """In a management command: a refusal ends the command with its message, in command-line terms."""
    from django.core.management.base import CommandError

    try:
        yield
    except StudioError as error:
        raise CommandError(error.worded(Surface.COMMAND_LINE)) from None
