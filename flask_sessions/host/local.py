"""``LocalBackend``: the :class:`~flask_sessions.front.backend.SessionBackend` of the host in this
process (embedded mode, and every host behind its internal API)."""

from __future__ import annotations

from typing import IO, Any

from werkzeug.http import parse_range_header

from flask_sessions.errors import InvalidInput
from flask_sessions.host import filestream, pdfview, storage
from flask_sessions.host.files import FileEntry, SessionFiles
from flask_sessions.host.manager import SessionManager
from flask_sessions.page import ops as page_ops
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


class LocalBackend:
    """The host in this process: a :class:`SessionManager` (embedded mode, and hosts)."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    def start(self, principal: str, request: StartRequest) -> SessionResponse:
        return self.manager.start(principal, request)

    def observe(self, principal: str, request: ObserveRequest) -> ObserveResponse:
        return self.manager.observe(principal, request)

    def step(self, principal: str, request: StepRequest) -> StepResponse:
        return self.manager.step(principal, request)

    def scrape(self, principal: str, request: ScrapeRequest) -> ScrapeResponse:
        """The page's source comes from the loop; conversion runs here, in the caller's
        thread, so a large page never stalls other sessions."""
        session, (source, info) = self.manager.scrape(principal, request)
        if isinstance(source, pdfview.PdfView):  # the URL is a PDF (session files, issue 19)
            success, message, content = pdfview.scrape_answer(
                source, request.format, request.selector
            )
            return ScrapeResponse(
                session=session,
                success=success,
                message=message,
                url=info.url,
                title=info.title,
                format=request.format,
                content=content,
                content_type=pdfview.PDF,
                pages=source.pdf.pages if source.pdf else None,
            )
        if source is None:
            success, message, content = False, f"selector {request.selector!r} matched nothing", ""
        else:
            what = request.selector or "the page"
            success, message = True, f"scraped {what}"
            content = page_ops.convert(source, request.format)
        return ScrapeResponse(
            session=session,
            success=success,
            message=message,
            url=info.url,
            title=info.title,
            format=request.format,
            content=content,
        )

    def screenshot(self, principal: str, session_id: str, query: ScreenshotQuery) -> Shot:
        return self.manager.screenshot(principal, session_id, query)

    def get(self, principal: str, session_id: str) -> SessionResponse:
        return self.manager.get(principal, session_id)

    def close(self, principal: str, session_id: str) -> SessionResponse:
        return self.manager.close(principal, session_id)

    def list_sessions(self, principal: str, status: Status | None) -> list[SessionResponse]:
        return self.manager.list_sessions(principal, status)

    def cdp_ticket(self, principal: str, session_id: str) -> CdpTicketResponse:
        """Needs a request context: the URL is built from the request's host."""
        cdp = self.manager.cdp
        if cdp is None:
            raise InvalidInput("CDP is off on this server (SESSIONS_CDP=false)")
        ticket, expires_at = cdp.ticket(principal, session_id)
        url = cdp.url_for(session_id) or ""
        return CdpTicketResponse(
            session_id=session_id,
            ticket=ticket,
            expires_at=expires_at,
            cdp_url=f"{url}?ticket={ticket}",
        )

    # live view and recordings (issue 20)
    def viewer(
        self, principal: str, session_id: str, request: ViewerRequest, page_url: str
    ) -> ViewerResponse:
        cdp = self.manager.cdp
        if cdp is None:
            raise InvalidInput(
                "the live view travels on the server's WebSocket, and SESSIONS_CDP is off on "
                "this server; turn it on to watch sessions"
            )
        return cdp.live.mint(principal, session_id, request, page_url)

    def viewer_socket(self, session_id: str) -> str | None:
        """Needs a request context: the URL is built from the request's host."""
        cdp = self.manager.cdp
        return cdp.live.socket_url(session_id) if cdp is not None else None

    def recording(self, principal: str, session_id: str) -> RecordingStream:
        found = self.manager.recordings.open(principal, session_id)
        return RecordingStream(found.chunks(), found.size, found.state, found.filename)

    def delete_recording(self, principal: str, session_id: str) -> RecordingDeleted:
        return self.manager.recordings.delete(principal, session_id)

    # profiles (issue 18): session-bound calls run on the loop under the session's lock;
    # stored profiles are the room's, from this thread

    def cookies(self, principal: str, session_id: str, url: str | None) -> CookieList:
        return self.manager.on_session(
            principal,
            session_id,
            "reading cookies",
            lambda r, live: storage.cookies(live, r.session_id, url),
        )

    def add_cookies(
        self, principal: str, session_id: str, request: AddCookiesRequest
    ) -> CookiesChanged:
        return self.manager.on_session(
            principal,
            session_id,
            "adding cookies",
            lambda r, live: storage.add_cookies(live, r.session_id, request),
        )

    def delete_cookies(
        self, principal: str, session_id: str, query: DeleteCookiesQuery
    ) -> CookiesChanged:
        return self.manager.on_session(
            principal,
            session_id,
            "deleting cookies",
            lambda r, live: storage.delete_cookies(live, r.session_id, query),
        )

    def session_state(self, principal: str, session_id: str) -> dict[str, Any]:
        return self.manager.on_session(
            principal,
            session_id,
            "reading the storage state",
            lambda _r, live: storage.storage_state(live),
        )

    def save_profile(self, principal: str, session_id: str) -> ProfileInfo:
        room = self.manager.profiles
        return self.manager.on_session(principal, session_id, "saving the profile", room.save_now)

    def create_profile(self, principal: str, name: str) -> ProfileInfo:
        return self.manager.profiles.create(principal, name)

    def list_profiles(self, principal: str) -> list[ProfileInfo]:
        return self.manager.profiles.list(principal)

    def get_profile(self, principal: str, profile_id: str) -> ProfileInfo:
        return self.manager.profiles.info(principal, profile_id)

    def delete_profile(self, principal: str, profile_id: str) -> ProfileInfo:
        return self.manager.profiles.delete(principal, profile_id)

    def profile_state(self, principal: str, profile_id: str) -> dict[str, Any]:
        return self.manager.profiles.export(principal, profile_id)

    def put_profile_state(
        self, principal: str, profile_id: str, state: StorageState
    ) -> ProfileInfo:
        return self.manager.profiles.replace(principal, profile_id, state)

    # --- session files (issue 19): the I/O runs in the caller's thread, not on the loop
    def upload_files(
        self,
        principal: str,
        session_id: str,
        body: IO[bytes],
        content_type: str | None,
        content_length: int | None,
    ) -> FileList:
        files = self.manager.session_files(principal, session_id, touch=True)
        stored = filestream.store_multipart(files, body, content_type)
        return _listing(session_id, files, stored)

    def list_files(self, principal: str, session_id: str) -> FileList:
        files = self.manager.session_files(principal, session_id, touch=False)
        return _listing(session_id, files)

    def get_file(
        self, principal: str, session_id: str, name: str, byte_range: str | None
    ) -> FileBody:
        files = self.manager.session_files(principal, session_id, touch=False)
        entry = files.get(name)
        handle = open(files.path(entry), "rb")  # noqa: SIM115 - closed by the answer
        size = entry.size
        headers = {
            **filestream.attachment_headers(entry.name),
            "Accept-Ranges": "bytes",
            "ETag": f'"{entry.sha256}"',
        }
        start, length, status = 0, size, 200
        wanted = parse_range_header(byte_range) if byte_range else None
        span = wanted.range_for_length(size) if wanted is not None else None
        if span is not None:
            start, stop = span
            length, status = stop - start, 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        return FileBody(
            chunks=filestream.iter_handle(handle, start, length),
            content_type=filestream.served_type(entry.content_type),
            headers=headers,
            length=length,
            status=status,
            close=handle.close,
            file=handle,
            start=start,
        )

    def zip_files(self, principal: str, session_id: str) -> FileBody:
        files = self.manager.session_files(principal, session_id, touch=False)
        members = [(entry, files.path(entry)) for entry in files.complete()]
        return FileBody(
            chunks=filestream.iter_zip(members),
            content_type="application/zip",
            headers=filestream.attachment_headers(f"{session_id}-files.zip"),
        )

    def delete_file(self, principal: str, session_id: str, name: str) -> FileList:
        self.manager.delete_file(principal, session_id, name)
        return self.list_files(principal, session_id)

    def readiness(self) -> tuple[bool, str]:
        return self.manager.readiness()

    def health(self) -> dict[str, Any]:
        return {
            "browser_running": self.manager.runtime.browser_connected,
            "active_sessions": self.manager.active_count,
        }

    def shutdown(self) -> None:
        self.manager.shutdown()


def _listing(session_id: str, files: SessionFiles, only: list[FileEntry] | None = None) -> FileList:
    """The session's files (or just ``only``), with the bytes used and the limit."""
    return FileList(
        session_id=session_id,
        files=[e.info() for e in only] if only is not None else files.listing(),
        total_bytes=files.used_bytes(),
        limit_bytes=files.limit_bytes,
    )
