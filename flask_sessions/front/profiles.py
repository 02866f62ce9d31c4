"""The cookie, storage-state and profile routes (issue 18): thin views over the backend.

- ``GET/POST/DELETE /session/<id>/cookies``, ``GET /session/<id>/state`` and
  ``POST /session/<id>/profile/save``: a live session's cookies and storage;
- ``POST/GET /profiles``, ``GET/DELETE /profiles/<id>``, ``GET/PUT /profiles/<id>/state``:
  the caller's stored profiles.

Body limits where a storage state travels: a start keeps ``SESSIONS_MAX_CONTENT_LENGTH``
(its inline ``storage_state`` must fit it, and ``SESSIONS_MAX_STATE_MB``); ``PUT
/profiles/<id>/state`` takes ``SESSIONS_MAX_CONTENT_LENGTH`` plus ``SESSIONS_MAX_PROFILE_MB``,
so any state a profile may hold can be imported again. Past either, the 413 names the
settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request

from flask_sessions.errors import ProfileNotFound, TooLarge
from flask_sessions.profile_schemas import (
    PROFILE_ID_PATTERN,
    AddCookiesRequest,
    CookiesQuery,
    DeleteCookiesQuery,
    ProfileCreate,
    ProfileList,
    StorageState,
)
from flask_sessions.schemas import parse

if TYPE_CHECKING:
    from flask_sessions.extension import SessionsState

MB = 1024 * 1024
_PROFILE_ID = re.compile(PROFILE_ID_PATTERN)

START = "flask_sessions.start"
PUT_STATE = "flask_sessions.put_profile_state"


def state_body_limit(content_length: int, state_mb: float) -> int:
    """Bytes a ``PUT /profiles/<id>/state`` body may have: the usual limit plus the bound of
    a profile's state."""
    return content_length + int(state_mb * MB)


def register_profiles(
    bp: Blueprint, state: SessionsState, login_required: Callable[[Any], Any]
) -> None:
    """Add the routes to ``bp``. Example::

    register_profiles(bp, state, login_required)   # in make_blueprint
    """
    from flask_sessions.front.blueprint import _as_json, _json_body, _known_id, _query

    settings = state.settings
    backend = state.backend

    def principal() -> str:
        user = state.auth.current_user()
        assert isinstance(user, str)
        return user

    def body() -> dict[str, Any]:
        return _json_body(settings.max_json_depth)

    def known_profile(profile_id: str) -> None:
        if not _PROFILE_ID.match(profile_id):
            raise ProfileNotFound(
                "no such profile: profile ids are 1 to 64 letters, digits, '-' or '_'; use the "
                "profile_id returned by POST /profiles"
            )

    @bp.before_request
    def room_for_states() -> None:
        """Where a body carries a state, say so in its 413; a profile's import may be as
        large as a profile's state (runs after the blueprint's own limit is set)."""
        size = request.content_length
        if request.endpoint == START and size is not None and size > settings.max_content_length:
            raise TooLarge(
                f"the request body is {size} bytes, over SESSIONS_MAX_CONTENT_LENGTH="
                f"{settings.max_content_length}; an inline storage_state must fit it (and "
                f"SESSIONS_MAX_STATE_MB={settings.max_state_mb:g}): for a larger state, import "
                "it into a profile (PUT /profiles/<id>/state) and start with the profile",
                limit="SESSIONS_MAX_CONTENT_LENGTH",
            )
        if request.endpoint != PUT_STATE:
            return
        limit = state_body_limit(settings.max_content_length, settings.max_profile_mb)
        request.max_content_length = limit
        if size is not None and size > limit:
            raise TooLarge(
                f"the request body is {size / MB:.1f} MB, over the {limit / MB:.1f} MB this "
                "route takes (SESSIONS_MAX_CONTENT_LENGTH plus SESSIONS_MAX_PROFILE_MB="
                f"{settings.max_profile_mb:g}); nothing was saved",
                limit="SESSIONS_MAX_PROFILE_MB",
            )

    def state_json(data: dict[str, Any]) -> Response:
        return jsonify(data)

    @bp.get("/session/<session_id>/cookies")
    @login_required
    def get_cookies(session_id: str) -> Response:
        _known_id(session_id)
        query = parse(CookiesQuery, _query())
        return _as_json(backend.cookies(principal(), session_id, query.url))

    @bp.post("/session/<session_id>/cookies")
    @login_required
    def add_cookies(session_id: str) -> Response:
        _known_id(session_id)
        req = parse(AddCookiesRequest, body())
        return _as_json(backend.add_cookies(principal(), session_id, req))

    @bp.delete("/session/<session_id>/cookies")
    @login_required
    def delete_cookies(session_id: str) -> Response:
        _known_id(session_id)
        query = parse(DeleteCookiesQuery, _query())
        return _as_json(backend.delete_cookies(principal(), session_id, query))

    @bp.get("/session/<session_id>/state")
    @login_required
    def session_state(session_id: str) -> Response:
        _known_id(session_id)
        return state_json(backend.session_state(principal(), session_id))

    @bp.post("/session/<session_id>/profile/save")
    @login_required
    def save_profile(session_id: str) -> Response:
        _known_id(session_id)
        return _as_json(backend.save_profile(principal(), session_id))

    @bp.post("/profiles")
    @login_required
    def create_profile() -> Response:
        req = parse(ProfileCreate, body())
        return _as_json(backend.create_profile(principal(), req.name))

    @bp.get("/profiles")
    @login_required
    def list_profiles() -> Response:
        return _as_json(ProfileList(profiles=backend.list_profiles(principal())))

    @bp.get("/profiles/<profile_id>")
    @login_required
    def get_profile(profile_id: str) -> Response:
        known_profile(profile_id)
        return _as_json(backend.get_profile(principal(), profile_id))

    @bp.delete("/profiles/<profile_id>")
    @login_required
    def delete_profile(profile_id: str) -> Response:
        known_profile(profile_id)
        return _as_json(backend.delete_profile(principal(), profile_id))

    @bp.get("/profiles/<profile_id>/state")
    @login_required
    def profile_state(profile_id: str) -> Response:
        known_profile(profile_id)
        return state_json(backend.profile_state(principal(), profile_id))

    @bp.put("/profiles/<profile_id>/state")
    @login_required
    def put_profile_state(profile_id: str) -> Response:
        known_profile(profile_id)
        new = parse(StorageState, body())
        return _as_json(backend.put_profile_state(principal(), profile_id, new))
