"""The HTTP surface: thin views that parse, validate, call the manager and serialize.

No Playwright here. Every error leaves as JSON ``{"error": "..."}``; see ``errors.py``.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel
from werkzeug.exceptions import MethodNotAllowed, default_exceptions

from flask_sessions import logs
from flask_sessions.config import Settings
from flask_sessions.errors import BrowserUnavailable, InvalidInput, SessionNotFound, error_response
from flask_sessions.front import openapi
from flask_sessions.front.files import register_files
from flask_sessions.front.metrics import CONTENT_TYPE
from flask_sessions.front.notte import register_notte
from flask_sessions.front.profiles import register_profiles
from flask_sessions.front.recording import register_recording
from flask_sessions.front.ui import register_ui
from flask_sessions.front.viewer import register_viewer
from flask_sessions.schemas import (
    SESSION_ID_PATTERN,
    CloseRequest,
    HealthResponse,
    ListQuery,
    ObserveRequest,
    PageSize,
    ReadyResponse,
    ScrapeRequest,
    ScreenshotQuery,
    ScreenshotResponse,
    SessionList,
    SessionResponse,
    StartRequest,
    merge_sources,
    parse,
    parse_step,
)

if TYPE_CHECKING:
    from flask_sessions.extension import SessionsState

log = logging.getLogger("flask_sessions")

View = TypeVar("View", bound=Callable[..., Any])


def make_blueprint(state: SessionsState) -> Blueprint:
    """The blueprint for one app; its views close over that app's state."""
    bp = Blueprint("flask_sessions", __name__)
    settings = state.settings
    auth = state.auth
    login_required = cast(Callable[[View], View], auth.login_required)
    backend = state.backend
    context = {
        "max_timeout_minutes": settings.max_timeout_minutes,
        "max_wait_ms": settings.max_wait_ms,
    }

    def fields() -> dict[str, Any]:
        return _fields(settings.max_json_depth)

    def principal() -> str:
        user = auth.current_user()
        assert isinstance(user, str)
        return user

    @bp.before_request
    def begin() -> None:
        g.flask_sessions_t0 = time.perf_counter()
        # Our own body limit, whatever the host's MAX_CONTENT_LENGTH (Flask >= 3.1).
        request.max_content_length = settings.max_content_length
        multiprocess = request.environ.get("wsgi.multiprocess") and state.local is not None
        if multiprocess and request.endpoint not in _ALWAYS_UP:
            _refuse_multiprocess(state)
        if not state.warned_no_auth and not state.has_verifier():
            state.warned_no_auth = True
            log.warning(
                "flask_sessions: no SESSIONS_TOKENS and no verify_token callback are set, so "
                "every request is refused (401); set one of them"
            )

    @bp.after_request
    def finish(response: Response) -> Response:
        started = g.pop("flask_sessions_t0", None)
        seconds = time.perf_counter() - started if started is not None else 0.0
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        route = rule.removeprefix(settings.url_prefix) or "/"
        state.metrics.observe_request(request.method, route, response.status_code, seconds)
        user = auth.current_user() if hasattr(g, "flask_httpauth_user") else None
        logs.access(
            request.method,
            request.path,
            route,
            response.status_code,
            seconds * 1000,
            session_id=g.pop("flask_sessions_session_id", None)
            or (request.view_args or {}).get("session_id"),
            principal=user if isinstance(user, str) else None,
        )
        return response

    def _json(model: BaseModel) -> Response:
        """The model as JSON, with each session record's ``cdp_url`` for this request."""
        for record in (model, getattr(model, "session", None)):
            if isinstance(record, SessionResponse) and state.cdp is not None:
                record.cdp_url = state.cdp.url_for(record.session_id)
        return _as_json(model)

    @bp.post("/session/start")
    @login_required
    def start() -> Response:
        req = parse(StartRequest, fields(), context)
        return _json(backend.start(principal(), req))

    @bp.post("/env/observe")
    @login_required
    def observe() -> Response:
        req = parse(ObserveRequest, fields(), context)
        return _json(backend.observe(principal(), req))

    @bp.post("/env/step")
    @login_required
    def step() -> Response:
        req = parse_step(fields(), context)
        return _json(backend.step(principal(), req))

    @bp.post("/env/scrape")
    @login_required
    def scrape() -> Response:
        req = parse(ScrapeRequest, fields(), context)
        return _json(backend.scrape(principal(), req))

    @bp.get("/session/<session_id>/screenshot")
    @login_required
    def session_screenshot(session_id: str) -> Response:
        _known_id(session_id)
        query = parse(ScreenshotQuery, _query())
        shot = backend.screenshot(principal(), session_id, query)
        # a full page past SESSIONS_MAX_SCREENSHOT_PIXELS is clipped to its top: say so
        if request.accept_mimetypes.best_match([shot.media_type, "application/json"]) == (
            "application/json"
        ):
            return _as_json(
                ScreenshotResponse(
                    session_id=session_id,
                    screenshot=base64.b64encode(shot.data).decode("ascii"),
                    format=shot.format,
                    clipped=shot.clipped,
                    page_size=PageSize(width=shot.page_width, height=shot.page_height),
                )
            )
        response = Response(shot.data, mimetype=shot.media_type)
        if shot.clipped:
            response.headers["X-Screenshot-Clipped"] = (
                f"{shot.width}x{shot.height} of {shot.page_width}x{shot.page_height}"
            )
        return response

    @bp.get("/session/<session_id>")
    @login_required
    def get_session(session_id: str) -> Response:
        _not_an_action(session_id)
        _known_id(session_id)
        return _json(backend.get(principal(), session_id))

    @bp.post("/session/close")
    @login_required
    def close() -> Response:
        req = parse(CloseRequest, fields())
        return _json(backend.close(principal(), req.session_id))

    @bp.delete("/session/<session_id>")
    @login_required
    def delete_session(session_id: str) -> Response:
        _not_an_action(session_id)
        _known_id(session_id)
        return _json(backend.close(principal(), session_id))

    @bp.get("/sessions")
    @login_required
    def list_sessions() -> Response:
        query = parse(ListQuery, _query())
        sessions = backend.list_sessions(principal(), query.status)
        if state.cdp is not None:
            for record in sessions:
                record.cdp_url = state.cdp.url_for(record.session_id)
        return _as_json(SessionList(sessions=sessions))

    @bp.post("/session/<session_id>/cdp-ticket")
    @login_required
    def cdp_ticket(session_id: str) -> Response:
        """A one-use ``?ticket=`` for clients that cannot send headers on the upgrade."""
        _known_id(session_id)
        return _json(backend.cdp_ticket(principal(), session_id))

    register_profiles(bp, state, login_required)  # cookies, state, profiles (issue 18)
    register_files(bp, state, login_required)  # session files (issue 19)
    _probes(bp, state, login_required)
    register_viewer(bp, state, login_required)  # live view (issue 20)
    register_recording(bp, state, login_required)  # recordings (issue 20)
    openapi.register(bp, state)
    if settings.ui:
        register_ui(bp)
    register_notte(bp, state, login_required)  # Notte's routes (issue 21)

    # Per status code as well as for Exception: Flask looks up a code's handlers on the
    # app before a blueprint's class handlers, so a host's @app.errorhandler(404) would
    # otherwise answer our own 404s.
    bp.register_error_handler(Exception, error_response)
    for code in default_exceptions:
        bp.register_error_handler(code, error_response)
    return bp


