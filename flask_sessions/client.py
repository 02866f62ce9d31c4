"""A typed Python client of flask_sessions, sync and async, on httpx.

::

    from flask_sessions.client import SessionsClient

    with SessionsClient("http://127.0.0.1:8000", token) as client:
        with client.session(url="https://example.org") as s:   # closed on exit, even on error
            page = s.observe()
            s.step(type="click", id=page.observation.actions[0].id)

Every method returns the server's own pydantic models (:mod:`flask_sessions.schemas`), and
every error answer becomes an exception of :class:`SessionsError`'s tree (``SessionNotFound``,
``SessionEnded``, ``CapacityReached``, ``InvalidRequest``…) carrying the server's message.
Keyword arguments are validated by the same models the server validates with, before
anything is sent. Only safe retries happen: a request that surely never reached the server
(connect errors), any idempotent request after a transport error, and 429 (or 503 with
``Retry-After``), waiting what ``Retry-After`` says within :class:`Retries`' limits.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Generic, Literal, Required, Self, TypedDict, TypeVar, Unpack
from urllib.parse import quote, unquote

import httpx
from pydantic import BaseModel, ValidationError

from flask_sessions import __version__, schemas
from flask_sessions.errors import InvalidInput
from flask_sessions.options import ColorScheme, Permission, ResourceType
from flask_sessions.profile_schemas import (
    AddCookiesRequest,
    CookieInfo,
    CookieList,
    CookiesChanged,
    CookiesQuery,
    DeleteCookiesQuery,
    ProfileCreate,
    ProfileInfo,
    ProfileList,
    ProfileRef,
    StorageState,
)
from flask_sessions.schemas import (
    CdpTicketResponse,
    FileList,
    ImageFormat,
    ListQuery,
    ObserveRequest,
    ObserveResponse,
    RecordingDeleted,
    ScrapeRequest,
    ScrapeResponse,
    ScreenshotQuery,
    SessionResponse,
    StartRequest,
    Status,
    StepResponse,
    ViewerRequest,
    ViewerResponse,
)

__all__ = [
    "AsyncSession",
    "AsyncSessionsClient",
    "BrowserOptionArgs",
    "BrowserUnavailable",
    "CapacityReached",
    "Conflict",
    "Destination",
    "Downloaded",
    "FileNotFound",
    "GeolocationArg",
    "InsufficientStorage",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "ObserveArgs",
    "OperationTimeout",
    "PageFailed",
    "PageNotResponding",
    "PayloadTooLarge",
    "PointArgs",
    "ProfileInUse",
    "ProfileNotFound",
    "ProxyArg",
    "Recording",
    "Retries",
    "ScrapeArgs",
    "Screenshot",
    "ScreenshotArgs",
    "ServerError",
    "Session",
    "SessionArgs",
    "SessionEnded",
    "SessionNotFound",
    "SessionsClient",
    "SessionsError",
    "StaleAction",
    "StartArgs",
    "StepArgs",
    "TransportError",
    "Unauthorized",
    "Upload",
    "ViewportArg",
]

T = TypeVar("T")

# ------------------------------------------------------------------ exceptions


class SessionsError(Exception):
    """An error answer of the server (or no answer: :class:`TransportError`).

    ``status`` is the HTTP status (None when no answer came), ``message`` the server's
    ``error`` text, ``body`` the whole JSON answer, ``retry_after`` its ``Retry-After`` in
    seconds, if any.
    """

    def __init__(
        self,
        status: int | None,
        message: str,
        body: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body: dict[str, Any] = dict(body or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.status else self.message


class TransportError(SessionsError):
    """No answer: the connection failed or broke, or the answer took too long.

    ``sent`` is False when the request surely never reached the server (it could not
    connect), so a retry cannot run anything twice. The httpx error is ``__cause__``.
    """

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(None, message)
        self.sent = sent


class InvalidRequest(SessionsError):
    """400: a field is wrong; ``fields`` names each (``field``, ``message``, ``fix``, ``got``).

    Also raised before sending when the arguments fail the server's own models.
    """

    @property
    def fields(self) -> list[dict[str, Any]]:
        fields = self.body.get("fields")
        return fields if isinstance(fields, builtins.list) else []


class Unauthorized(SessionsError):
    """401: no token, or one the server does not know."""


class NotFound(SessionsError):
    """404: no such route (is ``base_url``'s prefix right?)."""


class SessionNotFound(NotFound):
    """404: no such session for this token (never existed, someone else's, or purged)."""


class ProfileNotFound(NotFound):
    """404: no such profile for this token (never existed, someone else's, or deleted)."""


class MethodNotAllowed(SessionsError):
    """405: the route does not take this method."""


class Conflict(SessionsError):
    """409: the session cannot do this now (see the subclasses)."""


class SessionEnded(Conflict):
    """409: the session is closed, timed out or failed; ``session_status`` says which."""

    @property
    def session_status(self) -> str:
        return str(self.body.get("status", ""))


class StaleAction(Conflict):
    """409: the action id (``stale_id``) is not in the last observation any more."""

    @property
    def stale_id(self) -> str:
        return str(self.body.get("stale_id", ""))


class PageNotResponding(Conflict):
    """409: the session is active but its page does not respond (goto or reload it)."""


class ProfileInUse(Conflict):
    """409: a session (``holder``) holds the profile with ``persist: true``."""

    @property
    def holder(self) -> str:
        return str(self.body.get("holder", ""))


class PayloadTooLarge(SessionsError):
    """413: the body is over the server's ``SESSIONS_MAX_CONTENT_LENGTH``, or a storage state
    over ``SESSIONS_MAX_STATE_MB`` / ``SESSIONS_MAX_PROFILE_MB`` (``body["limit"]``)."""


class CapacityReached(SessionsError):
    """429: every session slot (or this caller's share) is taken; see ``retry_after``."""


class PageFailed(SessionsError):
    """502: the browser is up but the page failed the operation."""


class BrowserUnavailable(SessionsError):
    """503: no Chromium, or low memory (then with ``retry_after``)."""


class OperationTimeout(SessionsError):
    """504: the page or the browser did not answer in time."""


class ServerError(SessionsError):
    """500: a bug in the server (its log has the traceback)."""


class InsufficientStorage(SessionsError):
    """507: the server's disk is below its floor (SESSIONS_MIN_FREE_DISK_MB); retry later."""


class FileNotFound(NotFound):
    """404: no such file in the session (the message lists those there are)."""


_BY_STATUS: dict[int, type[SessionsError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: SessionNotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    429: CapacityReached,
    500: ServerError,
    502: PageFailed,
    503: BrowserUnavailable,
    504: OperationTimeout,
    507: InsufficientStorage,
}


def error_from(response: httpx.Response) -> SessionsError:
    """The exception for an error answer, with the server's message and body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        body: dict[str, Any] = data
    else:  # not ours (a proxy's page?): keep the start of the text
        body = {"error": response.text[:500] or response.reason_phrase}
    message = str(body.get("error") or response.reason_phrase)
    status = response.status_code
    cls = _BY_STATUS.get(status, SessionsError)
    if status == 404 and message.startswith("no such endpoint"):
        cls = NotFound
    elif status == 404 and ("profile_id" in body or message.startswith("no such profile")):
        cls = ProfileNotFound
    elif status == 404 and (message.startswith("no file ") or "is a download that is" in message):
        cls = FileNotFound
    elif status == 409:
        if "holder" in body:
            cls = ProfileInUse
        elif "stale_id" in body:
            cls = StaleAction
        elif body.get("page_not_responding") or body.get("status") == "active":
            cls = PageNotResponding
        elif body.get("status") in {s.value for s in Status}:
            cls = SessionEnded
    return cls(status, message, body, parse_retry_after(response.headers.get("Retry-After")))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date; None if absent or unreadable."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# ------------------------------------------------------------------- retries


@dataclass(frozen=True)
class Retries:
    """When a call is tried again, and for how long at most.

    - a request that never reached the server (connect error): always safe;
    - a GET or a close after any transport error (they change nothing twice);
    - 429, and 503 with ``Retry-After``: after the seconds it says.

    ``max_retries`` bounds the tries after the first; ``max_wait`` the seconds slept in all
    for one call: a ``Retry-After`` that would go past it is raised at once (with its
    ``retry_after``), not slept. Connection errors wait ``backoff`` seconds, doubling.
    ``Retries(max_retries=0)`` turns retrying off.
    """

    max_retries: int = 3
    max_wait: float = 30.0
    backoff: float = 0.2
    max_backoff: float = 5.0

    def delay(
        self, error: SessionsError, idempotent: bool, attempt: int, waited: float
    ) -> float | None:
        """Seconds to wait before retry ``attempt + 1``, or None to raise ``error``."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, TransportError):
            if error.sent and not idempotent:
                return None
            wait = min(self.max_backoff, self.backoff * 2**attempt)
        elif error.status == 429 or (error.status == 503 and error.retry_after is not None):
            wait = 1.0 if error.retry_after is None else error.retry_after
        else:
            return None
        return wait if waited + wait <= self.max_wait else None


# ------------------------------------------------------- arguments and calls


# per-session browser options (issue 18a): options.py's fields, for a call that creates one


class ViewportArg(TypedDict):
    """``viewport``: CSS pixels, each side 200 to 3840."""

    width: int
    height: int


class GeolocationArg(TypedDict, total=False):
    """``geolocation``: where the page is (grants the geolocation permission)."""

    latitude: Required[float]
    longitude: Required[float]
    accuracy: float


class ProxyArg(TypedDict, total=False):
    """``proxy``: an upstream http:// proxy for this session alone."""

    server: Required[str]
    username: str | None
    password: str | None
    bypass: str | None


class BrowserOptionArgs(TypedDict, total=False):
    """A new session's browser options (``BrowserOptionFields`` in options.py): with no
    ``session_id`` only, e.g. ``start(device="iPhone 13", locale="de-DE")``."""

    viewport: ViewportArg | None
    device: str | None
    user_agent: str | None
    locale: str | None
    timezone_id: str | None
    geolocation: GeolocationArg | None
    permissions: builtins.list[Permission] | None
    color_scheme: ColorScheme | None
    extra_http_headers: dict[str, str] | None
    java_script_enabled: bool | None
    block_resources: builtins.list[ResourceType] | None
    proxy: ProxyArg | None


class SessionArgs(BrowserOptionArgs, total=False):
    """What every session call takes besides the id (``SessionFields`` in schemas.py)."""

    keep_alive: bool
    session_timeout_minutes: int
    screenshot: bool | None
    screenshot_format: ImageFormat
    screenshot_quality: int | None
    record: bool  # a Playwright trace of the session from now on (issue 20)


class NewSessionArgs(SessionArgs, total=False):
    """A new session: :meth:`SessionsClient.session`'s arguments (``StartRequest``)."""

    url: str | None
    # profiles (issue 18): a Playwright storage state, or {"id": …, "persist": bool}
    storage_state: StorageState | dict[str, Any] | None
    profile: dict[str, Any] | None


class StartArgs(NewSessionArgs, total=False):
    """``POST /session/start``: a new session, or ``session_id``'s touched."""

    session_id: str | None


class ObserveArgs(SessionArgs, total=False):
    """``POST /env/observe`` (``ObserveRequest``)."""

    url: str | None
    offset: int
    find: str | None
    text_offset: int  # perception II (issue 22)


class ScrapeArgs(SessionArgs, total=False):
    """``POST /env/scrape`` (``ScrapeRequest``)."""

    url: str | None
    selector: str | None
    format: Literal["markdown", "text", "html"]


class ScreenshotArgs(TypedDict, total=False):
    """``GET /session/<id>/screenshot``'s query (``ScreenshotQuery``)."""

    full_page: bool
    format: ImageFormat
    quality: int | None
    touch: bool


class PointArgs(TypedDict):
    """A point or a distance in CSS px (``Point``, ``Offset``)."""

    x: float
    y: float


class StepArgs(SessionArgs, total=False):
    """``POST /env/step``: ``type`` and that action's fields (the ``*Step`` models)."""

    type: Required[
        Literal[
            "click",
            "fill",
            "check",
            "hover",
            "select_dropdown_option",
            "press_key",
            "goto",
            "go_back",
            "go_forward",
            "reload",
            "scroll_down",
            "scroll_up",
            "wait",
            "switch_tab",
            "close_tab",
            "upload_file",
            "drag",
            "type",
        ]
    ]
    id: str | None
    selector: str | None
    value: str | bool | builtins.list[str]
    press_enter: bool
    clear_before_fill: bool
    key: str
    url: str
    amount: int | None
    time_ms: int
    index: int | None
    dialog: Literal["accept", "dismiss"] | None
    # perception II (issue 22): points, drag
    position: PointArgs | None
    to_id: str | None
    to_selector: str | None
    offset: PointArgs | None
    prompt_text: str | None
    files: builtins.list[str] | str  # upload_file: names of the session's files


# The server checks its own caps (timeout, wait); the client checks only the shape.
_CONTEXT = {"max_timeout_minutes": 29, "max_wait_ms": 2**62}

M = TypeVar("M", bound=BaseModel)


def _checked(build: Callable[[], BaseModel]) -> dict[str, Any]:
    """The request model's JSON (only what was given), or InvalidRequest as the server says."""
    try:
        model = build()
    except InvalidInput as exc:
        raise InvalidRequest(400, exc.message, exc.to_json()) from None
    return model.model_dump(mode="json", exclude_unset=True)


def _body(model: type[BaseModel], session_id: str | None, fields: Mapping[str, Any]) -> Any:
    data = dict(fields)
    if session_id is not None:
        data["session_id"] = session_id
    return _checked(lambda: schemas.parse(model, data, _CONTEXT))


def _step_body(session_id: str | None, fields: Mapping[str, Any]) -> Any:
    data = {**fields, **({"session_id": session_id} if session_id is not None else {})}
    return _checked(lambda: schemas.parse_step(data, _CONTEXT))


@dataclass(frozen=True)
class Screenshot:
    """An image of the page: ``data`` in ``format`` (``media_type``).

    ``clipped``: a full page taller than the server's pixel cap was cut to its top;
    ``page_size`` is then the page's whole (width, height).
    """

    data: bytes
    media_type: str
    clipped: bool = False
    page_size: tuple[int, int] | None = None

    @property
    def format(self) -> str:
        """``png``, ``jpeg`` or ``webp``."""
        return self.media_type.removeprefix("image/")


# live view and recordings (issue 20)
@dataclass(frozen=True)
class Recording:
    """A session's Playwright trace (``trace.zip``): its bytes in ``data``, or, when it was
    saved to a file, that ``path``. ``state``: ``recording`` (the trace so far; it goes on),
    ``truncated``, ``saved`` or ``failed``. Open it with
    ``python -m playwright show-trace trace.zip``."""

    state: str
    size: int
    data: bytes | None = None
    path: Path | None = None


def _recording(response: httpx.Response) -> Recording:
    state = response.headers.get("X-Recording-State", "saved")
    return Recording(state, len(response.content), response.content)


def _recording_path(session_id: str) -> str:
    return f"session/{_sid(session_id)}/recording"


class _SessionList(BaseModel):
    sessions: builtins.list[SessionResponse]


def _screenshot(response: httpx.Response) -> Screenshot:
    media_type = response.headers.get("Content-Type", "image/png").split(";")[0].strip()
    clip = response.headers.get("X-Screenshot-Clipped")  # "1280x16384 of 1280x200000"
    page_size = None
    if clip and " of " in clip:
        width, _, height = clip.split(" of ")[1].partition("x")
        page_size = (int(width), int(height))
    return Screenshot(response.content, media_type, bool(clip), page_size)


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One HTTP request and how to read its answer; ``idempotent``: safe to send twice."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, str] | None = None
    idempotent: bool = False
    files: Any = None  # multipart parts (session files: uploads)

    def read(self, response: httpx.Response) -> T:
        try:
            return self.parse(response)
        except (ValidationError, ValueError) as exc:
            raise SessionsError(
                response.status_code,
                f"{self.method} {self.path}: the answer is not what flask_sessions sends "
                f"(is base_url a flask_sessions server?): {str(exc)[:300]}",
            ) from None


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _pid(profile_id: str) -> str:
    """A profile id for a URL path; anything else is refused before it is sent."""
    return str(_checked(lambda: schemas.parse(ProfileRef, {"id": profile_id}))["id"])


def _sid(session_id: str) -> str:
    """A session id for a URL path; anything else is refused before it is sent."""
    return str(_body(schemas.CloseRequest, session_id, {})["session_id"])


class _Calls:
    """The requests of every method, shared by the sync and async clients."""

    @staticmethod
    def start(fields: Mapping[str, Any]) -> _Call[SessionResponse]:
        body = _body(StartRequest, None, fields)
        return _Call("POST", "/session/start", _model(SessionResponse), body)

    @staticmethod
    def get(session_id: str) -> _Call[SessionResponse]:
        return _Call(
            "GET", f"/session/{_sid(session_id)}", _model(SessionResponse), idempotent=True
        )

    @staticmethod
    def list(status: Status | str | None) -> _Call[builtins.list[SessionResponse]]:
        query = _body(ListQuery, None, {} if status is None else {"status": status})
        return _Call(
            "GET",
            "/sessions",
            lambda r: _SessionList.model_validate_json(r.content).sessions,
            params=query,
            idempotent=True,
        )

    @staticmethod
    def close(session_id: str) -> _Call[SessionResponse]:
        body = {"session_id": _sid(session_id)}
        return _Call("POST", "/session/close", _model(SessionResponse), body, idempotent=True)

    @staticmethod
    def observe(session_id: str | None, fields: Mapping[str, Any]) -> _Call[ObserveResponse]:
        body = _body(ObserveRequest, session_id, fields)
        return _Call("POST", "/env/observe", _model(ObserveResponse), body)

    @staticmethod
    def step(session_id: str | None, fields: Mapping[str, Any]) -> _Call[StepResponse]:
        return _Call("POST", "/env/step", _model(StepResponse), _step_body(session_id, fields))

    @staticmethod
    def scrape(session_id: str | None, fields: Mapping[str, Any]) -> _Call[ScrapeResponse]:
        body = _body(ScrapeRequest, session_id, fields)
        return _Call("POST", "/env/scrape", _model(ScrapeResponse), body)

    @staticmethod
    def screenshot(session_id: str, query: Mapping[str, Any]) -> _Call[Screenshot]:
        params = {k: str(v).lower() for k, v in _body(ScreenshotQuery, None, query).items()}
        path = f"/session/{_sid(session_id)}/screenshot"
        return _Call("GET", path, _screenshot, params=params, idempotent=True)

    @staticmethod
    def cdp_ticket(session_id: str) -> _Call[CdpTicketResponse]:
        path = f"/session/{_sid(session_id)}/cdp-ticket"
        return _Call("POST", path, _model(CdpTicketResponse))

    # profiles (issue 18)
    @staticmethod
    def cookies(session_id: str, url: str | None) -> _Call[CookieList]:
        query = _body(CookiesQuery, None, {} if url is None else {"url": url})
        path = f"/session/{_sid(session_id)}/cookies"
        return _Call("GET", path, _model(CookieList), params=query, idempotent=True)

    @staticmethod
    def add_cookies(session_id: str, cookies: Any) -> _Call[CookiesChanged]:
        body = _body(AddCookiesRequest, None, {"cookies": cookies})
        return _Call("POST", f"/session/{_sid(session_id)}/cookies", _model(CookiesChanged), body)

    @staticmethod
    def delete_cookies(session_id: str, filters: Mapping[str, Any]) -> _Call[CookiesChanged]:
        query = _body(DeleteCookiesQuery, None, {k: v for k, v in filters.items() if v})
        path = f"/session/{_sid(session_id)}/cookies"
        return _Call("DELETE", path, _model(CookiesChanged), params=query, idempotent=True)

    @staticmethod
    def state(session_id: str) -> _Call[dict[str, Any]]:
        path = f"/session/{_sid(session_id)}/state"
        return _Call("GET", path, lambda r: dict(r.json()), idempotent=True)

    @staticmethod
    def save_profile(session_id: str) -> _Call[ProfileInfo]:
        return _Call("POST", f"/session/{_sid(session_id)}/profile/save", _model(ProfileInfo))

    @staticmethod
    def create_profile(name: str) -> _Call[ProfileInfo]:
        body = _body(ProfileCreate, None, {"name": name})
        return _Call("POST", "/profiles", _model(ProfileInfo), body)

    @staticmethod
    def list_profiles() -> _Call[builtins.list[ProfileInfo]]:
        return _Call(
            "GET",
            "/profiles",
            lambda r: ProfileList.model_validate_json(r.content).profiles,
            idempotent=True,
        )

    @staticmethod
    def get_profile(profile_id: str) -> _Call[ProfileInfo]:
        path = f"/profiles/{_pid(profile_id)}"
        return _Call("GET", path, _model(ProfileInfo), idempotent=True)

    @staticmethod
    def delete_profile(profile_id: str) -> _Call[ProfileInfo]:
        path = f"/profiles/{_pid(profile_id)}"
        return _Call("DELETE", path, _model(ProfileInfo), idempotent=True)

    @staticmethod
    def profile_state(profile_id: str) -> _Call[dict[str, Any]]:
        path = f"/profiles/{_pid(profile_id)}/state"
        return _Call("GET", path, lambda r: dict(r.json()), idempotent=True)

    @staticmethod
    def put_profile_state(profile_id: str, state: Any) -> _Call[ProfileInfo]:
        data = state.to_playwright() if isinstance(state, StorageState) else state
        body = _checked(lambda: schemas.parse(StorageState, data))
        path = f"/profiles/{_pid(profile_id)}/state"
        return _Call("PUT", path, _model(ProfileInfo), body, idempotent=True)

    # --- session files (issue 19)
    @staticmethod
    def upload(session_id: str, parts: builtins.list[Any]) -> _Call[FileList]:
        path = f"/session/{_sid(session_id)}/files"
        return _Call("POST", path, _model(FileList), files=[("file", part) for part in parts])

    @staticmethod
    def files(session_id: str) -> _Call[FileList]:
        path = f"/session/{_sid(session_id)}/files"
        return _Call("GET", path, _model(FileList), idempotent=True)

    @staticmethod
    def delete_file(session_id: str, name: str) -> _Call[FileList]:
        path = f"/session/{_sid(session_id)}/files/{quote(name, safe='')}"
        return _Call("DELETE", path, _model(FileList), idempotent=True)

    @staticmethod
    def viewer(
        session_id: str, interactive: bool, ttl_seconds: int | None
    ) -> _Call[ViewerResponse]:
        fields: dict[str, Any] = {"interactive": interactive}
        if ttl_seconds is not None:
            fields["ttl_seconds"] = ttl_seconds
        body = _checked(lambda: schemas.parse(ViewerRequest, fields))
        path = f"/session/{_sid(session_id)}/viewer"
        return _Call("POST", path, _model(ViewerResponse), body)

    @staticmethod
    def recording(session_id: str) -> _Call[Recording]:
        return _Call("GET", "/" + _recording_path(session_id), _recording, idempotent=True)

    @staticmethod
    def delete_recording(session_id: str) -> _Call[RecordingDeleted]:
        path = "/" + _recording_path(session_id)
        return _Call("DELETE", path, _model(RecordingDeleted), idempotent=True)

    @staticmethod
    def health() -> _Call[dict[str, Any]]:
        return _Call("GET", "/healthz", lambda r: dict(r.json()), idempotent=True)


class _Retrying(Generic[T]):
    """The retry loop's bookkeeping, shared by the sync and async clients."""

    def __init__(self, call: _Call[T], retries: Retries) -> None:
        self.call = call
        self.retries = retries
        self.attempt = 0
        self.waited = 0.0

    def request(self) -> dict[str, Any]:
        call = self.call
        path = call.path.lstrip("/")  # relative: under base_url's prefix
        request = {"method": call.method, "url": path, "json": call.json, "params": call.params}
        if call.files is not None:
            request["files"] = call.files
        return request

    def retry_in(
        self, response: httpx.Response | None, exc: httpx.TransportError | None
    ) -> float | None:
        """None: the call succeeded (see ``result``); else seconds to wait, or raises."""
        if response is not None and response.is_success:
            self.result = self.call.read(response)
            return None
        call = self.call
        error = _transport_error(call, exc) if response is None else error_from(response)
        delay = self.retries.delay(error, call.idempotent, self.attempt, self.waited)
        if delay is None:
            raise error from exc
        self.attempt += 1
        self.waited += delay
        return delay


def _transport_error(call: _Call[Any], exc: httpx.TransportError | None) -> TransportError:
    # Connect errors (and waiting for a pooled connection) happen before a byte is sent.
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    kind = type(exc).__name__
    return TransportError(f"{call.method} {call.path}: no answer ({kind}: {exc})", sent)


def _http_options(base_url: str, token: str | None, headers: Mapping[str, str] | None) -> Any:
    merged = {"User-Agent": f"flask_sessions-client/{__version__}", **(headers or {})}
    if token is not None:
        merged["Authorization"] = f"Bearer {token}"
    return {"base_url": base_url.rstrip("/") + "/", "headers": merged}


# ----------------------------------------------------------- session files


Upload = str | os.PathLike[str] | tuple[str, bytes | IO[bytes]]
"""A file to upload: a path (its base name is the name asked for), or ``(name, bytes or a
binary file)``."""

Destination = str | os.PathLike[str] | IO[bytes]
"""Where a download goes: a file path, a directory (the file keeps its name), or a writable
binary stream."""


@dataclass(frozen=True)
class Downloaded:
    """A file fetched: its ``name`` in the session, ``size`` in bytes, ``content_type``, and
    the ``path`` it was written to (None when it went to a stream)."""

    name: str
    size: int
    content_type: str
    path: Path | None


def _parts(files: Iterable[Upload]) -> tuple[builtins.list[Any], builtins.list[IO[bytes]]]:
    """The multipart parts, and the files opened for them (the caller closes those)."""
    parts: builtins.list[Any] = []
    opened: builtins.list[IO[bytes]] = []
    for item in files:
        if isinstance(item, tuple):
            name, data = item
            parts.append((name, data, "application/octet-stream"))
        else:
            handle = open(item, "rb")  # noqa: SIM115 - closed by the caller
            opened.append(handle)
            parts.append((os.path.basename(os.fspath(item)), handle, "application/octet-stream"))
    if not parts:
        raise InvalidRequest(400, "upload: give at least one file")
    return parts, opened


def _file_path(session_id: str, name: str | None) -> str:
    if name is None:
        return f"session/{_sid(session_id)}/files.zip"
    return f"session/{_sid(session_id)}/files/{quote(name, safe='')}"


class _Sink:
    """Where a download's bytes go: a stream as given, or a path written through a
    temporary file beside it (so a broken download leaves nothing half-written)."""

    def __init__(self, dest: Destination, name: str) -> None:
        self.path: Path | None = None
        self._temp: Path | None = None
        if isinstance(dest, (str, os.PathLike)):
            path = Path(dest)
            self.path = path / name if path.is_dir() else path
            self._temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
            self.stream: IO[bytes] = self._temp.open("wb")
        else:
            self.stream = dest
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.stream.write(chunk)
        self.size += len(chunk)

    def done(self, ok: bool) -> None:
        if self._temp is None or self.path is None:
            return
        self.stream.close()
        if ok:
            os.replace(self._temp, self.path)
        else:
            self._temp.unlink(missing_ok=True)


def _download_name(response: httpx.Response, fallback: str) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    found = re.search(r"filename\*=UTF-8''([^;]+)", disposition)
    name = unquote(found.group(1)) if found else fallback
    return os.path.basename(name.replace("\\", "/")) or fallback


# ----------------------------------------------------------------- sync client


class SessionsClient:
    """A flask_sessions server at ``base_url`` (with its prefix, if any), as ``token``.

    ::

        with SessionsClient("http://127.0.0.1:8000/browser", token) as client:
            record = client.start(url="http://127.0.0.1:5000/", screenshot=True)
            print(client.scrape(record.session_id, format="text").content)
            client.close(record.session_id)

    ``timeout`` is httpx's (seconds, or an ``httpx.Timeout``); ``retries`` says what is
    retried (:class:`Retries`); ``sleep`` is how it waits (inject one in tests);
    ``transport`` an httpx transport (e.g. ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = 90.0,
        retries: Retries | None = None,
        sleep: Callable[[float], None] = time.sleep,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retries = retries or Retries()
        self._sleep = sleep
        self._token = token
        self.http = httpx.Client(
            timeout=timeout, transport=transport, **_http_options(base_url, token, headers)
        )

    def _send(self, call: _Call[T]) -> T:
        state = _Retrying(call, self.retries)
        while True:
            response = exc = None
            try:
                response = self.http.request(**state.request())
            except httpx.TransportError as error:
                exc = error
            delay = state.retry_in(response, exc)
            if delay is None:
                return state.result
            self._sleep(delay)

    def start(self, **fields: Unpack[StartArgs]) -> SessionResponse:
        """A new session (or ``session_id``'s, touched): ``start(url=…, screenshot=True)``."""
        return self._send(_Calls.start(fields))

    def get(self, session_id: str) -> SessionResponse:
        """The session's record (does not count as access)."""
        return self._send(_Calls.get(session_id))

    def list(self, status: Status | str | None = None) -> builtins.list[SessionResponse]:
        """This token's sessions, oldest first; ``status`` filters (``"active"``…)."""
        return self._send(_Calls.list(status))

    def close(self, session_id: str) -> SessionResponse:
        """Close it; an ended session just returns its record."""
        return self._send(_Calls.close(session_id))

    def observe(
        self, session_id: str | None = None, **fields: Unpack[ObserveArgs]
    ) -> ObserveResponse:
        """Open ``url`` if given, then describe the page (no id: a one-shot session)."""
        return self._send(_Calls.observe(session_id, fields))

    def step(self, session_id: str | None = None, **fields: Unpack[StepArgs]) -> StepResponse:
        """One action, then observe: ``client.step(sid, type="fill", id="T2", value="x")``."""
        return self._send(_Calls.step(session_id, fields))

    def scrape(self, session_id: str | None = None, **fields: Unpack[ScrapeArgs]) -> ScrapeResponse:
        """The page (or ``selector``'s part) as Markdown, text or HTML."""
        return self._send(_Calls.scrape(session_id, fields))

    def screenshot(self, session_id: str, **query: Unpack[ScreenshotArgs]) -> Screenshot:
        """The page as PNG (default), JPEG or WebP (``quality`` 0-100); counts as access
        unless ``touch=False``."""
        return self._send(_Calls.screenshot(session_id, query))

    def cdp_ticket(self, session_id: str) -> CdpTicketResponse:
        """A one-use ``cdp_url`` with a ``?ticket=``, for CDP clients that cannot send headers."""
        return self._send(_Calls.cdp_ticket(session_id))

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: liveness, Chromium's state, the active sessions."""
        return self._send(_Calls.health())

    def viewer(
        self, session_id: str, *, interactive: bool = False, ttl_seconds: int | None = None
    ) -> ViewerResponse:
        """A ``viewer_url`` a person opens to watch the session live (and, if ``interactive``,
        click and type in it); good once, until ``expires_at``. No token is in it."""
        return self._send(_Calls.viewer(session_id, interactive, ttl_seconds))

    def recording(self, session_id: str, path: str | os.PathLike[str] | None = None) -> Recording:
        """The session's trace.zip (while it records: the trace so far). With ``path`` it is
        streamed to that file (written whole or not at all) instead of held in memory."""
        if path is None:
            return self._send(_Calls.recording(session_id))
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        with self.http.stream("GET", _recording_path(session_id)) as response:
            if not response.is_success:
                response.read()
                raise error_from(response)
            size = 0
            with open(partial, "wb") as out:
                for chunk in response.iter_bytes(1024 * 1024):
                    size += out.write(chunk)
        os.replace(partial, target)
        return Recording(response.headers.get("X-Recording-State", "saved"), size, None, target)

    def delete_recording(self, session_id: str) -> RecordingDeleted:
        """Delete the session's recording (tracing stops if it runs)."""
        return self._send(_Calls.delete_recording(session_id))

    # profiles (issue 18)
    def cookies(self, session_id: str, url: str | None = None) -> builtins.list[CookieInfo]:
        """The session's cookies (``CookieInfo``), only those ``url`` would send if given."""
        return self._send(_Calls.cookies(session_id, url)).cookies

    def add_cookies(self, session_id: str, cookies: builtins.list[Any]) -> CookiesChanged:
        """Add cookies (dicts in Playwright's shape: name, value, url or domain + path)."""
        return self._send(_Calls.add_cookies(session_id, cookies))

    def delete_cookies(
        self,
        session_id: str,
        *,
        name: str | None = None,
        domain: str | None = None,
        path: str | None = None,
    ) -> CookiesChanged:
        """Delete the cookies matching every given filter (none: all of them)."""
        filters = {"name": name, "domain": domain, "path": path}
        return self._send(_Calls.delete_cookies(session_id, filters))

    def state(self, session_id: str) -> dict[str, Any]:
        """The session's storage state (Playwright's JSON: ``new_context(storage_state=…)``)."""
        return self._send(_Calls.state(session_id))

    def save_profile(self, session_id: str) -> ProfileInfo:
        """Write a persisting session's state into its profile now."""
        return self._send(_Calls.save_profile(session_id))

    def create_profile(self, name: str) -> ProfileInfo:
        """A new, empty profile: ``client.start(profile={"id": p.profile_id, "persist": True})``."""
        return self._send(_Calls.create_profile(name))

    def list_profiles(self) -> builtins.list[ProfileInfo]:
        """This token's profiles, oldest first."""
        return self._send(_Calls.list_profiles())

    def get_profile(self, profile_id: str) -> ProfileInfo:
        """A profile's metadata (never a cookie value)."""
        return self._send(_Calls.get_profile(profile_id))

    def delete_profile(self, profile_id: str) -> ProfileInfo:
        """Delete a profile; its metadata as it was."""
        return self._send(_Calls.delete_profile(profile_id))

    def profile_state(self, profile_id: str) -> dict[str, Any]:
        """Export a profile's storage state."""
        return self._send(_Calls.profile_state(profile_id))

    def put_profile_state(
        self, profile_id: str, state: StorageState | dict[str, Any]
    ) -> ProfileInfo:
        """Import a storage state (e.g. Playwright's ``context.storage_state()``)."""
        return self._send(_Calls.put_profile_state(profile_id, state))

    # --- session files (issue 19)
    def upload(self, session_id: str, *files: Upload) -> FileList:
        """Upload files (paths, or ``(name, bytes or file)``) into the session's files,
        streamed; the answer lists them under the names they were stored as."""
        parts, opened = _parts(files)
        try:
            return self._send(_Calls.upload(session_id, parts))
        finally:
            for handle in opened:
                handle.close()

    def files(self, session_id: str) -> FileList:
        """The session's files: uploads and downloads, with their state."""
        return self._send(_Calls.files(session_id))

    def delete_file(self, session_id: str, name: str) -> FileList:
        """Delete one (a running download is cancelled); the files left."""
        return self._send(_Calls.delete_file(session_id, name))

    def download(self, session_id: str, name: str | None, dest: Destination) -> Downloaded:
        """Fetch file ``name`` (None: all of them, as a zip) into ``dest``: a path, a
        directory, or a writable binary stream; streamed, never whole in memory."""
        fallback = name or f"{session_id}-files.zip"
        attempt, waited = 0, 0.0
        while True:
            try:
                with self.http.stream("GET", _file_path(session_id, name)) as response:
                    if not response.is_success:
                        response.read()
                        error = error_from(response)
                    else:
                        sink = _Sink(dest, _download_name(response, fallback))
                        ok = False
                        try:
                            for chunk in response.iter_bytes(1 << 20):
                                sink.write(chunk)
                            ok = True
                        finally:
                            sink.done(ok)
                        kind = response.headers.get("Content-Type", "application/octet-stream")
                        return Downloaded(
                            fallback if name is None else name, sink.size, kind, sink.path
                        )
            except httpx.TransportError as exc:
                error = _transport_error(_Call("GET", fallback, str), exc)
                error.__cause__ = exc
            delay = self.retries.delay(error, True, attempt, waited)
            if delay is None:
                raise error
            attempt, waited = attempt + 1, waited + delay
            self._sleep(delay)

    @contextmanager
    def session(self, **fields: Unpack[NewSessionArgs]) -> Iterator[Session]:
        """A new session, closed when the block ends, even by an exception."""
        bound = Session(self, self.start(**fields))
        try:
            yield bound
        except BaseException:
            try:
                self.close(bound.session_id)
            except SessionsError as exc:  # must not hide the block's own error
                bound.close_error = exc
            raise
        with suppress(SessionNotFound):  # already purged: nothing left to close
            bound.record = self.close(bound.session_id)

    def bind(self, session_id: str) -> Session:
        """An existing session's methods, bound to it (nothing is sent; nothing closes it)."""
        return Session(self, None, session_id)

    def close_client(self) -> None:
        """Close the HTTP connections (sessions stay open); ``with`` does it on exit."""
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close_client()


class _Bound:
    """What sync and async bound sessions share: the id, the last record, CDP details."""

    def __init__(self, token: str | None, record: SessionResponse | None, session_id: str) -> None:
        self.session_id = session_id
        self.record = record
        self._token = token
        self.close_error: SessionsError | None = None  # a close that failed after an error

    @property
    def cdp_url(self) -> str | None:
        """The session's CDP WebSocket (``connect_over_cdp(s.cdp_url, headers=s.cdp_headers)``)."""
        return self.record.cdp_url if self.record is not None else None

    @property
    def cdp_headers(self) -> dict[str, str]:
        """The header that authenticates the CDP upgrade (the client's bearer token)."""
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _keep(self, record: SessionResponse) -> None:
        self.record = record

    def __repr__(self) -> str:
        status = self.record.status.value if self.record is not None else "?"
        return f"<{type(self).__name__} {self.session_id} {status}>"


class Session(_Bound):
    """One session's methods; ``record`` is its record as last answered."""

    def __init__(
        self, client: SessionsClient, record: SessionResponse | None, session_id: str = ""
    ) -> None:
        super().__init__(client._token, record, record.session_id if record else session_id)
        self.client = client

    def get(self) -> SessionResponse:
        record = self.client.get(self.session_id)
        self._keep(record)
        return record

    def observe(self, **fields: Unpack[ObserveArgs]) -> ObserveResponse:
        answer = self.client.observe(self.session_id, **fields)
        self._keep(answer.session)
        return answer

    def step(self, **fields: Unpack[StepArgs]) -> StepResponse:
        answer = self.client.step(self.session_id, **fields)
        self._keep(answer.session)
        return answer

    def scrape(self, **fields: Unpack[ScrapeArgs]) -> ScrapeResponse:
        answer = self.client.scrape(self.session_id, **fields)
        self._keep(answer.session)
        return answer

    def screenshot(self, **query: Unpack[ScreenshotArgs]) -> Screenshot:
        return self.client.screenshot(self.session_id, **query)

    def cdp_ticket(self) -> CdpTicketResponse:
        return self.client.cdp_ticket(self.session_id)

    def viewer(
        self, *, interactive: bool = False, ttl_seconds: int | None = None
    ) -> ViewerResponse:
        return self.client.viewer(self.session_id, interactive=interactive, ttl_seconds=ttl_seconds)

    def recording(self, path: str | os.PathLike[str] | None = None) -> Recording:
        return self.client.recording(self.session_id, path)

    def delete_recording(self) -> RecordingDeleted:
        return self.client.delete_recording(self.session_id)

    # profiles (issue 18)
    def cookies(self, url: str | None = None) -> builtins.list[CookieInfo]:
        return self.client.cookies(self.session_id, url)

    def add_cookies(self, cookies: builtins.list[Any]) -> CookiesChanged:
        return self.client.add_cookies(self.session_id, cookies)

    def delete_cookies(self, **filters: str) -> CookiesChanged:
        return self.client.delete_cookies(self.session_id, **filters)

    def state(self) -> dict[str, Any]:
        return self.client.state(self.session_id)

    def save_profile(self) -> ProfileInfo:
        return self.client.save_profile(self.session_id)

    # --- session files (issue 19)
    def upload(self, *files: Upload) -> FileList:
        return self.client.upload(self.session_id, *files)

    def files(self) -> FileList:
        return self.client.files(self.session_id)

    def delete_file(self, name: str) -> FileList:
        return self.client.delete_file(self.session_id, name)

    def download(self, name: str | None, dest: Destination) -> Downloaded:
        return self.client.download(self.session_id, name, dest)

    def close(self) -> SessionResponse:
        record = self.client.close(self.session_id)
        self._keep(record)
        return record


# ---------------------------------------------------------------- async client


class AsyncSessionsClient:
    """:class:`SessionsClient` for asyncio: the same methods, awaited.

    ::

        async with AsyncSessionsClient("http://127.0.0.1:8000", token) as client:
            async with client.session(url="http://127.0.0.1:5000/") as s:
                print((await s.observe()).observation.title)
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = 90.0,
        retries: Retries | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retries = retries or Retries()
        self._sleep = sleep
        self._token = token
        self.http = httpx.AsyncClient(
            timeout=timeout, transport=transport, **_http_options(base_url, token, headers)
        )

    async def _send(self, call: _Call[T]) -> T:
        state = _Retrying(call, self.retries)
        while True:
            response = exc = None
            try:
                response = await self.http.request(**state.request())
            except httpx.TransportError as error:
                exc = error
            delay = state.retry_in(response, exc)
            if delay is None:
                return state.result
            await self._sleep(delay)

    async def start(self, **fields: Unpack[StartArgs]) -> SessionResponse:
        return await self._send(_Calls.start(fields))

    async def get(self, session_id: str) -> SessionResponse:
        return await self._send(_Calls.get(session_id))

    async def list(self, status: Status | str | None = None) -> builtins.list[SessionResponse]:
        return await self._send(_Calls.list(status))

    async def close(self, session_id: str) -> SessionResponse:
        return await self._send(_Calls.close(session_id))

    async def observe(
        self, session_id: str | None = None, **fields: Unpack[ObserveArgs]
    ) -> ObserveResponse:
        return await self._send(_Calls.observe(session_id, fields))

    async def step(self, session_id: str | None = None, **fields: Unpack[StepArgs]) -> StepResponse:
        return await self._send(_Calls.step(session_id, fields))

    async def scrape(
        self, session_id: str | None = None, **fields: Unpack[ScrapeArgs]
    ) -> ScrapeResponse:
        return await self._send(_Calls.scrape(session_id, fields))

    async def screenshot(self, session_id: str, **query: Unpack[ScreenshotArgs]) -> Screenshot:
        return await self._send(_Calls.screenshot(session_id, query))

    async def cdp_ticket(self, session_id: str) -> CdpTicketResponse:
        return await self._send(_Calls.cdp_ticket(session_id))

    async def health(self) -> dict[str, Any]:
        return await self._send(_Calls.health())

    async def viewer(
        self, session_id: str, *, interactive: bool = False, ttl_seconds: int | None = None
    ) -> ViewerResponse:
        return await self._send(_Calls.viewer(session_id, interactive, ttl_seconds))

    async def recording(
        self, session_id: str, path: str | os.PathLike[str] | None = None
    ) -> Recording:
        if path is None:
            return await self._send(_Calls.recording(session_id))
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        async with self.http.stream("GET", _recording_path(session_id)) as response:
            if not response.is_success:
                await response.aread()
                raise error_from(response)
            size = 0
            with open(partial, "wb") as out:
                async for chunk in response.aiter_bytes(1024 * 1024):
                    size += out.write(chunk)
        os.replace(partial, target)
        return Recording(response.headers.get("X-Recording-State", "saved"), size, None, target)

    async def delete_recording(self, session_id: str) -> RecordingDeleted:
        return await self._send(_Calls.delete_recording(session_id))

    # profiles (issue 18)
    async def cookies(self, session_id: str, url: str | None = None) -> builtins.list[CookieInfo]:
        return (await self._send(_Calls.cookies(session_id, url))).cookies

    async def add_cookies(self, session_id: str, cookies: builtins.list[Any]) -> CookiesChanged:
        return await self._send(_Calls.add_cookies(session_id, cookies))

    async def delete_cookies(
        self,
        session_id: str,
        *,
        name: str | None = None,
        domain: str | None = None,
        path: str | None = None,
    ) -> CookiesChanged:
        filters = {"name": name, "domain": domain, "path": path}
        return await self._send(_Calls.delete_cookies(session_id, filters))

    async def state(self, session_id: str) -> dict[str, Any]:
        return await self._send(_Calls.state(session_id))

    async def save_profile(self, session_id: str) -> ProfileInfo:
        return await self._send(_Calls.save_profile(session_id))

    async def create_profile(self, name: str) -> ProfileInfo:
        return await self._send(_Calls.create_profile(name))

    async def list_profiles(self) -> builtins.list[ProfileInfo]:
        return await self._send(_Calls.list_profiles())

    async def get_profile(self, profile_id: str) -> ProfileInfo:
        return await self._send(_Calls.get_profile(profile_id))

    async def delete_profile(self, profile_id: str) -> ProfileInfo:
        return await self._send(_Calls.delete_profile(profile_id))

    async def profile_state(self, profile_id: str) -> dict[str, Any]:
        return await self._send(_Calls.profile_state(profile_id))

    async def put_profile_state(
        self, profile_id: str, state: StorageState | dict[str, Any]
    ) -> ProfileInfo:
        return await self._send(_Calls.put_profile_state(profile_id, state))

    # --- session files (issue 19)
    async def upload(self, session_id: str, *files: Upload) -> FileList:
        parts, opened = _parts(files)
        try:
            return await self._send(_Calls.upload(session_id, parts))
        finally:
            for handle in opened:
                handle.close()

    async def files(self, session_id: str) -> FileList:
        return await self._send(_Calls.files(session_id))

    async def delete_file(self, session_id: str, name: str) -> FileList:
        return await self._send(_Calls.delete_file(session_id, name))

    async def download(self, session_id: str, name: str | None, dest: Destination) -> Downloaded:
        """:meth:`SessionsClient.download` (the stream is written as chunks arrive)."""
        fallback = name or f"{session_id}-files.zip"
        attempt, waited = 0, 0.0
        while True:
            try:
                async with self.http.stream("GET", _file_path(session_id, name)) as response:
                    if not response.is_success:
                        await response.aread()
                        error = error_from(response)
                    else:
                        sink = _Sink(dest, _download_name(response, fallback))
                        ok = False
                        try:
                            async for chunk in response.aiter_bytes(1 << 20):
                                sink.write(chunk)
                            ok = True
                        finally:
                            sink.done(ok)
                        kind = response.headers.get("Content-Type", "application/octet-stream")
                        return Downloaded(
                            fallback if name is None else name, sink.size, kind, sink.path
                        )
            except httpx.TransportError as exc:
                error = _transport_error(_Call("GET", fallback, str), exc)
                error.__cause__ = exc
            delay = self.retries.delay(error, True, attempt, waited)
            if delay is None:
                raise error
            attempt, waited = attempt + 1, waited + delay
            await self._sleep(delay)

    @asynccontextmanager
    async def session(self, **fields: Unpack[NewSessionArgs]) -> AsyncIterator[AsyncSession]:
        """A new session, closed when the block ends, even by an exception."""
        bound = AsyncSession(self, await self.start(**fields))
        try:
            yield bound
        except BaseException:
            try:
                await self.close(bound.session_id)
            except SessionsError as exc:  # must not hide the block's own error
                bound.close_error = exc
            raise
        with suppress(SessionNotFound):  # already purged: nothing left to close
            bound.record = await self.close(bound.session_id)

    def bind(self, session_id: str) -> AsyncSession:
        return AsyncSession(self, None, session_id)

    async def close_client(self) -> None:
        """Close the HTTP connections (sessions stay open); ``async with`` does it on exit."""
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close_client()


class AsyncSession(_Bound):
    """:class:`Session` for asyncio."""

    def __init__(
        self, client: AsyncSessionsClient, record: SessionResponse | None, session_id: str = ""
    ) -> None:
        super().__init__(client._token, record, record.session_id if record else session_id)
        self.client = client

    async def get(self) -> SessionResponse:
        record = await self.client.get(self.session_id)
        self._keep(record)
        return record

    async def observe(self, **fields: Unpack[ObserveArgs]) -> ObserveResponse:
        answer = await self.client.observe(self.session_id, **fields)
        self._keep(answer.session)
        return answer

    async def step(self, **fields: Unpack[StepArgs]) -> StepResponse:
        answer = await self.client.step(self.session_id, **fields)
        self._keep(answer.session)
        return answer

    async def scrape(self, **fields: Unpack[ScrapeArgs]) -> ScrapeResponse:
        answer = await self.client.scrape(self.session_id, **fields)
        self._keep(answer.session)
        return answer

    async def screenshot(self, **query: Unpack[ScreenshotArgs]) -> Screenshot:
        return await self.client.screenshot(self.session_id, **query)

    async def cdp_ticket(self) -> CdpTicketResponse:
        return await self.client.cdp_ticket(self.session_id)

    async def viewer(
        self, *, interactive: bool = False, ttl_seconds: int | None = None
    ) -> ViewerResponse:
        return await self.client.viewer(
            self.session_id, interactive=interactive, ttl_seconds=ttl_seconds
        )

    async def recording(self, path: str | os.PathLike[str] | None = None) -> Recording:
        return await self.client.recording(self.session_id, path)

    async def delete_recording(self) -> RecordingDeleted:
        return await self.client.delete_recording(self.session_id)

    # profiles (issue 18)
    async def cookies(self, url: str | None = None) -> builtins.list[CookieInfo]:
        return await self.client.cookies(self.session_id, url)

    async def add_cookies(self, cookies: builtins.list[Any]) -> CookiesChanged:
        return await self.client.add_cookies(self.session_id, cookies)

    async def delete_cookies(self, **filters: str) -> CookiesChanged:
        return await self.client.delete_cookies(self.session_id, **filters)

    async def state(self) -> dict[str, Any]:
        return await self.client.state(self.session_id)

    async def save_profile(self) -> ProfileInfo:
        return await self.client.save_profile(self.session_id)

    # --- session files (issue 19)
    async def upload(self, *files: Upload) -> FileList:
        return await self.client.upload(self.session_id, *files)

    async def files(self) -> FileList:
        return await self.client.files(self.session_id)

    async def delete_file(self, name: str) -> FileList:
        return await self.client.delete_file(self.session_id, name)

    async def download(self, name: str | None, dest: Destination) -> Downloaded:
        return await self.client.download(self.session_id, name, dest)

    async def close(self) -> SessionResponse:
        record = await self.client.close(self.session_id)
        self._keep(record)
        return record
