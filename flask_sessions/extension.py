"""``FlaskSessions``: the Flask extension that mounts the blueprint and owns the runtime."""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, request
from flask_httpauth import HTTPTokenAuth
from werkzeug.exceptions import NotFound

from flask_sessions import logs
from flask_sessions.clock import Clock, system_clock
from flask_sessions.cluster.remote import RemoteBackend
from flask_sessions.config import Settings, TokenVerifier, load
from flask_sessions.errors import error_response
from flask_sessions.front.auth import TokenRegistry, build_auth
from flask_sessions.front.backend import SessionBackend
from flask_sessions.front.blueprint import make_blueprint, our_roots
from flask_sessions.front.metrics import Metrics
from flask_sessions.host.cdp import CdpProxy
from flask_sessions.host.egress import proxy_for
from flask_sessions.host.local import LocalBackend
from flask_sessions.host.manager import SessionManager
from flask_sessions.host.runtime import BrowserRuntime

log = logging.getLogger("flask_sessions")

EXTENSION_KEY = "flask_sessions"


@dataclass
class SessionsState:
    """Everything one app's sessions need; lives in ``app.extensions["flask_sessions"]``."""

    settings: Settings
    backend: SessionBackend  # where sessions live: the local host, or hosts over HTTP
    auth: HTTPTokenAuth
    tokens: TokenRegistry
    metrics: Metrics
    local: SessionManager | None = None  # the in-process host (embedded mode only)
    verify_callback: Any = None  # the extension's @verify_token, read per request
    blueprint: Blueprint | None = None
    warned_no_auth: bool = field(default=False)
    warned_multiprocess: bool = field(default=False)
    cdp: CdpProxy | None = None  # the per-session CDP WebSocket (SESSIONS_CDP)

    @property
    def manager(self) -> SessionManager:
        """The in-process host's manager (embedded mode)."""
        if self.local is None:
            raise RuntimeError(
                "this app is a front: its sessions live on the hosts of SESSIONS_HOSTS or "
                "SESSIONS_REGISTRY_URL, not in this process"
            )
        return self.local

    @property
    def runtime(self) -> BrowserRuntime:
        return self.manager.runtime

    def has_verifier(self) -> bool:
        return bool(len(self.tokens) or self.verify_callback or self.settings.verify_token)


class FlaskSessions:
    """Headless browser sessions for a Flask app.

    Example::

        sessions = FlaskSessions()

        def create_app():
            app = Flask(__name__)
            app.config["SESSIONS_URL_PREFIX"] = "/browser"
            sessions.init_app(app)
            return app

    Settings come from ``app.config`` and ``SESSIONS_*`` environment variables (see
    ``config.py``); a wrong one raises :class:`~flask_sessions.config.ConfigError` here.
    ``clock`` replaces the wall clock (tests pass a ``ManualClock``). With
    ``json_errors_everywhere`` (``create_app`` sets it) every error of the app is JSON; by
    default only the extension's own paths are, and the host's handlers keep the rest.
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
        self._apps: list[weakref.ref[Flask]] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the settings, register the blueprint, prepare (not start) the runtime.

        Nothing is launched here unless ``SESSIONS_LAUNCH_AT_INIT`` is set: the runtime
        thread and Chromium start with the first request that needs them.
        """
        settings = load(app.config)
        logs.configure(settings.log_level, settings.log_format)
        logs.access_log.disabled = not settings.access_log
        metrics = Metrics()
        backend: SessionBackend
        manager: SessionManager | None = None
        if settings.hosts or settings.registry_url:  # a front: sessions live on hosts
            backend = RemoteBackend(settings, self.clock)
        else:  # embedded: the host is in this process
            egress = proxy_for(settings.egress_policy(), settings.egress_hosts)
            runtime = BrowserRuntime(settings.browser_path, settings.browser_args, egress=egress)
            manager = SessionManager(settings, runtime, self.clock, events=metrics.session_event)
            metrics.watch(manager)
            backend = LocalBackend(manager)
        tokens = TokenRegistry(settings.tokens)
        state_ref: list[SessionsState] = []
        auth = build_auth(tokens, lambda: state_ref[0].verify_callback or settings.verify_token)
        state = SessionsState(settings, backend, auth, tokens, metrics, local=manager)
        state.verify_callback = self._verify_callback
        state_ref.append(state)
        if settings.cdp and manager is not None:  # the REST routes' verifier checks the upgrade
            verify = auth.verify_token_callback
            state.cdp = CdpProxy(app, settings, manager, lambda token: verify(token))
        app.extensions[EXTENSION_KEY] = state
        blueprint = make_blueprint(state)
        state.blueprint = blueprint
        app.register_blueprint(blueprint, url_prefix=settings.url_prefix or None)
        _scope_errors(app, state, self.json_errors_everywhere)
        if settings.csrf_exempt:
            _exempt_from_csrf(app, blueprint)
        self._apps.append(weakref.ref(app))
        # An app dropped without shutdown() (a test that forgot) must not leave Chromium.
        weakref.finalize(app, _shutdown_in_background, backend)
        atexit.register(backend.shutdown)
        if settings.launch_at_init and manager is not None:
            manager.ensure_started(launch_browser=True)

    def verify_token(self, f: TokenVerifier) -> TokenVerifier:
        """Register ``f(token) -> principal | None``, tried after the static tokens.

        May be called before or after ``init_app``. Example::

            @sessions.verify_token
            def verify(token):
                user = User.query.filter_by(api_token=token).first()
                return str(user.id) if user else None
        """
        self._verify_callback = f
        for ref in self._apps:
            app = ref()
            if app is not None:
                self.state(app).verify_callback = f
        return f

    @staticmethod
    def state(app: Flask) -> SessionsState:
        """The sessions state of ``app`` (raises KeyError if not initialised)."""
        state = app.extensions[EXTENSION_KEY]
        assert isinstance(state, SessionsState)
        return state

    def shutdown(self, app: Flask | None = None) -> None:
        """Close every session and the browser; no Chromium is left running.

        Call it in test fixtures and at the end of scripts (``atexit`` does it at exit
        otherwise). Without ``app``, every app this extension was initialised on. Example::

            @pytest.fixture
            def app():
                app = create_app()
                yield app
                sessions.shutdown(app)
        """
        apps = [app] if app is not None else [a for a in (r() for r in self._apps) if a]
        for one in apps:
            self.state(one).backend.shutdown()


