"""The exceptions flask_sessions raises; each one knows its HTTP status.

Views never build error responses by hand: they raise one of these and the blueprint's
error handler turns it into ``{"error": "..."}`` with the right status code.
"""

from __future__ import annotations

from typing import Any


class SessionsError(Exception):
    """Base class: an error with a message meant for the API client."""

    status_code = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}

    def headers(self) -> dict[str, str]:
        return {}


class InvalidInput(SessionsError):
    """400: the request body or query string is wrong; ``fields`` names what and why."""

    status_code = 400


class Unauthorized(SessionsError):
    """401: no token, a token in the wrong scheme, or a token nobody knows."""

    status_code = 401


class SessionNotFound(SessionsError):
    """404: no such session for this principal (someone else's looks the same)."""

    status_code = 404


class SessionNotActive(SessionsError):
    """409: the session exists but has ended (closed, timed out or failed)."""

    status_code = 409


class CapacityReached(SessionsError):
    """429: ``SESSIONS_MAX_SESSIONS`` sessions are active; retry after ``retry_after`` s."""

    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class BrowserUnavailable(SessionsError):
    """503: no Chromium could be found or launched, or it is gone."""

    status_code = 503


class LowMemory(SessionsError):
    """503: the host is below ``SESSIONS_MIN_FREE_MEMORY_MB``; no new session for now."""

    status_code = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class PageFailed(SessionsError):
    """502: the browser is up, but the page failed the operation (not a timeout)."""

    status_code = 502


class OperationTimeout(SessionsError):
    """504: the browser runtime, or the page, did not answer in time."""

    status_code = 504