def _probes(
    bp: Blueprint, state: SessionsState, login_required: Callable[[Callable[[], Response]], Any]
) -> None:
    """Liveness, readiness and metrics, at configurable paths, open or behind the token."""
    settings = state.settings

    def guard(view: Callable[[], Response]) -> Callable[[], Response]:
        if not settings.probes_require_auth:
            return view
        guarded: Callable[[], Response] = login_required(view)
        return guarded

    if settings.health_path:

        @bp.get(settings.health_path, endpoint="healthz")
        @guard
        def healthz() -> Response:
            """Liveness: the process answers. 200 while it runs, whatever Chromium does."""
            health = HealthResponse(status="ok", **state.backend.health())
            return jsonify(health.model_dump(mode="json", exclude_none=True))

    if settings.ready_path:

        @bp.get(settings.ready_path, endpoint="readyz")
        @guard
        def readyz() -> Response:
            """Readiness: 200 once Chromium runs and opened a context within 2 s, else 503."""
            ready, reason = state.backend.readiness()
            response = _as_json(
                ReadyResponse(status="ready" if ready else "unavailable", reason=reason)
            )
            response.status_code = 200 if ready else 503
            if not ready:
                response.headers["Retry-After"] = "1"
            return response

    if settings.metrics_path:

        @bp.get(settings.metrics_path, endpoint="metrics")
        @guard
        def metrics() -> Response:
            """Prometheus text format."""
            return Response(state.metrics.render(), content_type=CONTENT_TYPE)


