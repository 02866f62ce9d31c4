"""The one interface the front (the blueprint) knows: :class:`SessionBackend`.

Embedded mode wires it to :class:`~flask_sessions.host.local.LocalBackend`, the host in this
process; cluster mode
to :class:`~flask_sessions.cluster.remote.RemoteBackend`, hosts over HTTP. The views never know
which. Every method takes the caller's principal; every error is a ``SessionsError``.
"""

from __future__ import annotations

from typing import IO, Any, Protocol

from flask_sessions.profile_schemas import (
    AddCookiesRequest,
    CookieList,
    CookiesChanged,
    DeleteCookiesQuery,
    ProfileInfo,
    StorageState,
)
from flask_sessions.schemas import (
    CdpTicketResponse,
    FileBody,
    FileList,
    ObserveRequest,
    ObserveResponse,
    RecordingDeleted,
    RecordingStream,
    ScrapeRequest,
    ScrapeResponse,
    ScreenshotQuery,
    SessionResponse,
    Shot,
    StartRequest,
    Status,
    StepRequest,
    StepResponse,
    ViewerRequest,
    ViewerResponse,
)


class SessionBackend(Protocol):
    """Where sessions live. Example::

    backend.start("alice", StartRequest())            # -> SessionResponse
    backend.observe("alice", ObserveRequest(session_id=sid, url="http://…"))
    """

    def start(self, principal: str, request: StartRequest) -> SessionResponse:
        """Create a session (or touch ``request.session_id``)."""
        ...

    def observe(self, principal: str, request: ObserveRequest) -> ObserveResponse:
        """Navigate if asked, then describe the page."""
        ...

    def step(self, principal: str, request: StepRequest) -> StepResponse:
        """Run one action and observe the result."""
        ...

    def scrape(self, principal: str, request: ScrapeRequest) -> ScrapeResponse:
        """The page (or a part) as Markdown, text or HTML."""
        ...

    def screenshot(self, principal: str, session_id: str, query: ScreenshotQuery) -> Shot:
        """The session's page as PNG, JPEG or WebP (a full page clipped to the pixel cap, and
        said so)."""
        ...

    def get(self, principal: str, session_id: str) -> SessionResponse:
        """A session's record (not an access)."""
        ...

    def close(self, principal: str, session_id: str) -> SessionResponse:
        """Close a session (idempotent)."""
        ...

    def list_sessions(self, principal: str, status: Status | None) -> list[SessionResponse]:
        """The principal's sessions, oldest first."""
        ...

    def cdp_ticket(self, principal: str, session_id: str) -> CdpTicketResponse:
        """A one-use ticket and the ``cdp_url`` that takes it."""
        ...

    # live view and recordings (issue 20)
    def viewer(
        self, principal: str, session_id: str, request: ViewerRequest, page_url: str
    ) -> ViewerResponse:
        """A one-use viewer_url: ``page_url`` (the live page) with its ticket in the fragment."""
        ...

    def viewer_socket(self, session_id: str) -> str | None:
        """The ws(s):// URL the live page of ``session_id`` connects to (no principal: the
        page holds no credential but its ticket); None when there is none."""
        ...

    def recording(self, principal: str, session_id: str) -> RecordingStream:
        """The session's trace.zip (the trace so far while it records), streamed."""
        ...

    def delete_recording(self, principal: str, session_id: str) -> RecordingDeleted:
        """Delete the session's recording (stopping it if it runs)."""
        ...

    # profiles (issue 18): cookies and state of a live session, and stored profiles

    def cookies(self, principal: str, session_id: str, url: str | None) -> CookieList:
        """The session's cookies (those ``url`` would be sent, if given)."""
        ...

    def add_cookies(
        self, principal: str, session_id: str, request: AddCookiesRequest
    ) -> CookiesChanged:
        """Add cookies to the session."""
        ...

    def delete_cookies(
        self, principal: str, session_id: str, query: DeleteCookiesQuery
    ) -> CookiesChanged:
        """Delete the session's cookies matching every given filter."""
        ...

    def session_state(self, principal: str, session_id: str) -> dict[str, Any]:
        """The session's storage state (Playwright's JSON, IndexedDB included)."""
        ...

    def save_profile(self, principal: str, session_id: str) -> ProfileInfo:
        """Write a persisting session's state back into its profile now."""
        ...

    def create_profile(self, principal: str, name: str) -> ProfileInfo:
        """A new, empty profile."""
        ...

    def list_profiles(self, principal: str) -> list[ProfileInfo]:
        """The principal's profiles, oldest first."""
        ...

    def get_profile(self, principal: str, profile_id: str) -> ProfileInfo:
        """A profile's metadata (never a cookie value)."""
        ...

    def delete_profile(self, principal: str, profile_id: str) -> ProfileInfo:
        """Delete a profile (409 while a persisting session holds it)."""
        ...

    def profile_state(self, principal: str, profile_id: str) -> dict[str, Any]:
        """A profile's storage state, to load in Playwright or elsewhere."""
        ...

    def put_profile_state(
        self, principal: str, profile_id: str, state: StorageState
    ) -> ProfileInfo:
        """Replace a profile's state (a login made elsewhere)."""
        ...

    # --- session files (issue 19)
    def upload_files(
        self,
        principal: str,
        session_id: str,
        body: IO[bytes],
        content_type: str | None,
        content_length: int | None,
    ) -> FileList:
        """Store the file parts of a multipart body (read as a stream); the stored files."""
        ...

    def list_files(self, principal: str, session_id: str) -> FileList:
        """The session's files."""
        ...

    def get_file(
        self, principal: str, session_id: str, name: str, byte_range: str | None
    ) -> FileBody:
        """One complete file's bytes (``byte_range``: an HTTP ``Range`` header)."""
        ...

    def zip_files(self, principal: str, session_id: str) -> FileBody:
        """Every complete file, as one zip, streamed."""
        ...

    def delete_file(self, principal: str, session_id: str, name: str) -> FileList:
        """Delete a file (a running download is cancelled); the files left."""
        ...

    def readiness(self) -> tuple[bool, str]:
        """Whether starts can succeed now, and why not."""
        ...

    def health(self) -> dict[str, Any]:
        """Liveness details for ``/healthz``."""
        ...

    def shutdown(self) -> None:
        """Release everything this backend holds."""
        ...
