"""``RemoteBackend``: the front's side of cluster mode, hosts over HTTP.

A start goes to the host with the most free slots (ties: fewest sessions); every other
call goes to the host that owns the session, named by the first ``HOST_ID_LENGTH``
characters of its id, so routing needs no lookup. Hosts come from a fixed list
(``SESSIONS_HOSTS``: asked for their load, cached briefly) or from the Redis registry
(``SESSIONS_REGISTRY_URL``: one round trip, cached briefly). Calls carry the cluster secret
and the principal; connections are pooled (httpx).
"""

from __future__ import annotations

import functools
import http.client
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, Any, TypeVar, get_args
from urllib.parse import quote, urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx

from flask_sessions import errors
from flask_sessions.cluster.hostapi import API, PRINCIPAL_HEADER, SECRET_HEADER
from flask_sessions.cluster.registry import (
    HostInfo,
    RedisRegistry,
    RegistryUnavailable,
    response_from_record,
)
from flask_sessions.config import Settings
from flask_sessions.errors import (
    BrowserUnavailable,
    CapacityReached,
    SessionNotActive,
    SessionNotFound,
    SessionsError,
)
from flask_sessions.profile_schemas import (
    AddCookiesRequest,
    CookieList,
    CookiesChanged,
    DeleteCookiesQuery,
    ProfileInfo,
    ProfileList,
    StorageState,
)
from flask_sessions.schemas import (
    CdpTicketResponse,
    FileBody,
    FileList,
    ObserveRequest,
    ObserveResponse,
    RecordingDeleted,
    RecordingState,
    RecordingStream,
    ScrapeRequest,
    ScrapeResponse,
    ScreenshotQuery,
    SessionFields,
    SessionResponse,
    Shot,
    StartRequest,
    Status,
    StepRequest,
    StepResponse,
    ViewerRequest,
    ViewerResponse,
)

HOST_ID_LENGTH = 8
STREAM_CHUNK = 1 << 20  # bytes a front passes at a time when a file streams through
PASSED_HEADERS = frozenset(  # a host's headers of a file answer that a front passes on
    {
        "content-disposition",
        "x-content-type-options",
        "content-security-policy",
        "cross-origin-resource-policy",
        "cache-control",
        "accept-ranges",
        "content-range",
        "etag",
    }
)
CONNECT_TIMEOUT = 2.0  # seconds to reach a host (as the pooled client's connect timeout)
ERROR_BODY_BYTES = 1 << 20  # most of a host's error answer read to report it
DIRECTORY_TTL_SECONDS = 0.5  # how long a front trusts what it read of the hosts' load

M = TypeVar("M", SessionResponse, ObserveResponse, StepResponse, ScrapeResponse)

_KINDS: dict[str, type[SessionsError]] = {
    name: cls
    for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, SessionsError)
}


def host_of(session_id: str) -> str:
    return session_id[:HOST_ID_LENGTH]


