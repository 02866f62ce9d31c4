"""``FlaskSessions``: the Flask extension that mounts the blueprint and owns the runtime."""

from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass

from flask import Flask
from flask_httpauth import HTTPTokenAuth
from werkzeug.exceptions import HTTPException

from .auth import TokenRegistry, build_auth
from .blueprint import json_http_errors, make_blueprint
from .clock import Clock, system_clock
from .config import DEFAULTS, Settings, TokenVerifier
from .egress import proxy_for
from .manager import SessionManager
from .runtime import BrowserRuntime

log = logging.getLogger("flask_sessions")

EXTENSION_KEY = "flask_sessions"


@dataclass
class SessionsState:
    """Everything one app's sessions need; lives in ``app.extensions["flask_sessions"]``."""

    settings: Settings
    runtime: BrowserRuntime
    manager: SessionManager
    auth: HTTPTokenAuth


class FlaskSessions:
    """Headless browser sessions for a Flask app.

    Example::

        app = Flask(__name__)
        app.config["SESSIONS_TOKENS"] = "s3cret"
        sessions = FlaskSessions(app)       # or: sessions.init_app(app) later

    ``clock`` replaces the wall clock (tests pass a ``ManualClock``). With
    ``json_errors_everywhere`` every 404/405 of the app is JSON, not only those under the
    blueprint's paths (``create_app`` sets it).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        clock: Clock | None = None,
        json_errors_everywhere: bool = False,
    ) -> None:
        self.clock = clock or system_clock
        self.json_errors_everywhere = json_errors_everywhere
        self._verify_callback: TokenVerifier | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read ``SESSIONS_*`` config, register the blueprint, prepare the runtime."""
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = Settings.from_mapping(app.config)
        egress = proxy_for(settings.egress_policy(), settings.egress_hosts)
        runtime = BrowserRuntime(settings.browser_path, settings.browser_args, egress=egress)
        manager = SessionManager(settings, runtime, self.clock)
        tokens = TokenRegistry(settings.tokens)
        auth = build_auth(tokens, lambda: self._verify_callback or settings.verify_token)
        state = SessionsState(settings, runtime, manager, auth)
        app.extensions[EXTENSION_KEY] = state
        app.register_blueprint(make_blueprint(state), url_prefix=settings.url_prefix or None)
        app.register_error_handler(
            HTTPException, json_http_errors(settings.url_prefix, self.json_errors_everywhere)
        )
        if not len(tokens) and settings.verify_token is None:
            log.warning(
                "flask_sessions: no SESSIONS_TOKENS and no verify_token callback yet; "
                "every request is refused (401) until one is set"
            )
        atexit.register(manager.shutdown)
        if settings.launch_at_init:
            manager.ensure_started(launch_browser=True)

    def verify_token(self, f: TokenVerifier) -> TokenVerifier:
        """Register ``f(token) -> principal | None``, tried after the static tokens.

        Example::

            @sessions.verify_token
            def verify(token):
                return oauth.introspect(token).get("sub")
        """
        self._verify_callback = f
        return f

    @staticmethod
    def state(app: Flask) -> SessionsState:
        """The sessions state of ``app`` (raises KeyError if not initialised)."""
        state = app.extensions[EXTENSION_KEY]
        assert isinstance(state, SessionsState)
        return state

    def shutdown(self, app: Flask) -> None:
        """Close every session and the browser of ``app``; no Chromium is left running."""
        self.state(app).manager.shutdown()
