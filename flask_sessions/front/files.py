"""The session files routes (issue 19): upload, list, download, zip, delete.

Thin like the other views: the backend does the work, wherever the session lives. Bodies
stream both ways: an upload's body is handed to the backend as a stream (the host parses it
part by part into the session's folder; a front passes it through to the owning host
unread), and a file or zip goes out as the backend yields it, never whole in memory.

::

    curl -F file=@cv.pdf -H "Authorization: Bearer $TOKEN" $S/session/$SID/files
    curl -OJ -H "Authorization: Bearer $TOKEN" $S/session/$SID/files/cv.pdf
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel
from werkzeug.wsgi import wrap_file

from flask_sessions.errors import PayloadTooLarge, SessionNotFound
from flask_sessions.schemas import SESSION_ID_PATTERN, FileBody

if TYPE_CHECKING:
    from flask_sessions.extension import SessionsState

MB = 1 << 20
CHUNK = 1 << 20  # bytes a served file is read at a time
UPLOAD_OVERHEAD = 4 * MB  # multipart boundaries and part headers, past the files' own bytes
_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def register_files(
    bp: Blueprint, state: SessionsState, login_required: Callable[[Any], Any]
) -> None:
    """Add the files routes to the blueprint."""
    backend = state.backend
    settings = state.settings
    # an upload body past this cannot fit in any session (the limits inside are exact)
    body_cap = int(settings.max_session_files_mb * MB) + UPLOAD_OVERHEAD

    def principal() -> str:
        user = state.auth.current_user()
        assert isinstance(user, str)
        return user

    @bp.post("/session/<session_id>/files")
    @login_required
    def upload_files(session_id: str) -> Response:
        """Store the file parts of a multipart/form-data body."""
        _known(session_id)
        length = request.content_length
        if length is not None and length > body_cap:
            raise PayloadTooLarge(
                f"the upload is {length / MB:.1f} MB: more than a session's files may hold "
                f"({settings.max_session_files_mb:g} MB, SESSIONS_MAX_SESSION_FILES_MB)",
                limit="SESSIONS_MAX_SESSION_FILES_MB",
                limit_bytes=int(settings.max_session_files_mb * MB),
            )
        request.max_content_length = body_cap  # not SESSIONS_MAX_CONTENT_LENGTH: a file body
        stored = backend.upload_files(
            principal(), session_id, request.stream, request.content_type, length
        )
        return _json(stored)

    @bp.get("/session/<session_id>/files")
    @login_required
    def list_files(session_id: str) -> Response:
        _known(session_id)
        return _json(backend.list_files(principal(), session_id))

    @bp.get("/session/<session_id>/files/<file_name>")
    @login_required
    def get_file(session_id: str, file_name: str) -> Response:
        _known(session_id)
        body = backend.get_file(principal(), session_id, file_name, request.headers.get("Range"))
        return send(body)

    @bp.get("/session/<session_id>/files.zip")
    @login_required
    def zip_files(session_id: str) -> Response:
        _known(session_id)
        return send(backend.zip_files(principal(), session_id))

    @bp.delete("/session/<session_id>/files/<file_name>")
    @login_required
    def delete_file(session_id: str, file_name: str) -> Response:
        _known(session_id)
        return _json(backend.delete_file(principal(), session_id, file_name))


def send(body: FileBody) -> Response:
    """A streamed answer of a file body (its source closed when the answer is done). A
    file on this machine goes to the server's ``wsgi.file_wrapper`` (waitress sends it
    from the file, with no copy through Python generators or its overflow buffer)."""
    chunks: Any = body.chunks
    if body.file is not None and body.status == 200:  # a whole file (a range: the chunks)
        chunks = wrap_file(request.environ, body.file, CHUNK)
    response = Response(
        chunks, status=body.status, content_type=body.content_type, direct_passthrough=True
    )
    response.headers.update(body.headers)
    if body.length is not None:
        response.content_length = body.length
    if body.close is not None:
        response.call_on_close(body.close)
    return response


def _known(session_id: str) -> None:
    if not _SESSION_ID.match(session_id):
        raise SessionNotFound(
            "no such session: session ids are 1 to 64 letters, digits, '-' or '_'; "
            "use the session_id returned by POST /session/start"
        )


def _json(model: BaseModel) -> Response:
    return jsonify(model.model_dump(mode="json"))
