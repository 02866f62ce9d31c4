"""The live view's routes: mint a viewer_url, and serve the page a person opens.

``POST /session/<id>/viewer`` (the token holder) answers a ``viewer_url``: this front's
``<prefix>/ui/live/<id>`` with a one-use ticket in the URL's fragment (``#ticket=…``: a
browser never sends a fragment to a server, so it stays out of access logs and proxies).
The page (``front/ui/live.html``, ``live.js``, ``live.css``, no CDN) needs no token: the
server writes the session's live socket (on the owning host's WebSocket server, as
``cdp_url``) into it, its Content-Security-Policy allows a connection to that origin alone,
and the page connects there with the ticket. Frames and input never pass through a front.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, request
from werkzeug.exceptions import NotFound

from flask_sessions.schemas import ViewerRequest, parse

if TYPE_CHECKING:
    from flask_sessions.extension import SessionsState

ASSETS = {"live.js": "text/javascript", "live.css": "text/css"}
_NETLOC = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
"""A host[:port] fit for a CSP source (the socket's host comes from a request header)."""
PLACEHOLDER = b"__SOCKET__"


def page_csp(socket: str | None) -> str:
    """The live page's Content-Security-Policy: its own script and style, and a socket to
    the session's server only. Any site may frame it (embed a viewer_url in your app)."""
    connect = "'none'"
    if socket:
        parts = urlsplit(socket)
        if parts.scheme in ("ws", "wss") and _NETLOC.fullmatch(parts.netloc):
            connect = f"{parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors *"
    )


def _read(name: str) -> bytes:
    return (resources.files("flask_sessions.front") / "ui" / name).read_bytes()


def _public_base() -> str:
    """This front's address as the caller used it (X-Forwarded-Proto/Host as the CDP URL
    honours them), with the app's script root."""
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    scheme = proto if proto in ("http", "https") else request.scheme
    forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    return f"{scheme}://{forwarded or request.host}{request.script_root}"


def register_viewer(
    bp: Blueprint, state: SessionsState, login_required: Callable[[Any], Any]
) -> None:
    """``POST /session/<id>/viewer``, ``GET /ui/live/<id>`` and its two files."""
    from flask_sessions.front.blueprint import _as_json, _fields, _known_id

    settings = state.settings
    page = _read("live.html")
    files = {name: _read(name) for name in ASSETS}

    @bp.post("/session/<session_id>/viewer", endpoint="viewer")
    @login_required
    def viewer(session_id: str) -> Response:
        """A viewer_url for the session (one-use ticket; view only unless interactive)."""
        _known_id(session_id)
        req = parse(ViewerRequest, _fields(settings.max_json_depth))
        principal = state.auth.current_user()
        assert isinstance(principal, str)
        page_url = f"{_public_base()}{settings.url_prefix}/ui/live/{session_id}"
        return _as_json(state.backend.viewer(principal, session_id, req, page_url))

    def secured(response: Response, csp: str) -> Response:
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @bp.get("/ui/live/<session_id>", endpoint="live_page")
    def live_page(session_id: str) -> Response:
        """The live view of a session (no token: the ticket is in the URL's fragment)."""
        _known_id(session_id)
        socket = state.backend.viewer_socket(session_id)
        body = page.replace(PLACEHOLDER, html.escape(socket or "", quote=True).encode("utf-8"))
        response = Response(body, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return secured(response, page_csp(socket))

    @bp.get("/ui/live/assets/<asset>", endpoint="live_asset")
    def live_asset(asset: str) -> Response:
        """The live page's script and style sheet."""
        if asset not in ASSETS:
            raise NotFound(
                f"no such file of the live page: {asset!r}; there are: live.js, live.css"
            )
        response = Response(files[asset], mimetype=ASSETS[asset])
        response.headers["Cache-Control"] = "no-cache"
        response.add_etag()
        response.make_conditional(request)
        return secured(response, page_csp(None))