def our_roots(settings: Settings) -> list[str]:
    """The paths that are ours: the prefix if there is one, else each route's first part."""
    if settings.url_prefix:
        return [settings.url_prefix]
    probes = [settings.health_path, settings.ready_path, settings.metrics_path]
    ui = ["/ui"] if settings.ui else []
    notte = [settings.notte_prefix] if settings.notte_api else []  # issue 21
    return ["/session", "/sessions", "/env", "/profiles", *ui, *notte, *[p for p in probes if p]]


_SESSION_ID = re.compile(SESSION_ID_PATTERN)

# Endpoints that answer even when the deployment is wrong (liveness, metrics, the document).
_ALWAYS_UP = frozenset(
    {"flask_sessions.healthz", "flask_sessions.metrics", "flask_sessions.openapi"}
)

MULTIPROCESS_FIX = (
    "this app runs in several worker processes, but sessions live in the memory of one "
    "process, so most calls would miss their session; run one worker with threads "
    "(gunicorn -w 1 --threads 16, uwsgi --processes 1 --threads 16), or run a browser host "
    "(python -m flask_sessions host) and set SESSIONS_HOSTS and SESSIONS_CLUSTER_SECRET in "
    "the workers (see the README's Deploying section)"
)


def _refuse_multiprocess(state: SessionsState) -> None:
    """Several workers and embedded sessions: one log line, then a 503 with the fix."""
    if not state.warned_multiprocess:
        state.warned_multiprocess = True
        log.error("flask_sessions: %s", MULTIPROCESS_FIX)
    raise BrowserUnavailable(MULTIPROCESS_FIX)


def _known_id(session_id: str) -> None:
    """An id that cannot be a session's is a 404, like any other unknown id."""
    if not _SESSION_ID.match(session_id):
        raise SessionNotFound(
            "no such session: session ids are 1 to 64 letters, digits, '-' or '_'; "
            "use the session_id returned by POST /session/start"
        )


_ACTIONS = frozenset({"start", "close"})


def _not_an_action(session_id: str) -> None:
    """``GET /session/start`` is a wrong method, not a session named "start"."""
    if session_id in _ACTIONS:
        raise MethodNotAllowed(valid_methods=["POST"])


def _fields(max_depth: int) -> dict[str, Any]:
    """The request's fields: query string and JSON body, the body winning ties."""
    return merge_sources(_query(), _json_body(max_depth))


def _query() -> dict[str, str]:
    return request.args.to_dict()


def _json_body(max_depth: int) -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise InvalidInput(
            "body: is nested too deeply; send a flat JSON object",
            fields=[{"field": "body", "message": "is nested too deeply"}],
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "body: is not valid JSON; send a JSON object with Content-Type: application/json",
            fields=[{"field": "body", "message": "is not valid JSON"}],
        ) from None
    if not isinstance(body, dict):
        raise InvalidInput(
            f'body: must be a JSON object, got {type(body).__name__}; send {{"field": value}}',
            fields=[{"field": "body", "message": "must be a JSON object"}],
        )
    if _deeper_than(body, max_depth):
        raise InvalidInput(
            f"body: is nested more than {max_depth} levels deep "
            "(SESSIONS_MAX_JSON_DEPTH); send a flat JSON object",
            fields=[{"field": "body", "message": f"is nested more than {max_depth} levels"}],
        )
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False


def _as_json(model: BaseModel) -> Response:
    """The model as JSON; notes its session id for the access log."""
    session_id = getattr(model, "session_id", None) or getattr(
        getattr(model, "session", None), "session_id", None
    )
    if session_id:
        g.flask_sessions_session_id = session_id
    return jsonify(model.model_dump(mode="json"))
