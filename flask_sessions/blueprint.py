"""The HTTP surface: thin views that parse, validate, call the manager and serialize.

No Playwright here. Every error leaves as JSON ``{"error": "..."}``; see ``errors.py``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from . import page_ops
from .errors import InvalidInput, SessionsError
from .schemas import (
    CloseRequest,
    ListQuery,
    ObserveRequest,
    ScrapeRequest,
    ScrapeResponse,
    ScreenshotQuery,
    StartRequest,
    merge_sources,
    parse,
    parse_step,
)

if TYPE_CHECKING:
    from .extension import SessionsState

log = logging.getLogger("flask_sessions")

View = TypeVar("View", bound=Callable[..., Any])


def make_blueprint(state: SessionsState) -> Blueprint:
    """The blueprint for one app; its views close over that app's state."""
    bp = Blueprint("flask_sessions", __name__)
    auth = state.auth
    login_required = cast(Callable[[View], View], auth.login_required)
    manager = state.manager
    context = {
        "max_timeout_minutes": state.settings.max_timeout_minutes,
        "max_wait_ms": state.settings.max_wait_ms,
    }

    def principal() -> str:
        user = auth.current_user()
        assert isinstance(user, str)
        return user

    @bp.post("/session/start")
    @login_required
    def start() -> Response:
        req = parse(StartRequest, _fields(), context)
        return _json(manager.start(principal(), req))

    @bp.post("/env/observe")
    @login_required
    def observe() -> Response:
        req = parse(ObserveRequest, _fields(), context)
        return _json(manager.observe(principal(), req))

    @bp.post("/env/step")
    @login_required
    def step() -> Response:
        req = parse_step(_fields(), context)
        return _json(manager.step(principal(), req))

    @bp.post("/env/scrape")
    @login_required
    def scrape() -> Response:
        req = parse(ScrapeRequest, _fields(), context)
        session, (source, info) = manager.scrape(principal(), req)
        if source is None:
            success, message, content = False, f"selector {req.selector!r} matched nothing", ""
        else:
            success, message = True, f"scraped {'the page' if not req.selector else req.selector}"
            content = page_ops.convert(source, req.format)
        result = ScrapeResponse(
            session=session,
            success=success,
            message=message,
            url=info.url,
            title=info.title,
            format=req.format,
            content=content,
        )
        return _json(result)

    @bp.get("/session/<session_id>/screenshot")
    @login_required
    def session_screenshot(session_id: str) -> Response:
        query = parse(ScreenshotQuery, _query())
        shot = manager.screenshot(principal(), session_id, query.full_page)
        # a full page past SESSIONS_MAX_SCREENSHOT_PIXELS is clipped to its top: say so
        clipped = {"width": shot.page_width, "height": shot.page_height}
        if request.accept_mimetypes.best_match(["image/png", "application/json"]) == (
            "application/json"
        ):
            return jsonify(
                session_id=session_id,
                screenshot=base64.b64encode(shot.png).decode("ascii"),
                clipped=shot.clipped,
                page_size=clipped,
            )
        response = Response(shot.png, mimetype="image/png")
        if shot.clipped:
            response.headers["X-Screenshot-Clipped"] = (
                f"{shot.width}x{shot.height} of {shot.page_width}x{shot.page_height}"
            )
        return response

    @bp.get("/session/<session_id>")
    @login_required
    def get_session(session_id: str) -> Response:
        _not_an_action(session_id)
        return _json(manager.get(principal(), session_id))

    @bp.post("/session/close")
    @login_required
    def close() -> Response:
        req = parse(CloseRequest, _fields())
        return _json(manager.close(principal(), req.session_id))

    @bp.delete("/session/<session_id>")
    @login_required
    def delete_session(session_id: str) -> Response:
        _not_an_action(session_id)
        return _json(manager.close(principal(), session_id))

    @bp.get("/sessions")
    @login_required
    def list_sessions() -> Response:
        query = parse(ListQuery, _query())
        sessions = manager.list_sessions(principal(), query.status)
        return jsonify(sessions=[s.model_dump(mode="json") for s in sessions])

    @bp.errorhandler(Exception)
    def on_error(exc: Exception) -> tuple[Response, int] | Response:
        return error_response(exc)

    return bp


def error_response(exc: BaseException) -> Response:
    """Any exception as a JSON response; unexpected ones are logged, never shown."""
    if isinstance(exc, SessionsError):
        response = jsonify(exc.to_json())
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
}


def json_http_errors(prefix: str, everywhere: bool) -> Callable[[HTTPException], Any]:
    """An app-level handler turning 404/405 under the blueprint's paths into JSON.

    Routing errors happen before Flask knows the blueprint, so the blueprint's own
    handler never sees them. ``everywhere`` (the standalone app) makes every path JSON.
    """
    roots = (prefix + "/session", prefix + "/sessions", prefix + "/env")

    def handler(exc: HTTPException) -> Any:
        path = request.path.rstrip("/")
        ours = everywhere or any(path == r or path.startswith(r + "/") for r in roots)
        return error_response(exc) if ours else exc

    return handler


_ACTIONS = frozenset({"start", "close"})


def _not_an_action(session_id: str) -> None:
    """``GET /session/start`` is a wrong method, not a session named "start"."""
    if session_id in _ACTIONS:
        raise MethodNotAllowed(valid_methods=["POST"])


def _fields() -> dict[str, Any]:
    """The request's fields: query string and JSON body, the body winning ties."""
    return merge_sources(_query(), _json_body())


def _query() -> dict[str, str]:
    return request.args.to_dict()


def _json_body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
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
    return body


def _json(model: BaseModel) -> Response:
    return jsonify(model.model_dump(mode="json"))
