"""The live sessions page at ``<prefix>/ui``: plain HTML, CSS and JavaScript from package files.

The page itself is static and needs no token. It asks for one, keeps it in the tab's
``sessionStorage``, and calls the JSON API with it (``GET sessions``, ``GET
session/<id>/screenshot``, ``DELETE session/<id>``), so it works wherever the API does,
through a front as well. It finds the API by resolving relative URLs against its own
address: ``<prefix>/ui`` calls ``<prefix>/sessions``, whatever prefix a proxy adds or strips.

Its Content-Security-Policy allows only its own script and style and ``blob:`` images (the
thumbnails): no inline script, no other origin. Titles and URLs come from the pages the
sessions visit, so the script writes them with ``textContent`` only.
"""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response, request
from werkzeug.exceptions import NotFound

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page's Content-Security-Policy (the assets get it too)."""

ASSETS = {"ui.js": "text/javascript", "ui.css": "text/css"}


def _read(name: str) -> bytes:
    return (resources.files("flask_sessions.front") / "ui" / name).read_bytes()


def register_ui(bp: Blueprint) -> None:
    """Add ``GET /ui`` (the page) and ``GET /ui/<asset>`` (its script and style) to ``bp``.

    Example::

        bp = Blueprint("flask_sessions", __name__)
        register_ui(bp)   # then GET <prefix>/ui in a browser
    """
    files = {name: _read(name) for name in ("index.html", *ASSETS)}

    def secured(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-cache"
        response.add_etag()
        response.make_conditional(request)  # 304 for a matching If-None-Match
        return response

    @bp.get("/ui", endpoint="ui")
    def page() -> Response:
        """The sessions page (no token: it asks for one)."""
        response = Response(files["index.html"], mimetype="text/html")
        response.headers["X-Frame-Options"] = "DENY"
        return secured(response)

    @bp.get("/ui/<name>", endpoint="ui_asset")
    def asset(name: str) -> Response:
        """The page's script and style sheet."""
        if name not in ASSETS:
            raise NotFound(f"no such file of the sessions page: {name!r}; see GET /ui")
        return secured(Response(files[name], mimetype=ASSETS[name]))
