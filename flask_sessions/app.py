"""``create_app``: a standalone Flask app serving only flask_sessions."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Flask, Response, jsonify

from .clock import Clock
from .config import from_environ, parse_tokens
from .extension import FlaskSessions

log = logging.getLogger("flask_sessions")


def create_app(config: dict[str, Any] | None = None, *, clock: Clock | None = None) -> Flask:
    """A Flask app with the sessions blueprint at its root.

    Config comes from ``SESSIONS_*`` environment variables, then ``config``. With no
    token and no verify callback, one random token is generated (never an open server);
    it is in ``app.config["SESSIONS_GENERATED_TOKEN"]``.
    """
    app = Flask("flask_sessions")
    app.config.update(from_environ())
    app.config.update(config or {})
    if not parse_tokens(app.config.get("SESSIONS_TOKENS")) and not app.config.get(
        "SESSIONS_VERIFY_TOKEN"
    ):
        token = secrets.token_urlsafe(24)
        app.config["SESSIONS_TOKENS"] = {token: "default"}
        app.config["SESSIONS_GENERATED_TOKEN"] = token
        log.warning("flask_sessions: no SESSIONS_TOKENS set; generated a token for this run")
    FlaskSessions(app, clock=clock, json_errors_everywhere=True)

    @app.get("/healthz")
    def healthz() -> Response:
        state = FlaskSessions.state(app)
        return jsonify(
            status="ok",
            browser_running=state.runtime.browser_connected,
            active_sessions=state.manager.active_count,
        )

    return app
