"""Bearer-token auth on flask-httpauth: static tokens and/or a host's verify callback.

Each token maps to a *principal* (a string); sessions belong to the principal that
started them. A host app plugs in its own check the flask-httpauth way::

    sessions = FlaskSessions(app)

    @sessions.verify_token
    def verify(token: str) -> str | None:
        user = User.from_access_token(token)
        return user.id if user else None
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response, jsonify, request
from flask_httpauth import HTTPTokenAuth

from flask_sessions.config import TokenVerifier


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenRegistry:
    """Static tokens, stored by SHA-256 so lookups are O(1) and compare in constant time."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._by_digest = {_digest(t): (_digest(t), p) for t, p in tokens.items()}

    def __len__(self) -> int:
        return len(self._by_digest)

    def principal(self, token: str) -> str | None:
        digest = _digest(token)
        hit = self._by_digest.get(digest)
        if hit is not None and hmac.compare_digest(hit[0], digest):
            return hit[1]
        return None


def build_auth(
    tokens: TokenRegistry, verifier: Callable[[], TokenVerifier | None]
) -> HTTPTokenAuth:
    """An ``HTTPTokenAuth(scheme="Bearer")`` whose principal is a string.

    ``verifier`` is called per request so a callback registered after ``init_app``
    (``@sessions.verify_token``) is honoured.
    """
    auth = HTTPTokenAuth(scheme="Bearer", realm="flask_sessions")

    def verify(token: str) -> str | None:
        if not token:
            return None
        principal = tokens.principal(token)
        if principal is not None:
            return principal
        callback = verifier()
        if callback is not None:
            found: Any = callback(token)
            if found is not None and found is not False:
                return found if isinstance(found, str) else str(found)
        return None

    def unauthorized(status: int) -> tuple[Response, int]:
        header = request.headers.get("Authorization", "")
        if not header:
            why = "no Authorization header"
        elif not header.lower().startswith("bearer "):
            why = "the Authorization header is not in the Bearer scheme"
        else:
            why = "the token is not valid"
        message = f"{why}; send 'Authorization: Bearer <token>' with a token this server accepts"
        return jsonify(error=message), status

    auth.verify_token(verify)
    auth.error_handler(unauthorized)
    return auth
