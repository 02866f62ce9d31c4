"""A host's internal HTTP API: what fronts call, never clients.

Every route needs ``X-Sessions-Secret`` equal to ``SESSIONS_CLUSTER_SECRET`` (compared in
constant time); the caller's principal travels in ``X-Sessions-Principal``, already
authenticated by the front, so a client's token never reaches a host. Bodies are the
public API's (validated again here: the host's settings are the authority), answers are
the public API's JSON, and errors add ``error_type`` so the front raises the same error.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from flask_sessions import __version__
from flask_sessions.errors import InvalidInput, SessionsError, Unauthorized, error_response
from flask_sessions.front.files import send
from flask_sessions.front.metrics import CONTENT_TYPE, Metrics
from flask_sessions.host.local import LocalBackend
from flask_sessions.profile_schemas import (
    AddCookiesRequest,
    CookiesQuery,
    DeleteCookiesQuery,
    ProfileCreate,
    StorageState,
)
from flask_sessions.schemas import (
    CloseRequest,
    ListQuery,
    ObserveRequest,
    ScrapeRequest,
    ScreenshotQuery,
    SessionResponse,
    StartRequest,
    Status,
    ViewerRequest,
    parse,
    parse_step,
)

log = logging.getLogger("flask_sessions")

API = "/internal/v1"
SECRET_HEADER = "X-Sessions-Secret"
PRINCIPAL_HEADER = "X-Sessions-Principal"


def host_blueprint(backend: LocalBackend, secret: str, host_id: str) -> Blueprint:
    """The internal routes of one host."""
    bp = Blueprint("flask_sessions_host", __name__, url_prefix=API)
    manager = backend.manager
    settings = manager.settings
    context = {
        "max_timeout_minutes": settings.max_timeout_minutes,
        "max_wait_ms": settings.max_wait_ms,
    }
    expected = secret.encode("utf-8")

    @bp.before_request
    def check_secret() -> None:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8")
        if not hmac.compare_digest(given, expected):
            raise Unauthorized("this is a host's internal API; calls need the cluster secret")

    def principal() -> str:
        who = request.headers.get(PRINCIPAL_HEADER, "")
        if not who:
            raise Unauthorized(f"no {PRINCIPAL_HEADER} header")
        return who

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    def with_cdp_url(record: object) -> None:
        """An active record's ``cdp_url`` on this host's CDP server."""
        cdp = manager.cdp
        if cdp is None or not isinstance(record, SessionResponse):
            return
        if record.status is Status.active:
            record.cdp_url = cdp.url_for(record.session_id)

    def answer(model: Any) -> Response:
        """The public JSON, with each record's ``cdp_url``."""
        with_cdp_url(model)
        with_cdp_url(getattr(model, "session", None))
        return jsonify(model.model_dump(mode="json"))

    @bp.post("/sessions/<session_id>/cdp-ticket")
    def cdp_ticket(session_id: str) -> Response:
        return answer(backend.cdp_ticket(principal(), session_id))

    @bp.get("/info")
    def info() -> Response:
        cdp = manager.cdp
        url = cdp.url_for("x") if cdp is not None else None
        base = url.removesuffix("/cdp/x") if url else None
        return jsonify(host_id=host_id, version=__version__, cdp_base=base, **manager.load())

    @bp.post("/start")
    def start() -> Response:
        return answer(backend.start(principal(), parse(StartRequest, body(), context)))

    @bp.post("/observe")
    def observe() -> Response:
        return answer(backend.observe(principal(), parse(ObserveRequest, body(), context)))

    @bp.post("/step")
    def step() -> Response:
        return answer(backend.step(principal(), parse_step(body(), context)))

    @bp.post("/scrape")
    def scrape() -> Response:
        return answer(backend.scrape(principal(), parse(ScrapeRequest, body(), context)))

    @bp.get("/sessions/<session_id>")
    def get(session_id: str) -> Response:
        return answer(backend.get(principal(), session_id))

    @bp.post("/close")
    def close() -> Response:
        req = parse(CloseRequest, body())
        return answer(backend.close(principal(), req.session_id))

    @bp.get("/sessions/<session_id>/screenshot")
    def screenshot(session_id: str) -> Response:
        query = parse(ScreenshotQuery, request.args.to_dict())
        shot = backend.screenshot(principal(), session_id, query)
        # the image as it is (no base64 round trip), its sizes in headers
        response = Response(shot.data, mimetype=shot.media_type)
        response.headers["X-Shot-Size"] = f"{shot.width}x{shot.height}"
        response.headers["X-Shot-Page-Size"] = f"{shot.page_width}x{shot.page_height}"
        return response

    @bp.get("/sessions")
    def list_sessions() -> Response:
        query = parse(ListQuery, {k: v for k, v in request.args.items() if k == "status"})
        found = backend.list_sessions(principal(), query.status)
        for record in found:
            with_cdp_url(record)
        return jsonify(sessions=[s.model_dump(mode="json") for s in found])

    # live view and recordings (issue 20)
    @bp.post("/sessions/<session_id>/viewer")
    def viewer(session_id: str) -> Response:
        data = body()
        page_url = data.pop("page_url", None)
        if not isinstance(page_url, str) or not page_url.startswith(("http://", "https://")):
            raise InvalidInput("page_url: the front's live page URL (http(s)://…) is required")
        req = parse(ViewerRequest, data)
        return answer(backend.viewer(principal(), session_id, req, page_url[:2000]))

    @bp.get("/sessions/<session_id>/recording")
    def recording(session_id: str) -> Response:
        found = backend.recording(principal(), session_id)
        response = Response(found.chunks, mimetype="application/zip", direct_passthrough=True)
        if found.size is not None:
            response.headers["Content-Length"] = str(found.size)
        response.headers["X-Recording-State"] = found.state
        response.headers["Content-Disposition"] = f'attachment; filename="{found.filename}"'
        return response

    @bp.delete("/sessions/<session_id>/recording")
    def delete_recording(session_id: str) -> Response:
        return answer(backend.delete_recording(principal(), session_id))

    # profiles (issue 18): a session's cookies and state on its owner; profiles on any host
    @bp.get("/sessions/<session_id>/cookies")
    def get_cookies(session_id: str) -> Response:
        query = parse(CookiesQuery, request.args.to_dict())
        return answer(backend.cookies(principal(), session_id, query.url))

    @bp.post("/sessions/<session_id>/cookies")
    def add_cookies(session_id: str) -> Response:
        req = parse(AddCookiesRequest, body())
        return answer(backend.add_cookies(principal(), session_id, req))

    @bp.delete("/sessions/<session_id>/cookies")
    def delete_cookies(session_id: str) -> Response:
        query = parse(DeleteCookiesQuery, request.args.to_dict())
        return answer(backend.delete_cookies(principal(), session_id, query))

    @bp.get("/sessions/<session_id>/state")
    def session_state(session_id: str) -> Response:
        return jsonify(backend.session_state(principal(), session_id))

    @bp.post("/sessions/<session_id>/profile/save")
    def save_profile(session_id: str) -> Response:
        return answer(backend.save_profile(principal(), session_id))

    @bp.post("/profiles")
    def create_profile() -> Response:
        return answer(backend.create_profile(principal(), parse(ProfileCreate, body()).name))

    @bp.get("/profiles")
    def list_profiles() -> Response:
        found = backend.list_profiles(principal())
        return jsonify(profiles=[p.model_dump(mode="json") for p in found])

    @bp.get("/profiles/<profile_id>")
    def get_profile(profile_id: str) -> Response:
        return answer(backend.get_profile(principal(), profile_id))

    @bp.delete("/profiles/<profile_id>")
    def delete_profile(profile_id: str) -> Response:
        return answer(backend.delete_profile(principal(), profile_id))

    @bp.get("/profiles/<profile_id>/state")
    def profile_state(profile_id: str) -> Response:
        return jsonify(backend.profile_state(principal(), profile_id))

    @bp.put("/profiles/<profile_id>/state")
    def put_profile_state(profile_id: str) -> Response:
        state = parse(StorageState, body())
        return answer(backend.put_profile_state(principal(), profile_id, state))

    # --- session files (issue 19): bodies stream through, both ways
    @bp.post("/sessions/<session_id>/files")
    def upload_files(session_id: str) -> Response:
        stored = backend.upload_files(
            principal(), session_id, request.stream, request.content_type, request.content_length
        )
        return answer(stored)

    @bp.get("/sessions/<session_id>/files")
    def list_files(session_id: str) -> Response:
        return answer(backend.list_files(principal(), session_id))

    @bp.get("/sessions/<session_id>/files/<file_name>")
    def get_file(session_id: str, file_name: str) -> Response:
        byte_range = request.headers.get("Range")
        return send(backend.get_file(principal(), session_id, file_name, byte_range))

    @bp.get("/sessions/<session_id>/files.zip")
    def zip_files(session_id: str) -> Response:
        return send(backend.zip_files(principal(), session_id))

    @bp.delete("/sessions/<session_id>/files/<file_name>")
    def delete_file(session_id: str, file_name: str) -> Response:
        return answer(backend.delete_file(principal(), session_id, file_name))

    @bp.get("/readyz")
    def readyz() -> Response:
        ready, reason = backend.readiness()
        response = jsonify(status="ready" if ready else "unavailable", reason=reason)
        response.status_code = 200 if ready else 503
        return response

    def internal_error(exc: Exception) -> Response:
        response = error_response(exc)
        kind = type(exc).__name__ if isinstance(exc, SessionsError) else None
        if kind and response.is_json:
            payload = response.get_json()
            if isinstance(payload, dict):
                payload["error_type"] = kind
                response.set_data(jsonify(payload).get_data())
        return response

    bp.register_error_handler(Exception, internal_error)
    return bp


def create_host_app(
    backend: LocalBackend,
    secret: str,
    host_id: str,
    metrics: Metrics | None = None,
    name: str = "flask_sessions_host",
) -> Flask:
    """A host's WSGI app: the internal API, liveness, metrics, JSON for every error."""
    app = Flask(name)
    app.register_blueprint(host_blueprint(backend, secret, host_id))

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", host_id=host_id, **backend.health())

    if metrics is not None:

        @app.get("/metrics")
        def metrics_view() -> Response:
            """The host's sessions, pool and browser (Prometheus); no per-session labels."""
            return Response(metrics.render(), content_type=CONTENT_TYPE)

    app.register_error_handler(Exception, error_response)
    return app
