"""Errors that services raise for callers (views, API, commands) to turn into clear messages.

Every message says what is wrong, where, and how to fix it; callers show it as it is.
"""


class StudioError(Exception):
    """Base class: a request the service refused, with a message fit for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(StudioError):
    """The input is malformed or out of range (HTTP 400, CommandError)."""


class ConflictError(StudioError):
    """The input is valid but the current state forbids it (HTTP 409)."""
