"""The exceptions flask_sessions raises; each one knows its HTTP status.

Views never build error responses by hand: they raise one of these and the blueprint's
error handler turns it into ``{"error": "..."}`` with the right status code.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("flask_sessions")


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


# profiles (issue 18): a profile that is not the caller's, one held by another session, and a
# stored profile the configured keys cannot open (a state over its bound: PayloadTooLarge)
class ProfileNotFound(SessionsError):
    """404: no such profile for this principal (someone else's looks the same)."""

    status_code = 404


class ProfileConflict(SessionsError):
    """409: the profile is held by a persisting session (``holder``), or a profile cap or
    rule stands in the way; the message says which."""

    status_code = 409


class ProfileUnavailable(SessionsError):
    """503: the stored profile does not open with SESSIONS_PROFILE_KEY (a wrong or missing
    key, or bytes changed at rest: nothing of it is used), or the profile store is down."""

    status_code = 503


# --- session files (issue 19)
class FileNotFound(SessionsError):
    """404: no such file in the session's files (the message lists the ones there are)."""

    status_code = 404


class PayloadTooLarge(SessionsError):
    """413: a body past a size bound, which ``limit`` names: an upload past
    SESSIONS_MAX_UPLOAD_MB or the session's SESSIONS_MAX_SESSION_FILES_MB (what was written of
    it is removed), or a storage state over SESSIONS_MAX_STATE_MB or SESSIONS_MAX_PROFILE_MB
    (nothing is saved)."""

    status_code = 413


class InsufficientStorage(SessionsError):
    """507: the host's disk is below SESSIONS_MIN_FREE_DISK_MB: no upload, and no recording
    starts, for now."""

    status_code = 507


MAX_ERROR_FIELDS = 20


def error_response(exc: BaseException) -> Response:
    """Any exception as a JSON response; unexpected ones are logged, never shown."""
    if isinstance(exc, SessionsError):
        body = exc.to_json()
        fields = body.get("fields")
        if isinstance(fields, list) and len(fields) > MAX_ERROR_FIELDS:
            body["fields"] = fields[:MAX_ERROR_FIELDS]
            body["fields_omitted"] = len(fields) - MAX_ERROR_FIELDS
        response = jsonify(body)
        response.status_code = exc.status_code
        response.headers.update(exc.headers())
        return response
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        message = _HTTP_MESSAGES.get(code, exc.description or exc.name)
        response = jsonify(error=message)
        response.status_code = code
        valid_methods = getattr(exc, "valid_methods", None)
        if code == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response
    log.exception("flask_sessions: unexpected error", exc_info=exc)
    response = jsonify(error="internal error in flask_sessions; the server log has the details")
    response.status_code = 500
    return response


_HTTP_MESSAGES = {
    404: "no such endpoint; see the README for the routes (POST /session/start, ...)",
    405: "method not allowed on this endpoint; see the README for each route's method",
    413: "the request body is too large (SESSIONS_MAX_CONTENT_LENGTH); send a smaller one",
}