class RemoteBackend:
    """A :class:`~flask_sessions.front.backend.SessionBackend` over hosts."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        assert settings.cluster_secret
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        timeout = settings.operation_timeout_seconds + 5
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            headers={SECRET_HEADER: settings.cluster_secret},
        )
        self.registry = RedisRegistry(settings.registry_url) if settings.registry_url else None
        self._lock = threading.Lock()
        self._hosts: list[HostInfo] = []
        self._read_at = 0.0
        self._urls: dict[str, str] = {}  # host id -> URL, kept while Redis is away
        self._fixed_ids: dict[str, str] = {}  # fixed list: URL -> host id
        self._cdp_bases: dict[str, str] = {}  # host id -> ws://host:port of its CDP server

    # ------------------------------------------------------------ hosts

    def hosts(self, fresh: bool = False) -> list[HostInfo]:
        """The live hosts and their load (cached for ``DIRECTORY_TTL_SECONDS``)."""
        with self._lock:
            if not fresh and time.monotonic() - self._read_at < DIRECTORY_TTL_SECONDS:
                return list(self._hosts)
        hosts = self.registry.hosts() if self.registry is not None else self._ask_fixed()
        with self._lock:
            self._hosts, self._read_at = hosts, time.monotonic()
            self._urls.update({h.host_id: h.url for h in hosts})
            self._cdp_bases.update({h.host_id: h.cdp_base for h in hosts if h.cdp_base})
        return list(hosts)

    def _ask_fixed(self) -> list[HostInfo]:
        found = []
        for url in self.settings.hosts:
            try:
                data = self.http.get(f"{url}{API}/info", timeout=2.0).json()
            except (httpx.HTTPError, ValueError):
                continue  # down: not a candidate for starts
            self._fixed_ids[url] = str(data["host_id"])
            found.append(HostInfo.from_json({**data, "url": url}))
        return found

    def _url_for(self, principal: str, session_id: str) -> str:
        host_id = host_of(session_id)
        url = self._urls.get(host_id)
        if url is None:
            self.hosts(fresh=True)
            url = self._urls.get(host_id)
        if url is None:
            raise HostGone(self._dead_record(principal, session_id))
        return url

    def _dead_record(self, principal: str, session_id: str) -> SessionResponse | None:
        """The caller's record of a session whose host stopped answering, as the API shows it
        (``error``, naming the host's URL and last heartbeat); None without Redis, or when
        the registry holds no such record of theirs."""
        if self.registry is None:
            return None
        try:
            record = self.registry.record(session_id)
            if record is None or record.get("principal") != principal:
                return None
            seen = self.registry.hosts_seen([record["host_id"]]).get(record["host_id"])
        except RegistryUnavailable as exc:
            raise BrowserUnavailable(
                f"the host of session {session_id} does not answer, and {exc}; retry shortly"
            ) from None
        return response_from_record(record, self.clock(), record["host_id"], seen)

    # ------------------------------------------------------------ calls

    def _send(
        self,
        method: str,
        url: str,
        principal: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        session_id: str | None = None,
    ) -> httpx.Response:
        try:
            response = self.http.request(
                method,
                f"{url}{API}{path}",
                json=body,
                params=params,
                headers={PRINCIPAL_HEADER: principal},
            )
        except httpx.HTTPError as exc:
            if session_id is not None and self.registry is not None:
                with self._lock:
                    self._read_at = 0.0
                try:
                    alive = self.registry.host_alive(host_of(session_id))
                except RegistryUnavailable:
                    alive = True
                if not alive:
                    raise HostGone(self._dead_record(principal, session_id)) from None
            raise BrowserUnavailable(f"the browser host at {url} is unreachable: {exc}") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def _on_owner(
        self, principal: str, session_id: str, method: str, path: str, **kw: Any
    ) -> httpx.Response:
        """A call on the session's host. If that host is gone, the session has ended: 409 with
        its record's status and reason (404 if the caller has no such record)."""
        try:
            return self._reach_owner(principal, session_id, method, path, **kw)
        except HostGone as gone:
            raise gone.error(session_id) from None

    def _reach_owner(
        self, principal: str, session_id: str, method: str, path: str, **kw: Any
    ) -> httpx.Response:
        """:meth:`_on_owner`, but a gone host raises :class:`HostGone` (reads answer with the
        record it carries)."""
        url = self._url_for(principal, session_id)
        return self._send(method, url, principal, path, session_id=session_id, **kw)

    def _placed(self, principal: str, path: str, request: SessionFields, model: type[M]) -> M:
        """A call that may create a session: on the owner, or placed on the freest host."""
        body = request.model_dump(mode="json", exclude_unset=True)
        if request.session_id is not None:
            response = self._on_owner(principal, request.session_id, "POST", path, body=body)
            return model.model_validate(response.json())
        try:
            hosts = self.hosts()
        except RegistryUnavailable as exc:
            raise BrowserUnavailable(f"{exc}; starts resume when it is back") from None
        if not hosts:
            raise BrowserUnavailable(
                "no browser host is available; start one with python -m flask_sessions host"
            )
        full: list[int] = []
        for host in sorted(hosts, key=lambda h: (-h.free, h.active)):
            try:
                response = self._send("POST", host.url, principal, path, body=body)
            except CapacityReached as exc:
                full.append(exc.retry_after)
                continue
            except BrowserUnavailable:
                continue
            with self._lock:  # count it, so the next start before a refresh spreads out
                host.free, host.active = host.free - 1, host.active + 1
            return model.model_validate(response.json())
        if full:
            raise CapacityReached(
                "every browser host is full; close a session (POST /session/close) or retry "
                "after Retry-After seconds",
                retry_after=min(full),
            )
        raise BrowserUnavailable("no browser host answered; retry shortly")

    # ------------------------------------------------------ the protocol

    def start(self, principal: str, request: StartRequest) -> SessionResponse:
        return self._placed(principal, "/start", request, SessionResponse)

    def observe(self, principal: str, request: ObserveRequest) -> ObserveResponse:
        return self._placed(principal, "/observe", request, ObserveResponse)

    def step(self, principal: str, request: StepRequest) -> StepResponse:
        return self._placed(principal, "/step", request, StepResponse)

    def scrape(self, principal: str, request: ScrapeRequest) -> ScrapeResponse:
        return self._placed(principal, "/scrape", request, ScrapeResponse)

    def screenshot(self, principal: str, session_id: str, query: ScreenshotQuery) -> Shot:
        params = {k: str(v).lower() for k, v in query.model_dump(exclude_none=True).items()}
        path = f"/sessions/{session_id}/screenshot"
        response = self._on_owner(principal, session_id, "GET", path, params=params)
        width, height = _size(response.headers.get("X-Shot-Size"))
        page_width, page_height = _size(response.headers.get("X-Shot-Page-Size"))
        return Shot(response.content, width, height, page_width, page_height, query.format)

    def get(self, principal: str, session_id: str) -> SessionResponse:
        """The record; a session whose host died reads as its ``error`` record (200), as
        any other ended session does."""
        path = f"/sessions/{session_id}"
        try:
            response = self._reach_owner(principal, session_id, "GET", path)
        except HostGone as gone:
            return gone.record_or_404(session_id)
        return SessionResponse.model_validate(response.json())

    def close(self, principal: str, session_id: str) -> SessionResponse:
        """Closing a session whose host died returns its ``error`` record unchanged, as
        closing any ended session does."""
        body = {"session_id": session_id}
        try:
            response = self._reach_owner(principal, session_id, "POST", "/close", body=body)
        except HostGone as gone:
            return gone.record_or_404(session_id)
        return SessionResponse.model_validate(response.json())

    def list_sessions(self, principal: str, status: Status | None) -> list[SessionResponse]:
        """Across every host, oldest first."""
        if self.registry is not None:
            return self._list_from_registry(principal, status)
        found: list[SessionResponse] = []
        params = {"status": status.value} if status else None
        for host in self.hosts(fresh=True):
            try:
                response = self._send("GET", host.url, principal, "/sessions", params=params)
            except BrowserUnavailable:
                continue
            found += [SessionResponse.model_validate(s) for s in response.json()["sessions"]]
        return sorted(found, key=lambda s: s.created_at)

    def _list_from_registry(self, principal: str, status: Status | None) -> list[SessionResponse]:
        try:
            records = self.registry.records(principal) if self.registry else []
            live = {h.host_id for h in self.hosts(fresh=True)}
        except RegistryUnavailable as exc:
            raise BrowserUnavailable(str(exc)) from None
        now = self.clock()
        gone = sorted(
            {r["host_id"] for r in records if r["host_id"] not in live and r["status"] == "active"}
        )
        try:
            seen = self.registry.hosts_seen(gone) if self.registry and gone else {}
        except RegistryUnavailable as exc:
            raise BrowserUnavailable(str(exc)) from None
        out = []
        for record in records:
            host_id = record["host_id"]
            dead = host_id if host_id not in live else None
            response = response_from_record(record, now, dead, seen.get(host_id))
            base = self._cdp_bases.get(record["host_id"])
            if base and response.status is Status.active:
                response.cdp_url = f"{base}/cdp/{response.session_id}"
            if status is None or response.status is status:
                out.append(response)
        return out

    def cdp_ticket(self, principal: str, session_id: str) -> CdpTicketResponse:
        """Minted by the owner host: its CDP WebSocket takes the ticket."""
        path = f"/sessions/{session_id}/cdp-ticket"
        response = self._on_owner(principal, session_id, "POST", path)
        return CdpTicketResponse.model_validate(response.json())

    # live view and recordings (issue 20)
    def viewer(
        self, principal: str, session_id: str, request: ViewerRequest, page_url: str
    ) -> ViewerResponse:
        """Minted by the owner host: its WebSocket server takes the ticket."""
        body = {**request.model_dump(mode="json", exclude_none=True), "page_url": page_url}
        path = f"/sessions/{session_id}/viewer"
        response = self._on_owner(principal, session_id, "POST", path, body=body)
        return ViewerResponse.model_validate(response.json())

    def viewer_socket(self, session_id: str) -> str | None:
        """The owner host's WebSocket server, as its cdp_url names it."""
        host_id = host_of(session_id)
        base = self._cdp_bases.get(host_id)
        if base is None:
            try:
                self.hosts(fresh=True)
            except RegistryUnavailable:
                return None
            base = self._cdp_bases.get(host_id)
        return f"{base}/live/{session_id}" if base else None

    def recording(self, principal: str, session_id: str) -> RecordingStream:
        """Streamed from the owner host as it reads it (never held whole here)."""
        try:
            url = self._url_for(principal, session_id)
        except HostGone:  # the recording was on that host
            raise SessionNotFound(
                f"no recording of session {session_id!r}: the host that recorded it is gone"
            ) from None
        request = self.http.build_request(
            "GET",
            f"{url}{API}/sessions/{session_id}/recording",
            headers={PRINCIPAL_HEADER: principal},
        )
        try:
            response = self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise BrowserUnavailable(f"the browser host at {url} is unreachable: {exc}") from None
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            raise _error_from(response)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.iter_raw(1024 * 1024)
            finally:
                response.close()

        length = response.headers.get("Content-Length")
        state: RecordingState = "saved"
        for known in get_args(RecordingState):
            if response.headers.get("X-Recording-State") == known:
                state = known
        return RecordingStream(
            chunks(),
            int(length) if length and length.isdigit() else None,
            state,
            f"trace-{session_id}.zip",
        )

    def delete_recording(self, principal: str, session_id: str) -> RecordingDeleted:
        path = f"/sessions/{session_id}/recording"
        try:
            response = self._reach_owner(principal, session_id, "DELETE", path)
        except HostGone:
            raise SessionNotFound(
                f"no recording of session {session_id!r}: the host that recorded it is gone"
            ) from None
        return RecordingDeleted.model_validate(response.json())

    # profiles (issue 18): a session's cookies and state live on its owner; profiles live in
    # the hosts' shared store (Redis), so any host answers for them

    def cookies(self, principal: str, session_id: str, url: str | None) -> CookieList:
        params = {"url": url} if url else None
        path = f"/sessions/{session_id}/cookies"
        response = self._on_owner(principal, session_id, "GET", path, params=params)
        return CookieList.model_validate(response.json())

    def add_cookies(
        self, principal: str, session_id: str, request: AddCookiesRequest
    ) -> CookiesChanged:
        body = request.model_dump(mode="json", exclude_unset=True)
        path = f"/sessions/{session_id}/cookies"
        response = self._on_owner(principal, session_id, "POST", path, body=body)
        return CookiesChanged.model_validate(response.json())

    def delete_cookies(
        self, principal: str, session_id: str, query: DeleteCookiesQuery
    ) -> CookiesChanged:
        params = query.model_dump(exclude_none=True)
        path = f"/sessions/{session_id}/cookies"
        response = self._on_owner(principal, session_id, "DELETE", path, params=params)
        return CookiesChanged.model_validate(response.json())

    def session_state(self, principal: str, session_id: str) -> dict[str, Any]:
        path = f"/sessions/{session_id}/state"
        state: dict[str, Any] = self._on_owner(principal, session_id, "GET", path).json()
        return state

    def save_profile(self, principal: str, session_id: str) -> ProfileInfo:
        path = f"/sessions/{session_id}/profile/save"
        response = self._on_owner(principal, session_id, "POST", path)
        return ProfileInfo.model_validate(response.json())

    def _on_any(self, principal: str, method: str, path: str, **kw: Any) -> httpx.Response:
        """A profile call, on the freest host that answers (they share the store)."""
        try:
            hosts = self.hosts()
        except RegistryUnavailable as exc:
            raise BrowserUnavailable(f"{exc}; profiles answer again when it is back") from None
        for host in sorted(hosts, key=lambda h: (-h.free, h.active)):
            try:
                return self._send(method, host.url, principal, path, **kw)
            except BrowserUnavailable as exc:
                if "unreachable" not in exc.message:
                    raise
        raise BrowserUnavailable(
            "no browser host answered, and profiles are reached through hosts; retry shortly"
        )

    def create_profile(self, principal: str, name: str) -> ProfileInfo:
        response = self._on_any(principal, "POST", "/profiles", body={"name": name})
        return ProfileInfo.model_validate(response.json())

    def list_profiles(self, principal: str) -> list[ProfileInfo]:
        response = self._on_any(principal, "GET", "/profiles")
        return ProfileList.model_validate(response.json()).profiles

    def get_profile(self, principal: str, profile_id: str) -> ProfileInfo:
        response = self._on_any(principal, "GET", f"/profiles/{profile_id}")
        return ProfileInfo.model_validate(response.json())

    def delete_profile(self, principal: str, profile_id: str) -> ProfileInfo:
        response = self._on_any(principal, "DELETE", f"/profiles/{profile_id}")
        return ProfileInfo.model_validate(response.json())

    def profile_state(self, principal: str, profile_id: str) -> dict[str, Any]:
        state: dict[str, Any] = self._on_any(
            principal, "GET", f"/profiles/{profile_id}/state"
        ).json()
        return state

    def put_profile_state(
        self, principal: str, profile_id: str, state: StorageState
    ) -> ProfileInfo:
        body = state.to_playwright()
        response = self._on_any(principal, "PUT", f"/profiles/{profile_id}/state", body=body)
        return ProfileInfo.model_validate(response.json())

    # --- session files (issue 19): streamed through, never whole in this process
    def upload_files(
        self,
        principal: str,
        session_id: str,
        body: IO[bytes],
        content_type: str | None,
        content_length: int | None,
    ) -> FileList:
        headers = {PRINCIPAL_HEADER: principal, "Content-Type": content_type or ""}
        if content_length is not None:
            headers["Content-Length"] = str(content_length)
        path = f"/sessions/{session_id}/files"

        def chunks() -> Iterator[bytes]:
            while data := body.read(STREAM_CHUNK):
                yield data

        response = self._stream_to_owner(
            principal, session_id, "POST", path, headers=headers, content=chunks()
        )
        try:
            response.read()
        finally:
            response.close()
        return FileList.model_validate(response.json())

    def list_files(self, principal: str, session_id: str) -> FileList:
        response = self._on_owner(principal, session_id, "GET", f"/sessions/{session_id}/files")
        return FileList.model_validate(response.json())

    def get_file(
        self, principal: str, session_id: str, name: str, byte_range: str | None
    ) -> FileBody:
        headers = {PRINCIPAL_HEADER: principal}
        if byte_range:
            headers["Range"] = byte_range
        path = f"/sessions/{session_id}/files/{quote(name, safe='')}"
        return self._file_from_owner(principal, session_id, path, headers)

    def zip_files(self, principal: str, session_id: str) -> FileBody:
        path = f"/sessions/{session_id}/files.zip"
        return self._file_from_owner(principal, session_id, path, {PRINCIPAL_HEADER: principal})

    def _file_from_owner(
        self, principal: str, session_id: str, path: str, headers: dict[str, str]
    ) -> FileBody:
        """A file body from the owner, read as it comes. Over a plain socket of its own
        (http.client: each read is one recv into one piece of up to STREAM_CHUNK bytes),
        which costs this process a third of the CPU of httpx's 64 KiB reads through h11's
        buffer; through httpx when a proxy from the environment applies to the host."""
        try:
            url = self._url_for(principal, session_id)
        except HostGone as gone:
            raise gone.error(session_id) from None
        target = urlsplit(f"{url}{API}{path}")
        proxies = set(getproxies())
        if target.scheme not in ("http", "https") or (
            proxies & {target.scheme, "all"} and not proxy_bypass(target.hostname or "")
        ):
            return self._file_body(
                self._stream_to_owner(principal, session_id, "GET", path, headers=headers)
            )
        if target.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                target.hostname or "", target.port, timeout=CONNECT_TIMEOUT, context=_tls()
            )
        else:
            conn = http.client.HTTPConnection(
                target.hostname or "", target.port, timeout=CONNECT_TIMEOUT
            )
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self.settings.operation_timeout_seconds + 5)
            query = f"?{target.query}" if target.query else ""
            conn.request(
                "GET",
                target.path + query,
                headers={SECRET_HEADER: self.settings.cluster_secret or "", **headers},
            )
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise BrowserUnavailable(f"the browser host at {url} is unreachable: {exc}") from None
        if response.status >= 400:
            try:
                body = response.read(ERROR_BODY_BYTES)
            except (OSError, http.client.HTTPException):
                body = b""
            finally:
                conn.close()
            raise _error_from(
                httpx.Response(response.status, headers=response.getheaders(), content=body)
            )

        def chunks() -> Iterator[bytes]:
            while data := response.read1(STREAM_CHUNK):
                yield data
            if response.length:  # the host's answer ended early (read1 just stops)
                raise http.client.IncompleteRead(b"", response.length)

        length = response.getheader("Content-Length")
        return FileBody(
            chunks=chunks(),
            content_type=response.getheader("Content-Type") or "application/octet-stream",
            headers={k: v for k, v in response.getheaders() if k.lower() in PASSED_HEADERS},
            length=int(length) if length is not None and length.isdigit() else None,
            status=response.status,
            close=conn.close,
        )

    def delete_file(self, principal: str, session_id: str, name: str) -> FileList:
        path = f"/sessions/{session_id}/files/{quote(name, safe='')}"
        response = self._on_owner(principal, session_id, "DELETE", path)
        return FileList.model_validate(response.json())

    def _stream_to_owner(
        self, principal: str, session_id: str, method: str, path: str, **kw: Any
    ) -> httpx.Response:
        """A call to the owner whose answer is read as it comes (the caller closes it)."""
        try:
            url = self._url_for(principal, session_id)
        except HostGone as gone:
            raise gone.error(session_id) from None
        request = self.http.build_request(method, f"{url}{API}{path}", **kw)
        try:
            response = self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise BrowserUnavailable(f"the browser host at {url} is unreachable: {exc}") from None
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            raise _error_from(response)
        return response

    @staticmethod
    def _file_body(response: httpx.Response) -> FileBody:
        length = response.headers.get("Content-Length")
        return FileBody(
            chunks=response.iter_raw(),  # as it comes (a chunk size costs httpx copies)
            content_type=response.headers.get("Content-Type", "application/octet-stream"),
            headers={k: v for k, v in response.headers.items() if k.lower() in PASSED_HEADERS},
            length=int(length) if length is not None else None,
            status=response.status_code,
            close=response.close,
        )

    def readiness(self) -> tuple[bool, str]:
        try:
            hosts = self.hosts(fresh=True)
        except RegistryUnavailable as exc:
            return False, str(exc)
        if not hosts:
            return False, "no browser host is registered or answering"
        return True, f"{len(hosts)} browser host(s) answering"

    def health(self) -> dict[str, Any]:
        return {"mode": "front", "hosts": len(self._hosts)}

    def shutdown(self) -> None:
        self.http.close()
        if self.registry is not None:
            self.registry.close()


