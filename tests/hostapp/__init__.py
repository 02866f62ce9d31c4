"""A host app that mounts flask_sessions the way the README's mounting guide shows.

It has its own users, its own blueprint (with a CSRF-protected form), its own error
handlers (404 page, JSON for other HTTP errors, a 500 page) and Flask-WTF's CSRFProtect.
``order`` lets the tests register things in either order; a real app picks one.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

from flask_sessions import FlaskSessions

csrf = CSRFProtect()
sessions = FlaskSessions()

# The host's own users and their API tokens (a database table in a real app).
USERS = {"alice-api-token": "alice", "bob-api-token": "bob"}

pages = Blueprint("pages", __name__)


@pages.get("/")
def home() -> str:
    return "<h1>Host home</h1>"


@pages.post("/form")
def form() -> str:  # protected by CSRFProtect: needs a csrf_token
    return "saved"


@pages.get("/boom")
def boom() -> str:
    raise RuntimeError("host bug")


@sessions.verify_token
def verify(token: str) -> str | None:
    """Our tokens are the host's users' API tokens; the principal is the user id."""
    return USERS.get(token)


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(404)
    def not_found(exc: HTTPException) -> tuple[str, int]:
        return "<h1>Host 404 page</h1>", 404

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(host_error=exc.name, code=exc.code), exc.code or 500

    @app.errorhandler(500)
    def server_error(exc: Exception) -> tuple[str, int]:
        return "<h1>Host 500 page</h1>", 500


def create_app(config: dict[str, Any] | None = None, *, order: str = "host-first") -> Flask:
    """``order``: ``host-first`` (handlers and CSRF, then sessions) or ``sessions-first``."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="host-secret",
        SESSIONS_URL_PREFIX="/browser",
        SESSIONS_WARM_POOL=0,
    )
    app.config.update(config or {})
    app.register_blueprint(pages, url_prefix="/pages")
    if order == "host-first":
        _error_handlers(app)
        csrf.init_app(app)
        sessions.init_app(app)
    else:
        sessions.init_app(app)
        csrf.init_app(app)
        _error_handlers(app)
    return app
