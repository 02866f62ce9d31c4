"""The OpenAPI 3.1 document at ``GET <prefix>/openapi.json``, generated from the models.

One source of truth: request bodies and query strings are the pydantic models the views
parse with (``schemas.py``: ``parse()`` / ``parse_step()``), answers the models they
serialize, and errors the shape ``errors.py`` writes. Only which model goes with which route
is written here, in :data:`ROUTES` (plus the probes, whose paths are settings).
``tests/test_openapi.py`` fails when that table and the blueprint's ``url_map`` disagree, or
when the fields the server accepts differ from the document's, and runs schemathesis against
a real server.

Why no library (flask-openapi3, spectree, apispec): each wants to own request validation
(its own 422 answers, no query+body merge, no validation context for the server's caps) or
the app class, and our views already validate with :func:`~flask_sessions.schemas.parse`.
pydantic writes every schema; this module only places them (``NOTES-openapi.md`` compares).

Example::

    curl -s http://127.0.0.1:8000/openapi.json | jq '.paths | keys'
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from flask_sessions.config import Settings
from flask_sessions.front.ui import ASSETS
from flask_sessions.front.viewer import ASSETS as LIVE_ASSETS
from flask_sessions.profile_schemas import (
    PROFILE_ID_PATTERN,
    AddCookiesRequest,
    CookieList,
    CookiesChanged,
    CookiesQuery,
    DeleteCookiesQuery,
    ProfileCreate,
    ProfileInfo,
    ProfileList,
    StorageState,
)
from flask_sessions.schemas import (
    ALIASES,
    MEDIA_TYPES,
    SESSION_ID_PATTERN,
    STEP_ADAPTER,
    STEP_TYPES,
    CdpTicketResponse,
    CloseRequest,
    ErrorResponse,
    FileList,  # session files (issue 19)
    HealthResponse,
    ListQuery,
    ObserveRequest,
    ObserveResponse,
    ReadyResponse,
    RecordingDeleted,
    ScrapeRequest,
    ScrapeResponse,
    ScreenshotQuery,
    ScreenshotResponse,
    SessionList,
    SessionResponse,
    StartRequest,
    StepResponse,
    ViewerRequest,
    ViewerResponse,
)

if TYPE_CHECKING:
    from flask_sessions.extension import SessionsState

OPENAPI_PATH = "/openapi.json"
REF = "#/components/schemas/{model}"
STEP_SCHEMA = "StepRequest"  # the component name of the step union (a TypeAdapter)

Body = type[BaseModel] | str  # a model, or the name of a component written here


@dataclass(frozen=True)
class Route:
    """One operation: which view, which models, which answers.

    ``path`` is the Flask rule below the prefix; ``ok`` maps each media type of the 200
    answer to a model (or a raw JSON schema); ``errors`` lists the error statuses the route
    can answer, each with the JSON error shape.
    """

    endpoint: str
    method: str
    path: str
    summary: str
    description: str = ""
    tag: str = "sessions"
    body: Body | None = None
    body_required: bool = False
    query: type[BaseModel] | None = None
    query_all_optional: bool = False  # the fields may come from the body instead
    ok: Mapping[str, type[BaseModel] | dict[str, Any]] = field(default_factory=dict)
    ok_headers: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    auth: bool = True
    extra_responses: Mapping[int, dict[str, Any]] = field(default_factory=dict)
    # a body that is no JSON model (session files: a multipart upload), by media type
    body_content: Mapping[str, dict[str, Any]] | None = None


JSON = "application/json"
FIELDS_FROM_QUERY = (
    " Each field may also come from the query string (same names); the body wins when both set one."
)
SESSION_FIELDS = (
    " Takes the session fields of the start request (`session_id`, `keep_alive`, "
    "`session_timeout_minutes`, `screenshot`): without `session_id` it starts a new session. "
    "Counts as access."
)
BODY_ERRORS = (400, 401, 404, 409, 413, 429, 502, 503, 504, 507)

ROUTES: tuple[Route, ...] = (
    Route(
        "start",
        "POST",
        "/session/start",
        "Start a session, or return (and touch) an existing one",
        "Without `session_id`, a new session; with it, that session (yours and active), "
        "touched, and updated by an explicitly sent `keep_alive` or "
        "`session_timeout_minutes`. With `url`, the session opens it before answering "
        "(`page` says how it went). With `storage_state` or `profile` (issue 18) the new "
        "session starts with those cookies and that storage (a new context, never a pooled "
        "one); a held profile is a 409, a state over its bound a 413." + FIELDS_FROM_QUERY,
        body=StartRequest,
        query=StartRequest,
        query_all_optional=True,
        ok={JSON: SessionResponse},
        errors=BODY_ERRORS,
    ),
    Route(
        "get_session",
        "GET",
        "/session/<session_id>",
        "A session's record",
        "A read, not an access: it does not push the idle timeout. Another principal's "
        "session is a 404.",
        ok={JSON: SessionResponse},
        errors=(401, 404, 405, 503, 504),
    ),
    Route(
        "close",
        "POST",
        "/session/close",
        "Close a session",
        "Closing an ended session returns its record (idempotent)." + FIELDS_FROM_QUERY,
        body=CloseRequest,
        query=CloseRequest,
        query_all_optional=True,
        ok={JSON: SessionResponse},
        errors=(400, 401, 404, 413, 503, 504),
    ),
    Route(
        "delete_session",
        "DELETE",
        "/session/<session_id>",
        "Close a session (same as POST /session/close)",
        ok={JSON: SessionResponse},
        errors=(401, 404, 405, 503, 504),
    ),
    Route(
        "list_sessions",
        "GET",
        "/sessions",
        "The caller's sessions, oldest first",
        query=ListQuery,
        ok={JSON: SessionList},
        errors=(400, 401, 503, 504),
    ),
    Route(
        "observe",
        "POST",
        "/env/observe",
        "Open `url` if given, then describe the page",
        "The page's interactive elements (`actions`, with ids for steps), visible text, "
        "frames, tabs and, if asked, a screenshot." + SESSION_FIELDS,
        tag="agent",
        body=ObserveRequest,
        ok={JSON: ObserveResponse},
        errors=BODY_ERRORS,
    ),
    Route(
        "step",
        "POST",
        "/env/step",
        "Run one action, then observe the result",
        f"`type` chooses the action: {STEP_TYPES}. An interaction names its element by `id` "
        "(from the last observation) or `selector`." + SESSION_FIELDS,
        tag="agent",
        body=STEP_SCHEMA,
        body_required=True,
        ok={JSON: StepResponse},
        errors=BODY_ERRORS,
    ),
    Route(
        "scrape",
        "POST",
        "/env/scrape",
        "The page, or a part of it, as Markdown, text or HTML",
        SESSION_FIELDS.strip(),
        tag="agent",
        body=ScrapeRequest,
        ok={JSON: ScrapeResponse},
        errors=BODY_ERRORS,
    ),
    Route(
        "session_screenshot",
        "GET",
        "/session/<session_id>/screenshot",
        "A screenshot of the session's page",
        "The image itself, in `format` (`image/png` by default, `image/jpeg` or `image/webp`); "
        "`Accept: application/json` answers the same image base64 in JSON. A full page past "
        "`SESSIONS_MAX_SCREENSHOT_PIXELS` is clipped to its top, and says so "
        "(`X-Screenshot-Clipped`, or `clipped` and `page_size`). Counts as access.",
        query=ScreenshotQuery,
        ok={
            **{m: {"type": "string", "contentMediaType": m} for m in MEDIA_TYPES.values()},
            JSON: ScreenshotResponse,
        },
        ok_headers={
            "X-Screenshot-Clipped": {
                "description": "set when a full page was clipped: `1280x16384 of 1280x200000`",
                "schema": {"type": "string"},
            }
        },
        errors=(400, 401, 404, 409, 502, 503, 504),
    ),
    Route(
        "cdp_ticket",
        "POST",
        "/session/<session_id>/cdp-ticket",
        "A one-use ticket for the session's CDP WebSocket",
        "For clients that cannot send an Authorization header on the WebSocket upgrade: "
        "append `?ticket=` to `cdp_url`. 400 when CDP is off on this server.",
        tag="cdp",
        ok={JSON: CdpTicketResponse},
        errors=(400, 401, 404, 409, 503, 504),
    ),
    # --- session files (issue 19)
    Route(
        "upload_files",
        "POST",
        "/session/<session_id>/files",
        "Upload files into the session's files",
        "A multipart/form-data body: each part with a filename is stored (streamed to disk) "
        "under a safe, unique name (the answer gives it); other parts are ignored. Each file "
        "is bounded by SESSIONS_MAX_UPLOAD_MB and the session's files by "
        "SESSIONS_MAX_SESSION_FILES_MB (413 naming which; nothing of the body is kept); "
        "507 below SESSIONS_MIN_FREE_DISK_MB. Counts as access.",
        tag="files",
        body_content={
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {
                                "type": "string",
                                "contentMediaType": "application/octet-stream",
                            },
                            "minItems": 1,
                            "description": "one part per file, each with a filename",
                        }
                    },
                    "required": ["file"],
                },
                "encoding": {"file": {"contentType": "application/octet-stream"}},
            }
        },
        ok={JSON: FileList},
        errors=(400, 401, 404, 409, 413, 503, 504, 507),
    ),
    Route(
        "list_files",
        "GET",
        "/session/<session_id>/files",
        "The session's files",
        "Uploads and downloads, oldest first, with their state (a download may be "
        "in_progress, complete, cancelled or too_large). Not an access.",
        tag="files",
        ok={JSON: FileList},
        errors=(400, 401, 404, 409, 503, 504),
    ),
    Route(
        "get_file",
        "GET",
        "/session/<session_id>/files/<file_name>",
        "One file's bytes",
        "Served as an attachment (`Content-Disposition` with `filename*`), with "
        "`X-Content-Type-Options: nosniff` and a sandboxing CSP; what a browser could run "
        "(HTML, SVG, XML, scripts) is served as application/octet-stream. A single `Range` "
        "is honoured (206). Not an access.",
        tag="files",
        ok={"*/*": {"type": "string", "description": "the file's bytes"}},
        ok_headers={
            "Content-Disposition": {
                "description": "attachment; filename=...; filename*=UTF-8''...",
                "schema": {"type": "string"},
            },
            "ETag": {"description": "the file's sha256, quoted", "schema": {"type": "string"}},
        },
        errors=(400, 401, 404, 409, 503, 504),
        extra_responses={
            206: {
                "description": "the part of the file the `Range` header asked for",
                "headers": {
                    "Content-Range": {
                        "description": "bytes start-end/size",
                        "schema": {"type": "string"},
                    }
                },
                "content": {"*/*": {"schema": {"type": "string"}}},
            }
        },
    ),
    Route(
        "zip_files",
        "GET",
        "/session/<session_id>/files.zip",
        "Every complete file, as one zip (streamed)",
        "Stored (not compressed), ZIP64 where needed. Not an access.",
        tag="files",
        ok={"application/zip": {"type": "string", "contentMediaType": "application/zip"}},
        errors=(400, 401, 404, 409, 503, 504),
    ),
    Route(
        "delete_file",
        "DELETE",
        "/session/<session_id>/files/<file_name>",
        "Delete a file (a running download is cancelled)",
        "Answers the files left. Counts as access.",
        tag="files",
        ok={JSON: FileList},
        errors=(400, 401, 404, 409, 503, 504),
    ),
    # live view and recordings (issue 20)
    Route(
        "viewer",
        "POST",
        "/session/<session_id>/viewer",
        "A viewer_url: watch the session live (and, if interactive, click and type in it)",
        "The URL opens this server's live page; a one-use ticket in its fragment (never a "
        "token) opens the session's live socket until `expires_at` (`ttl_seconds`, default "
        "SESSIONS_VIEWER_TTL_SECONDS) or the session's end. A view-only ticket's input is "
        "dropped by the server. Counts as access; watching does not, a viewer's input does. "
        "400 when the WebSocket server is off (SESSIONS_CDP=false)." + FIELDS_FROM_QUERY,
        tag="live",
        body=ViewerRequest,
        query=ViewerRequest,
        query_all_optional=True,
        ok={JSON: ViewerResponse},
        errors=(400, 401, 404, 409, 413, 503, 504),
    ),
    Route(
        "get_recording",
        "GET",
        "/session/<session_id>/recording",
        "The session's Playwright trace (trace.zip)",
        "Recorded with `record: true`. While the session records: the trace so far (tracing "
        "goes on); after it ended: the whole trace, kept SESSIONS_RECORDING_RETENTION_MINUTES. "
        "Open it with `python -m playwright show-trace trace.zip`. 404 when there is none for "
        "the caller.",
        tag="recordings",
        ok={"application/zip": {"type": "string", "contentMediaType": "application/zip"}},
        ok_headers={
            "X-Recording-State": {
                "description": "recording, truncated, saved or failed",
                "schema": {"type": "string"},
            },
            "Content-Disposition": {
                "description": 'attachment; filename="trace-<session_id>.zip"',
                "schema": {"type": "string"},
            },
        },
        errors=(401, 404, 502, 503, 504),
    ),
    Route(
        "delete_recording",
        "DELETE",
        "/session/<session_id>/recording",
        "Delete the session's recording (tracing stops if it runs)",
        tag="recordings",
        ok={JSON: RecordingDeleted},
        errors=(401, 404, 503, 504),
    ),
)

# profiles (issue 18): cookies and state of a live session, and stored profiles
SESSION_OP_ERRORS = (401, 404, 409, 502, 503, 504)
PROFILE_ROUTES: tuple[Route, ...] = (
    Route(
        "get_cookies",
        "GET",
        "/session/<session_id>/cookies",
        "The session's cookies",
        "In Playwright's shape, HttpOnly ones included; `url` keeps only those a request to it "
        "would send. Counts as access.",
        tag="profiles",
        query=CookiesQuery,
        ok={JSON: CookieList},
        errors=(400, *SESSION_OP_ERRORS),
    ),
    Route(
        "add_cookies",
        "POST",
        "/session/<session_id>/cookies",
        "Add cookies to the session",
        "Each cookie has `name`, `value`, and `url` or both `domain` and `path` (Playwright's "
        "`add_cookies`). A cookie with the same name, domain and path is replaced.",
        tag="profiles",
        body=AddCookiesRequest,
        body_required=True,
        ok={JSON: CookiesChanged},
        errors=(400, 413, *SESSION_OP_ERRORS),
    ),
    Route(
        "delete_cookies",
        "DELETE",
        "/session/<session_id>/cookies",
        "Delete the session's cookies",
        "Those matching every given filter (`name`, `domain`, `path`); no filter: all.",
        tag="profiles",
        query=DeleteCookiesQuery,
        ok={JSON: CookiesChanged},
        errors=(400, *SESSION_OP_ERRORS),
    ),
    Route(
        "session_state",
        "GET",
        "/session/<session_id>/state",
        "The session's storage state",
        "Playwright's storage state JSON: cookies, and each origin's localStorage and "
        "IndexedDB (not sessionStorage or the HTTP cache). Loads as "
        "`new_context(storage_state=…)`, or as `storage_state` on start. Counts as access.",
        tag="profiles",
        ok={JSON: StorageState},
        errors=SESSION_OP_ERRORS,
    ),
    Route(
        "save_profile",
        "POST",
        "/session/<session_id>/profile/save",
        "Write the session's state into its profile now",
        "For a session started with `profile {id, persist: true}`; 409 otherwise. A state over "
        "SESSIONS_MAX_PROFILE_MB is a 413 and the profile keeps its last good state.",
        tag="profiles",
        ok={JSON: ProfileInfo},
        errors=(413, *SESSION_OP_ERRORS),
    ),
    Route(
        "create_profile",
        "POST",
        "/profiles",
        "Create an empty profile",
        "Load it on start with `profile {id, persist}`; 409 past "
        "SESSIONS_MAX_PROFILES_PER_PRINCIPAL.",
        tag="profiles",
        body=ProfileCreate,
        body_required=True,
        ok={JSON: ProfileInfo},
        errors=(400, 401, 409, 413, 503),
    ),
    Route(
        "list_profiles",
        "GET",
        "/profiles",
        "The caller's profiles, oldest first",
        tag="profiles",
        ok={JSON: ProfileList},
        errors=(401, 503),
    ),
    Route(
        "get_profile",
        "GET",
        "/profiles/<profile_id>",
        "A profile's metadata",
        "Name, times, size, the cookie domains and origins it holds, and the session holding "
        "it with persist: true; never a cookie value. Another principal's profile is a 404.",
        tag="profiles",
        ok={JSON: ProfileInfo},
        errors=(401, 404, 503),
    ),
    Route(
        "delete_profile",
        "DELETE",
        "/profiles/<profile_id>",
        "Delete a profile",
        "409 while a session holds it with persist: true.",
        tag="profiles",
        ok={JSON: ProfileInfo},
        errors=(401, 404, 409, 503),
    ),
    Route(
        "profile_state",
        "GET",
        "/profiles/<profile_id>/state",
        "Export a profile's storage state",
        "Playwright's storage state JSON, decrypted.",
        tag="profiles",
        ok={JSON: StorageState},
        errors=(401, 404, 503),
    ),
    Route(
        "put_profile_state",
        "PUT",
        "/profiles/<profile_id>/state",
        "Import a storage state into a profile",
        "Replaces the profile's state with a Playwright storage state (a login made "
        "elsewhere). Over SESSIONS_MAX_PROFILE_MB: 413, nothing saved. 409 while a session "
        "holds it with persist: true.",
        tag="profiles",
        body=StorageState,
        body_required=True,
        ok={JSON: ProfileInfo},
        errors=(400, 401, 404, 409, 413, 503),
    ),
)
ROUTES = (*ROUTES, *PROFILE_ROUTES)

OPENAPI_ROUTE = Route(
    "openapi",
    "GET",
    OPENAPI_PATH,
    "This OpenAPI 3.1 document",
    "Generated from the server's own models and settings (prefix, probe paths, caps).",
    tag="operations",
    ok={JSON: {"type": "object"}},
    auth=False,
)


def probe_routes(settings: Settings) -> list[Route]:
    """The probes and metrics at their configured paths (an empty path is off)."""
    auth = settings.probes_require_auth
    errors = (401,) if auth else ()
    routes = []
    if settings.health_path:
        routes.append(
            Route(
                "healthz",
                "GET",
                settings.health_path,
                "Liveness: 200 while the process runs, whatever Chromium does",
                tag="operations",
                ok={JSON: HealthResponse},
                errors=errors,
                auth=auth,
            )
        )
    if settings.ready_path:
        unavailable = {
            "description": "not ready (Chromium not running or not answering): `reason` says "
            "why; or a deployment error in the error shape",
            "headers": {"Retry-After": _header("seconds to wait before asking again")},
            "content": {
                JSON: {"schema": {"anyOf": [_ref("ReadyResponse"), _ref("ErrorResponse")]}}
            },
        }
        routes.append(
            Route(
                "readyz",
                "GET",
                settings.ready_path,
                "Readiness: 200 once Chromium answers a probe, else 503 with the reason",
                tag="operations",
                ok={JSON: ReadyResponse},
                errors=errors,
                auth=auth,
                extra_responses={503: unavailable},
            )
        )
    if settings.metrics_path:
        routes.append(
            Route(
                "metrics",
                "GET",
                settings.metrics_path,
                "Prometheus metrics (text format)",
                tag="operations",
                ok={"text/plain": {"type": "string"}},
                errors=errors,
                auth=auth,
            )
        )
    return routes


def ui_routes(settings: Settings) -> list[Route]:
    """The live sessions page and its two files (``SESSIONS_UI``; no token: it asks)."""
    if not settings.ui:
        return []
    not_modified = {304: {"description": "not modified: `If-None-Match` matched the ETag"}}
    no_such_file = {
        **_error_response(404),
        "description": "no such file of the page (there are: " + ", ".join(ASSETS) + ")",
    }
    return [
        Route(
            "ui",
            "GET",
            "/ui",
            "The live sessions page (HTML; it asks for a token and calls this API)",
            tag="operations",
            ok={"text/html": {"type": "string"}},
            errors=(503,),
            auth=False,
            extra_responses=not_modified,
        ),
        Route(
            "ui_asset",
            "GET",
            "/ui/<name>",
            "The page's script and style sheet",
            tag="operations",
            ok={media: {"type": "string"} for media in sorted(set(ASSETS.values()))},
            errors=(503,),
            auth=False,
            extra_responses={**not_modified, 404: no_such_file},
        ),
    ]


LIVE_ROUTES = (  # the live page a viewer_url opens (issue 20); served whatever SESSIONS_UI says
    Route(
        "live_page",
        "GET",
        "/ui/live/<session_id>",
        "The live view of a session (HTML; the ticket is in the URL's fragment)",
        tag="live",
        ok={"text/html": {"type": "string"}},
        errors=(404, 503),
        auth=False,
    ),
    Route(
        "live_asset",
        "GET",
        "/ui/live/assets/<asset>",
        "The live page's script and style sheet",
        tag="live",
        ok={media: {"type": "string"} for media in sorted(set(LIVE_ASSETS.values()))},
        errors=(404, 503),
        auth=False,
        extra_responses={304: {"description": "not modified: `If-None-Match` matched the ETag"}},
    ),
)


def all_routes(settings: Settings) -> list[Route]:
    """Every operation this server's blueprint serves, with these settings."""
    return [*ROUTES, *probe_routes(settings), *ui_routes(settings), *LIVE_ROUTES, OPENAPI_ROUTE]


