"""The recordings' routes: download a session's Playwright trace, or delete it.

``GET /session/<id>/recording`` streams ``trace.zip`` from the host that recorded it (while
the session records: the trace so far, and tracing goes on); open it with
``python -m playwright show-trace trace.zip`` or https://trace.playwright.dev.
``DELETE`` removes it. Another principal's recording is a 404, like their sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response

if TYPE_CHECKING:
    from flask_sessions.extension import SessionsState


def register_recording(
    bp: Blueprint, state: SessionsState, login_required: Callable[[Any], Any]
) -> None:
    """``GET`` and ``DELETE /session/<id>/recording``."""
    from flask_sessions.front.blueprint import _as_json, _known_id

    def principal() -> str:
        user = state.auth.current_user()
        assert isinstance(user, str)
        return user

    @bp.get("/session/<session_id>/recording", endpoint="get_recording")
    @login_required
    def get_recording(session_id: str) -> Response:
        """The session's trace.zip, streamed (never held whole in this process)."""
        _known_id(session_id)
        found = state.backend.recording(principal(), session_id)
        response = Response(found.chunks, mimetype="application/zip", direct_passthrough=True)
        if found.size is not None:
            response.headers["Content-Length"] = str(found.size)
        response.headers["Content-Disposition"] = f'attachment; filename="{found.filename}"'
        response.headers["X-Recording-State"] = found.state
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.delete("/session/<session_id>/recording", endpoint="delete_recording")
    @login_required
    def delete_recording(session_id: str) -> Response:
        """Delete the recording (tracing stops if the session still records)."""
        _known_id(session_id)
        return _as_json(state.backend.delete_recording(principal(), session_id))