def _shutdown_in_background(backend: SessionBackend) -> None:
    # A finalizer can run on any thread, the runtime's own included: never wait there.
    threading.Thread(target=backend.shutdown, name="flask-sessions-finalize", daemon=True).start()


def _scope_errors(app: Flask, state: SessionsState, everywhere: bool) -> None:
    """JSON errors on our paths only, winning there over the host's handlers.

    Errors raised in our views meet the blueprint's own handlers first (registered per
    status code, so a host's ``@app.errorhandler(404)`` does not take them). Routing errors
    (no such route, wrong method) happen before any blueprint is known, so a hook that
    runs before the host's handlers answers those for paths under our prefix. Nothing is
    registered app-wide unless ``everywhere`` (the standalone app, which is all ours).
    """
    roots = our_roots(state.settings)

    def ours(path: str) -> bool:
        path = path.rstrip("/") or "/"
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def routing_errors() -> Response | None:
        exc = request.routing_exception
        if exc is None or not (everywhere or ours(request.path)):
            return None
        if getattr(exc, "code", None) in (301, 302, 307, 308):
            if not ours(request.path):
                return None  # the host's redirect (e.g. a missing trailing slash)
            # Ours have no trailing slashes, so a redirect only merges slashes: an empty id
            # (/session//screenshot) is no route of ours, and says so in JSON.
            exc = NotFound()
        response = error_response(exc)
        state.metrics.observe_request(request.method, "<unmatched>", response.status_code, 0.0)
        logs.access(request.method, request.path, "<unmatched>", response.status_code, 0.0)
        return response

    app.before_request_funcs.setdefault(None, []).insert(0, routing_errors)
    if everywhere:
        app.register_error_handler(Exception, error_response)


def _exempt_from_csrf(app: Flask, blueprint: Blueprint) -> None:
    """Exempt our routes from Flask-WTF's ``CSRFProtect``, whichever was set up first.

    They authenticate with a bearer token, never a cookie, so CSRF cannot reach them.
    """
    done = False

    def exempt() -> None:
        nonlocal done
        csrf = app.extensions.get("csrf")
        if csrf is not None and hasattr(csrf, "exempt"):
            csrf.exempt(blueprint)
            done = True

    exempt()  # CSRFProtect(app) came before us

    def exempt_before_csrf_runs() -> None:  # CSRFProtect(app) came after us
        if not done:
            exempt()

    app.before_request_funcs.setdefault(None, []).insert(0, exempt_before_csrf_runs)