class HostGone(Exception):
    """The session's host stopped answering (it is not in the registry). ``record``: the
    caller's record of the session, ended ``error`` by that; None if there is none."""

    def __init__(self, record: SessionResponse | None) -> None:
        super().__init__(record.error if record is not None else "the host is gone")
        self.record = record

    def record_or_404(self, session_id: str) -> SessionResponse:
        """For reads: the record, or the 404 every unknown session gets."""
        if self.record is None:
            raise _not_found(session_id)
        return self.record

    def error(self, session_id: str) -> SessionsError:
        """For calls that need the live page: 409 with the record's status, or 404."""
        if self.record is None:
            return _not_found(session_id)
        return SessionNotActive(
            f"session {session_id} is {self.record.status.value} ({self.record.error}); "
            "start a new one with POST /session/start",
            status=self.record.status.value,
        )


def _not_found(session_id: str) -> SessionNotFound:
    return SessionNotFound(
        f"no session {session_id!r} for you; it never existed, belongs to someone "
        "else, or its host is gone. Start one with POST /session/start"
    )


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS checks the pooled httpx client makes, for file bodies from https hosts."""
    return httpx.create_ssl_context()


def _error_from(response: httpx.Response) -> SessionsError:
    """The host's JSON error as the same exception, so the front answers the same."""
    try:
        data = dict(response.json())
    except ValueError:
        return BrowserUnavailable(f"the browser host answered HTTP {response.status_code}")
    kind = data.pop("error_type", None)
    message = str(data.pop("error", "error"))
    cls = _KINDS.get(str(kind), SessionsError)
    if cls is CapacityReached:
        return CapacityReached(message, retry_after=int(response.headers.get("Retry-After", "1")))
    exc = cls(message, **data)
    if cls is SessionsError:
        exc.status_code = response.status_code
    return exc


def _size(header: str | None) -> tuple[int, int]:
    """``"1280x720"`` as (1280, 720); (0, 0) if the host did not say."""
    width, _, height = (header or "").partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        return 0, 0