# ------------------------------------------------------------------------ the document

_ERROR_TEXT = {
    400: "the body or query string is wrong: `fields` names each field, what is wrong and how "
    "to fix it",
    401: "no token, a token in another scheme, or a token this server does not accept",
    404: "no such session (or profile) for this caller (another principal's looks the same)",
    405: "a wrong method (`GET /session/start` is not a session named start)",
    409: "the session has ended (closed, timed out or failed); or the profile is held by a "
    "session with persist: true (`holder`)",
    413: "the body is larger than SESSIONS_MAX_CONTENT_LENGTH (PUT /profiles/<id>/state: plus "
    "SESSIONS_MAX_PROFILE_MB), a storage state is over SESSIONS_MAX_STATE_MB or "
    "SESSIONS_MAX_PROFILE_MB, or an upload is past SESSIONS_MAX_UPLOAD_MB or "
    "SESSIONS_MAX_SESSION_FILES_MB (`limit` names which)",
    429: "a session cap is reached (SESSIONS_MAX_SESSIONS or "
    "SESSIONS_MAX_SESSIONS_PER_PRINCIPAL): retry after `Retry-After` seconds",
    502: "the browser is up but the page failed the operation",
    503: "no browser now (cannot launch, gone, low memory, or several worker processes): "
    "`Retry-After` when waiting helps; or a stored profile that SESSIONS_PROFILE_KEY does not "
    "open, or a profile store that is down",
    504: "the browser or the page did not answer in time",
    507: "the host's disk is below SESSIONS_MIN_FREE_DISK_MB: no upload, and no `record: "
    "true`, for now",
}


PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "session_id": {
        "schema": {"type": "string", "pattern": SESSION_ID_PATTERN},
        "description": "the session_id returned by POST /session/start",
    },
    "name": {"schema": {"type": "string", "enum": sorted(ASSETS)}, "description": "a file"},
    "asset": {"schema": {"type": "string", "enum": sorted(LIVE_ASSETS)}, "description": "a file"},
    "profile_id": {  # profiles (issue 18)
        "schema": {"type": "string", "pattern": PROFILE_ID_PATTERN},
        "description": "the profile_id returned by POST /profiles",
    },
    "file_name": {
        "schema": {"type": "string", "minLength": 1},
        "description": "a file's name as GET /session/{session_id}/files lists it",
    },
}
"""Schemas of the path parameters by name (any other is a plain string)."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _header(description: str, required: bool = False) -> dict[str, Any]:
    header: dict[str, Any] = {"description": description, "schema": {"type": "integer"}}
    if required:
        header["required"] = True
    return header


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERROR_TEXT[status],
        "content": {JSON: {"schema": _ref("ErrorResponse")}},
    }
    if status == 429:
        response["headers"] = {"Retry-After": _header("seconds to wait", required=True)}
    elif status == 503:
        response["headers"] = {"Retry-After": _header("seconds to wait, when waiting helps")}
    elif status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}
        }
    elif status == 405:
        response["headers"] = {
            "Allow": {"description": "the methods this path takes", "schema": {"type": "string"}}
        }
    return response


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/session/<session_id>`` -> ``/session/{session_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _schemas(settings: Settings) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Every component schema, and the schema (or ``$ref``) of each model by name."""
    requests: list[type[BaseModel]] = [
        model for r in ROUTES for model in (r.body, r.query) if isinstance(model, type)
    ]
    answers: list[type[BaseModel]] = [ErrorResponse, ReadyResponse]
    answers += [m for r in all_routes(settings) for m in r.ok.values() if isinstance(m, type)]
    inputs: dict[tuple[str, JsonSchemaMode], TypeAdapter[Any]] = {
        (STEP_SCHEMA, "validation"): STEP_ADAPTER
    }
    for model in requests:
        inputs[(model.__name__, "validation")] = TypeAdapter(model)
    for model in answers:
        inputs[(model.__name__, "serialization")] = TypeAdapter(model)
    top, defs = TypeAdapter.json_schemas(
        [(key, mode, adapter) for (key, mode), adapter in inputs.items()], ref_template=REF
    )
    components: dict[str, Any] = dict(defs.get("$defs", {}))
    components[STEP_SCHEMA] = {
        **top[(STEP_SCHEMA, "validation")],
        "title": STEP_SCHEMA,
        "description": f"One action, chosen by `type`: {STEP_TYPES}.",
    }
    _json_schema_bounds(components)
    _this_server(components, settings)
    return components, {key: schema for (key, _mode), schema in top.items()}


