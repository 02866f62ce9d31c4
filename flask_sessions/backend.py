"""The one interface the front (the blueprint) knows: :class:`SessionBackend`.

Embedded mode wires it to :class:`LocalBackend`, the host in this process; cluster mode
to :class:`~flask_sessions.remote.RemoteBackend`, hosts over HTTP. The views never know
which. Every method takes the caller's principal; every error is a ``SessionsError``.
"""

from __future__ import annotations

from typing import Any, Protocol

from . import page_ops
from .errors import InvalidInput
from .manager import SessionManager
from .schemas import (
    CdpTicketResponse,
    ObserveRequest,
    ObserveResponse,
    ScrapeRequest,
    ScrapeResponse,
    SessionResponse,
    Shot,
    StartRequest,
    Status,
    StepRequest,
    StepResponse,
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

    def screenshot(self, principal: str, session_id: str, full_page: bool) -> Shot:
        """A PNG of the session's page (a full page clipped to the pixel cap, and said so)."""
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

    def readiness(self) -> tuple[bool, str]:
        """Whether starts can succeed now, and why not."""
        ...

    def health(self) -> dict[str, Any]:
        """Liveness details for ``/healthz``."""
        ...

    def shutdown(self) -> None:
        """Release everything this backend holds."""
        ...


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

    def screenshot(self, principal: str, session_id: str, full_page: bool) -> Shot:
        return self.manager.screenshot(principal, session_id, full_page)

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

    def readiness(self) -> tuple[bool, str]:
        return self.manager.readiness()

    def health(self) -> dict[str, Any]:
        return {
            "browser_running": self.manager.runtime.browser_connected,
            "active_sessions": self.manager.active_count,
        }

    def shutdown(self) -> None:
        self.manager.shutdown()
