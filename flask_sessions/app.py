"""``create_app``: a standalone Flask app serving only flask_sessions."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Flask

from flask_sessions.clock import Clock
from flask_sessions.config import load
from flask_sessions.extension import FlaskSessions

log = logging.getLogger("flask_sessions")


def create_app(config: dict[str, Any] | None = None, *, clock: Clock | None = None) -> Flask:
    """A Flask app with the sessions blueprint at its root; every error of it is JSON.

    Settings come from ``SESSIONS_*`` environment variables, then ``config``. With no
    token and no verify callback, one random token is generated (never an open server);
    it is in ``app.config["SESSIONS_GENERATED_TOKEN"]``.
    """
    app = Flask("flask_sessions")
    app.config.update(config or {})
    settings = load(app.config)  # checked here too, so the token rule sees typed values
    if not settings.tokens and settings.verify_token is None:
        token = secrets.token_urlsafe(24)
        app.config["SESSIONS_TOKENS"] = {token: "default"}
        app.config["SESSIONS_GENERATED_TOKEN"] = token
        log.warning("flask_sessions: no SESSIONS_TOKENS set; generated a token for this run")
    FlaskSessions(app, clock=clock, json_errors_everywhere=True)
    return app