_PYDANTIC_BOUNDS = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
}


def _json_schema_bounds(value: Any) -> None:
    """pydantic leaves ``ge``/``le``/``gt``/``lt`` as they are where a bound applies to an
    annotated int inside a union (``Int | None = Field(ge=0)``): JSON Schema's words instead,
    or validators and fuzzers ignore them."""
    if isinstance(value, dict):
        if value.get("type") in ("integer", "number"):
            for ours, theirs in _PYDANTIC_BOUNDS.items():
                if ours in value:
                    value[theirs] = value.pop(ours)
        for item in value.values():
            _json_schema_bounds(item)
    elif isinstance(value, list):
        for item in value:
            _json_schema_bounds(item)


def _this_server(components: dict[str, Any], settings: Settings) -> None:
    """The server's own caps and the field aliases, which validators (not types) apply."""
    for schema in components.values():
        props = schema.get("properties", {})
        timeout = props.get("session_timeout_minutes")
        if timeout is not None:
            timeout["maximum"] = min(timeout.get("maximum", 29), settings.max_timeout_minutes)
        wait = props.get("time_ms") if schema.get("title") == "WaitStep" else None
        if wait is not None:
            wait["maximum"] = settings.max_wait_ms
        for alias, name in ALIASES.items():
            if name in props and schema.get("additionalProperties") is False:
                props[alias] = {
                    **copy.deepcopy(props[name]),
                    "title": alias,
                    "deprecated": True,
                    "description": f"alias of {name}; send one of them",
                }


def _query_parameters(
    model: type[BaseModel], components: Mapping[str, Any], all_optional: bool
) -> list[dict[str, Any]]:
    """The model's fields as query parameters (a null choice dropped: a query has none)."""
    schema = components[model.__name__]
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        if prop.get("deprecated"):
            continue  # an alias: documented in the body
        prop = copy.deepcopy(prop)
        choices = [c for c in prop.pop("anyOf", []) if c.get("type") != "null"]
        if len(choices) == 1:
            prop.update(choices[0])
        elif choices:
            prop["anyOf"] = choices
        if prop.get("default", ...) is None:
            del prop["default"]
        prop.pop("title", None)
        description = prop.pop("description", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required and not all_optional,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _operation(
    route: Route, components: Mapping[str, Any], refs: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.endpoint,
        "summary": route.summary,
        "tags": [route.tag],
    }
    if route.description:
        operation["description"] = route.description
    if not route.auth:
        operation["security"] = []
    parameters: list[dict[str, Any]] = []
    for name in re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", route.path):
        known = PATH_PARAMETERS.get(name, {"schema": {"type": "string"}})
        parameters.append({"name": name, "in": "path", "required": True, **known})
    if route.query is not None:
        parameters += _query_parameters(route.query, components, route.query_all_optional)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        name = route.body if isinstance(route.body, str) else route.body.__name__
        operation["requestBody"] = {
            "required": route.body_required,
            "content": {JSON: {"schema": _ref(name)}},
        }
    elif route.body_content is not None:
        operation["requestBody"] = {"required": True, "content": copy.deepcopy(route.body_content)}
    ok: dict[str, Any] = {"description": "OK", "content": {}}
    for media_type, model in route.ok.items():
        schema = refs[model.__name__] if isinstance(model, type) else dict(model)
        ok["content"][media_type] = {"schema": schema}
    if route.ok_headers:
        ok["headers"] = {k: dict(v) for k, v in route.ok_headers.items()}
    responses: dict[str, Any] = {"200": ok}
    for status in route.errors:
        responses[str(status)] = _error_response(status)
    for status, response in route.extra_responses.items():
        responses[str(status)] = copy.deepcopy(response)
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _package_version() -> str:
    try:
        return version("flask_sessions")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without install
        return "0"


def _notte_note(settings: Settings) -> str:
    """Notte's routes (issue 21) follow Notte's contract, not this document's: said, not listed."""
    if not settings.notte_api:
        return ""
    return (
        f" Notte's API (for Notte's Python SDK) is also served under "
        f"`{settings.url_prefix}{settings.notte_prefix}`; it follows Notte's own contract and "
        "is not described here (the README's compatibility table lists its calls)."
    )


def build_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a server with these settings."""
    components, refs = _schemas(settings)
    paths: dict[str, dict[str, Any]] = {}
    for route in all_routes(settings):
        path = openapi_path(settings.url_prefix + route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, components, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flask_sessions",
            "version": _package_version(),
            "summary": "Live headless Chromium sessions over HTTP",
            "description": "Each session belongs to the principal whose token started it; "
            'anybody else gets 404 for it. Every error is JSON `{"error": ...}`; a 400 '
            "names each wrong field in `fields`." + _notte_note(settings),
        },
        "tags": [
            {"name": "sessions", "description": "start, read, list and close sessions"},
            {"name": "agent", "description": "the agent loop: observe, step, scrape"},
            {"name": "cdp", "description": "attach your own Playwright or Puppeteer"},
            {"name": "live", "description": "watch a session live, and take the wheel"},
            {"name": "recordings", "description": "Playwright traces of recorded sessions"},
            {"name": "profiles", "description": "cookies, storage state and saved profiles"},
            {"name": "files", "description": "a session's files: uploads, downloads, PDFs"},
            {"name": "operations", "description": "probes, metrics and this document"},
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token of SESSIONS_TOKENS, or one the host app's "
                    "verify_token callback accepts",
                }
            },
        },
        "security": [{"bearerAuth": []}],
    }


def register(bp: Blueprint, state: SessionsState) -> Callable[[], Response]:
    """Serve the document at ``/openapi.json`` under the blueprint (no token needed)."""
    document: list[dict[str, Any]] = []

    @bp.get(OPENAPI_PATH, endpoint=OPENAPI_ROUTE.endpoint)
    def openapi() -> Response:
        """This server's OpenAPI 3.1 document (built once, at the first request)."""
        if not document:
            document.append(build_document(state.settings))
        return jsonify(document[0])

    return openapi
