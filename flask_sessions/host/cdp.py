"""The per-session CDP WebSocket: bring your own Playwright or Puppeteer, confined to one context.

Every session record carries a ``cdp_url``. A client connects there with the same bearer
token as the REST routes (or a one-use ``?ticket=``) and speaks the Chrome DevTools Protocol
to a proxy that lets it see and touch its session's ``BrowserContext`` and nothing else::

    client ─ws──► CdpProxy (runtime loop, SESSIONS_CDP_PORT) ─ws──► Chromium's debugging port
                  auth at the upgrade · allow-list · target/session/context bookkeeping

**The second channel to Chromium.** Playwright launches Chromium with
``--remote-debugging-pipe`` and owns that pipe; Chromium has one pipe and no other private
channel, so the proxy needs another way in. Options weighed:

- Tunnel through Playwright (``browser.new_browser_cdp_session()``): its CDPSession carries
  only its own session's messages. Browser-level auto-attach is flatten-only, and the driver
  drops messages for sessionIds it did not create, so OOPIFs, workers and new pages could
  only be emulated with the deprecated non-flat ``Target.sendMessageToTarget``: every
  message JSON-in-JSON through the Node driver, ``waitForDebuggerOnStart`` lost. Rejected.
- Launch Chromium ourselves on a pipe we own and put Playwright (REST) behind the same
  multiplexer with ``connect_over_cdp``: no TCP port at all, but every REST command would pay
  a Python hop and the proxy would have to emulate per-client browser-level state on one
  shared connection. Too large a change to the REST path for this issue.
- **Chosen**: ``--remote-debugging-port`` on 127.0.0.1, one upstream WebSocket per client.
  Chromium keeps auto-attach, discovery and sessionIds per connection, so a client's
  sessions can never be used on another client's connection, and the proxy only filters.

**What a local user could do with that port, and what is mitigated.** Chromium's debugging
port has no authentication: any process that can connect to 127.0.0.1 on this machine (any
local user, any container sharing the network namespace) can read ``/json/version`` for the
browser's WebSocket URL and drive every context of every principal: read pages and cookies,
run script, close the browser. Mitigations:

- bound to 127.0.0.1 only (no ``--remote-debugging-address``);
- on one of Chromium's *restricted* ports (:data:`UNSAFE_PORTS`: 6665-6669, 10080, …). A page
  in the browser cannot load it (``net::ERR_UNSAFE_PORT``, redirects included). On an ordinary
  port any tenant's page could navigate to ``http://127.0.0.1:<port>/json/list`` and read every
  other tenant's URLs and target ids (measured, Chromium 156), through REST ``goto`` as well;
- no ``--remote-allow-origins``: no web page can open the socket (Chromium checks Origin);
- the endpoint is learned from ``DevToolsActivePort`` in Playwright's 0700 profile directory
  (found through the pipe: ``SystemInfo.getProcessInfo`` → ``/proc/<pid>/cmdline``), which
  Chromium writes only once it holds the port, and every upstream connection proves it
  reached our Chromium by finding the session's page target in the session's context (ids
  learned over the pipe) before a client message is forwarded;
- ``SESSIONS_CDP=false`` opens no port at all. Where untrusted local users exist, run the
  server in its own container / network namespace.

**Isolation is at the context level**, not a browser per session: Chromium never shares a
renderer between BrowserContexts, and every browser-wide or cross-context handle (targetIds,
sessionIds, browserContextIds, windowIds) passes :class:`_Client`'s checks. Measured: a
CDP-attached session costs what a plain one does (``make bench ARGS=--cdp``), where a
dedicated browser per CDP session would cost ~8x, so the fallback was not needed.

**The filter** is an allow-list (:data:`BROWSER_METHODS`) of the browser-level commands that
Playwright's ``connect_over_cdp`` and Puppeteer's ``connect`` send (read from
``crBrowser.ts``/``crPage.ts`` and Puppeteer's ``BrowserConnector``/``Browser``/``TargetManager``,
and confirmed by logging both against this proxy in ``tests/test_cdp.py``), plus the commands
their context/page APIs send. Commands in a session the proxy handed out (a target of the
session's context) pass when their domain is in :data:`SESSION_DOMAINS`, minus
:data:`DENIED` (server files, downloads to server paths, crashing the page) and with the same
target/context checks. Everything else is refused with a CDP error. Events about other
contexts' targets never reach the client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import socket
import urllib.request
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask, request
from playwright.async_api import Browser
from playwright.async_api import Error as PlaywrightError
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.http11 import Request, Response

from flask_sessions.errors import SessionsError
from flask_sessions.host.options import pin_color_scheme
from flask_sessions.host.viewer import LIVE_PATH, LiveViews
from flask_sessions.schemas import check_url
from flask_sessions.timefmt import iso_datetime

if TYPE_CHECKING:
    from flask_sessions.config import Settings
    from flask_sessions.host.manager import SessionManager, SessionRecord

log = logging.getLogger("flask_sessions")
# websockets logs every connection at INFO; its errors still show.
_ws_log = logging.getLogger("flask_sessions.websockets")
_ws_log.setLevel(logging.WARNING)

MB = 1024 * 1024

# Ports Chromium refuses to fetch from (net/base/port_util.cc, kRestrictedPorts) that an
# unprivileged process may bind. A debugging port here is unreachable from the browser's pages.
# The egress proxy refuses the same list (RESTRICTED_PORTS), so a page cannot reach the port
# through it either.
UNSAFE_PORTS = (
    6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080, 1719, 1720, 1723, 3659, 4045, 4190,
    5060, 5061, 6566, 2049, 6000,
)  # fmt: skip

# ----------------------------------------------------------------------------- the policy
# Actions for a command; see _Client._command.
FORWARD = "forward"  # send as it is (generic targetId/browserContextId/sessionId checks apply)
CONTEXT = "context"  # browserContextId: absent → the session's, another → refused
DETACH = "detach"  # Browser.close: answer {}, then close this client's socket only
ACK = "ack"  # answer {} and send nothing (Browser.setDownloadBehavior: never a client path)
CONTEXTS = "contexts"  # Target.getBrowserContexts: the session's context alone
TARGETS = "targets"  # Target.getTargets: filtered to the session's context
AUTO_ATTACH = "auto_attach"  # flatten only; browser level: waitForDebuggerOnStart off
ATTACH = "attach"  # Target.attachToTarget: own targets, flatten only
CREATE = "create"  # Target.createTarget: in the session's context, URL checked
CLOSE_TARGET = "close_target"  # Target.closeTarget: own targets but not the session's page
WINDOW = "window"  # windowId must come from getWindowForTarget on an own target
WINDOW_FOR = "window_for"  # Browser.getWindowForTarget: records the windowId it returns
BROWSER_SESSION = "browser_session"  # a session of the browser target, under the same rules

BROWSER_METHODS: dict[str, str] = {
    # Playwright connect_over_cdp (crBrowser.ts connect) and Puppeteer connect
    "Browser.getVersion": FORWARD,
    "Target.setAutoAttach": AUTO_ATTACH,
    "Target.getTargetInfo": FORWARD,
    "Browser.setDownloadBehavior": ACK,  # Playwright's default context; Puppeteer's option
    "Target.getBrowserContexts": CONTEXTS,  # Puppeteer's BrowserConnector
    "Target.setDiscoverTargets": FORWARD,  # Puppeteer's TargetManager
    "Target.attachToTarget": ATTACH,  # Puppeteer target.createCDPSession(), lazy page attach
    "Target.detachFromTarget": FORWARD,
    "Browser.close": DETACH,  # Puppeteer browser.close()
    "Target.attachToBrowserTarget": BROWSER_SESSION,  # Playwright context.new_cdp_session()
    # what their context/browser APIs send at browser level
    "Target.createTarget": CREATE,  # context.new_page(), browser.newPage()
    "Target.closeTarget": CLOSE_TARGET,  # page.close()
    "Target.activateTarget": FORWARD,  # page.bringToFront()
    "Target.getTargets": TARGETS,
    "Target.autoAttachRelated": FORWARD,
    "Storage.getCookies": CONTEXT,  # context.cookies()
    "Storage.setCookies": CONTEXT,  # context.add_cookies()
    "Storage.clearCookies": CONTEXT,  # context.clear_cookies()
    "Browser.grantPermissions": CONTEXT,  # context.grant_permissions()
    "Browser.setPermission": CONTEXT,
    "Browser.resetPermissions": CONTEXT,  # context.clear_permissions()
    "Browser.getWindowForTarget": WINDOW_FOR,
    "Browser.getWindowBounds": WINDOW,
    "Browser.setWindowBounds": WINDOW,
    "Schema.getDomains": FORWARD,
}

# Domains a session of an own target may use (each acts on that target, its renderer or its
# context's storage partition). Not here, so refused: Tracing, Memory, SystemInfo, Tethering,
# Extensions, PWA, Cast, BluetoothEmulation, FileSystem, Autofill, DeviceAccess, FedCm, ...
SESSION_DOMAINS = frozenset(
    {
        "Accessibility", "Animation", "Audits", "CacheStorage", "Console", "CSS", "Debugger",
        "DeviceOrientation", "DOM", "DOMDebugger", "DOMSnapshot", "DOMStorage", "Emulation",
        "EventBreakpoints", "Fetch", "HeapProfiler", "IndexedDB", "Input", "Inspector", "IO",
        "LayerTree", "Log", "Media", "Network", "Overlay", "Page", "Performance",
        "PerformanceTimeline", "Preload", "Profiler", "Runtime", "Schema", "Security",
        "ServiceWorker", "Storage", "WebAudio", "WebAuthn",
        "WebMCP",  # Puppeteer enables it on every page: the page's own declared tools
    }
)  # fmt: skip

# Target.* and Browser.* inside a session: the browser-level rules, minus discovery.
SESSION_METHODS: dict[str, str] = {
    "Target.setAutoAttach": AUTO_ATTACH,
    "Target.getTargetInfo": FORWARD,
    "Target.attachToTarget": ATTACH,
    "Target.detachFromTarget": FORWARD,
    "Target.createTarget": CREATE,
    "Target.closeTarget": CLOSE_TARGET,
    "Target.activateTarget": FORWARD,
    "Target.getTargets": TARGETS,
    "Browser.getVersion": FORWARD,
    "Browser.close": DETACH,
    "Browser.setDownloadBehavior": ACK,
    "Browser.grantPermissions": CONTEXT,
    "Browser.setPermission": CONTEXT,
    "Browser.resetPermissions": CONTEXT,
    "Browser.getWindowForTarget": WINDOW_FOR,
    "Browser.getWindowBounds": WINDOW,
    "Browser.setWindowBounds": WINDOW,
}

DENIED: dict[str, str] = {
    "DOM.setFileInputFiles": "it reads files from the server's disk; pass files as buffers "
    "(Playwright set_input_files with name/mimeType/buffer)",
    "Page.handleFileChooser": "it reads files from the server's disk",
    "Page.setDownloadBehavior": "it writes files to a server path",
    "Page.crash": "it would crash the session's renderer",
}

# Parameters that name a browser-wide handle (a CDP session, a target, a browser context): a
# command may only name those of its own session (see _Client._command). Every parameter so
# named in the protocol is such a handle, except these (tests/test_cdp.py reads Playwright's
# copy of the protocol to keep this list whole):
HANDLE_PARAMS = ("browserContextId", "targetId", "sessionId")
NOT_HANDLES: dict[str, frozenset[str]] = {
    # the screencast frame's number, acknowledged so that Chromium sends the next frame
    "Page.screencastFrameAck": frozenset({"sessionId"}),
}

# Commands whose URL parameter must pass the REST rule (http(s), about:blank, data:).
URL_PARAMS = {
    "Page.navigate": "url",
    "Target.createTarget": "url",
    "Network.loadNetworkResource": "url",
    "Fetch.continueRequest": "url",
    "Network.continueInterceptedRequest": "url",
}

NO_TARGET = "No target with given id found"
NO_SESSION = "Session with given id not found."

_SESSION_PATH = re.compile(r"/cdp/([A-Za-z0-9_-]{1,64})/?$")
_RESPONSE_HEAD = re.compile(r'\{"id":(\d+),')
_EVENT_HEAD = re.compile(r'\{"method":"([A-Za-z]+\.[A-Za-z]+)"')
_SESSION_TAIL = re.compile(r',"sessionId":"([0-9A-Fa-f]{1,64})"\}$')


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class DebuggingPort:
    """Chromium's debugging port for the proxy: chosen at each launch, verified after it."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.endpoint: str | None = None  # ws://127.0.0.1:<port>/devtools/browser/<guid>
        self.error: str | None = "the browser has not been launched yet"

    def launch_args(self) -> tuple[str, ...]:
        """``--remote-debugging-port`` on a free restricted port (none free: no CDP)."""
        self.endpoint, self.port = None, None
        candidates = list(UNSAFE_PORTS)
        random.shuffle(candidates)  # two runtimes launching at once rarely pick the same
        for port in candidates:
            if _port_free(port):
                self.port = port
                return (f"--remote-debugging-port={port}",)
        self.error = (
            "no free port among Chromium's restricted ports "
            f"({', '.join(map(str, UNSAFE_PORTS))}) for its debugging port"
        )
        log.error("flask_sessions: CDP unavailable: %s", self.error)
        return ()

    async def discover(self, browser: Browser) -> None:
        """Learn the browser's WebSocket URL on the port it was launched with."""
        port = self.port
        if port is None:
            return
        try:
            self.endpoint = await asyncio.wait_for(self._endpoint(browser, port), 10)
            self.error = None
        except (
            OSError,
            ValueError,
            KeyError,
            IndexError,
            StopIteration,
            PlaywrightError,
            TimeoutError,
        ) as exc:
            self.endpoint = None
            self.error = f"Chromium's debugging port {port} is not usable ({exc})"
            log.error("flask_sessions: CDP unavailable: %s", self.error)

    async def _endpoint(self, browser: Browser, port: int) -> str:
        session = await browser.new_browser_cdp_session()
        try:
            info = await session.send("SystemInfo.getProcessInfo")
        finally:
            await session.detach()
        pid = next(int(p["id"]) for p in info["processInfo"] if p["type"] == "browser")
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists():  # Linux: the file Chromium writes once it holds the port
            args = cmdline.read_bytes().split(b"\0")
            flag = b"--user-data-dir="
            profile = next(a[len(flag) :].decode() for a in args if a.startswith(flag))
            active = Path(profile) / "DevToolsActivePort"
            lines: list[str] = []
            for _ in range(100):  # the file appears first, its two lines a moment later
                if active.exists():
                    lines = active.read_text(encoding="utf-8").split()
                    if len(lines) >= 2:
                        break
                await asyncio.sleep(0.05)
            if len(lines) < 2:
                raise ValueError(f"{active} did not name the port and path in 5 s")
            if int(lines[0]) != port:
                raise ValueError(f"Chromium listens on {lines[0]}, not {port}")
            return f"ws://127.0.0.1:{port}{lines[1]}"

        def version() -> Any:  # elsewhere: ask the port (each client then proves the browser)
            url = f"http://127.0.0.1:{port}/json/version"
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())

        return str((await asyncio.to_thread(version))["webSocketDebuggerUrl"])


class Tickets:
    """One-use, HMAC-signed, short-lived credentials bound to one session.

    A ticket is ``<session_id>.<expiry ms>.<nonce>.<signature>``: it names no principal and
    no token, so it is safe in a URL; it dies with its session (the upgrade checks the
    session is active) and after ``ttl``, and works once. A live viewer's ticket (viewer.py)
    also names its scope, ``view`` or ``interact``, inside what is signed
    (``<session_id>.<expiry ms>.<nonce>.<scope>.<signature>``): a CDP ticket is never a
    viewer's, nor the other way round.
    """

    def __init__(self, ttl: timedelta) -> None:
        self.ttl = ttl
        self._key = secrets.token_bytes(32)
        self._used: dict[str, int] = {}  # nonce -> expiry ms, purged as they expire

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def mint(
        self, session_id: str, now: datetime, scope: str = "", ttl: timedelta | None = None
    ) -> tuple[str, datetime]:
        expires = now + (ttl or self.ttl)
        payload = f"{session_id}.{int(expires.timestamp() * 1000)}.{secrets.token_urlsafe(12)}"
        if scope:  # a live viewer's: view | interact
            payload += f".{scope}"
        return f"{payload}.{self._sign(payload)}", expires

    def redeem(self, ticket: str, session_id: str, now: datetime) -> bool:
        return self.redeem_scoped(ticket, session_id, now, frozenset({""})) is not None

    def redeem_scoped(
        self,
        ticket: str,
        session_id: str,
        now: datetime,
        scopes: frozenset[str],
        consume: bool = True,
    ) -> tuple[str, datetime] | None:
        """(scope, expiry) of a good ticket of ``session_id`` in one of ``scopes`` ("" is a
        CDP ticket's), used up now unless ``consume`` is False; None for any other."""
        parts = ticket.split(".")
        if len(parts) not in (4, 5):
            return None
        sid, expiry, nonce = parts[:3]
        scope = parts[3] if len(parts) == 5 else ""
        if scope not in scopes or not hmac.compare_digest(
            parts[-1], self._sign(".".join(parts[:-1]))
        ):
            return None
        now_ms = int(now.timestamp() * 1000)
        self._used = {n: e for n, e in self._used.items() if e >= now_ms}
        if sid != session_id or not expiry.isdigit() or int(expiry) < now_ms:
            return None
        if nonce in self._used:
            return None
        if consume:
            self._used[nonce] = int(expiry)
        return scope, datetime.fromtimestamp(int(expiry) / 1000, now.tzinfo)


@dataclass
class _Attachment:
    session_id: str
    principal: str
    scope: str = ""  # "": a CDP client; "view" or "interact": a live viewer (viewer.py)
    expires: datetime | None = None  # a live viewer's: when its ticket runs out


class _Connection(ServerConnection):
    attachment: _Attachment | None = None


def _json_response(status: HTTPStatus, message: str, **headers: str) -> Response:
    body = json.dumps({"error": message}).encode("utf-8")
    all_headers = Headers(
        {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    )
    return Response(status.value, status.phrase, all_headers, body)


def _hostname(host: str) -> str:
    name = urlsplit("//" + host).hostname or "127.0.0.1"
    return f"[{name}]" if ":" in name else name


def close_reason(text: str) -> str:
    """A close reason within the 123 bytes a WebSocket close frame allows."""
    data = text.encode("utf-8")[:123]
    return data.decode("utf-8", errors="ignore")


class CdpProxy:
    """The CDP WebSocket server of one app, and its clients; lives on the runtime loop.

    ``verify(token)`` is the REST routes' verifier (static tokens, then the host's callback);
    it runs in a worker thread inside a request context of ``app``.
    """

    def __init__(
        self,
        app: Flask,
        settings: Settings,
        manager: SessionManager,
        verify: Callable[[str], Any],
    ) -> None:
        self._app = weakref.ref(app)  # not a strong ref: the runtime must not keep the app alive
        self.settings = settings
        self.manager = manager
        self._verify = verify
        self.upstream = DebuggingPort()
        manager.runtime.debugging = self.upstream
        manager.cdp = self
        self.tickets = Tickets(timedelta(seconds=settings.cdp_ticket_ttl_seconds))
        self.port: int | None = None
        self.max_message = int(settings.cdp_max_message_mb * MB)
        self.max_buffer = int(settings.cdp_max_buffer_mb * MB)
        self._server: Server | None = None
        self._clients: dict[str, set[_Client]] = {}
        self._targets: dict[str, tuple[str, str]] = {}  # session -> (page targetId, contextId)
        # Tests: called with (session_id, "client" | "browser" | "proxy", message) for what a
        # client sends, what the browser answers, and what the proxy refuses.
        self.log_traffic: Callable[[str, str, dict[str, Any]], None] | None = None
        self.live = LiveViews(self)  # live viewers on the same server (issue 20)

    # ------------------------------------------------------------ Flask side

    def url_for(self, session_id: str) -> str | None:
        """The session's ``cdp_url`` for the current request (None while not listening)."""
        if self.port is None:
            return None
        base = self.settings.cdp_public_url
        if base is None:
            proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            secure = proto == "https" if proto else request.is_secure
            forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
            host = _hostname(forwarded or request.host)
            base = f"{'wss' if secure else 'ws'}://{host}:{self.port}"
        return f"{base}/cdp/{session_id}"

    def ticket(self, principal: str, session_id: str) -> tuple[str, str]:
        """(ticket, expires_at) for the principal's active session (404/409 like REST).

        Minting counts as access: the client is about to attach.
        """

        async def mint() -> tuple[str, datetime]:
            record = self.manager.active_record(principal, session_id)
            self.manager.touch(session_id, timedelta(0))
            return self.tickets.mint(record.session_id, self.manager.clock())

        ticket, expires = self.manager._run(mint())
        return ticket, iso_datetime(expires)

    # ------------------------------------------------------------- loop side

    async def start(self) -> None:
        """Listen on SESSIONS_CDP_HOST:SESSIONS_CDP_PORT (a failure is logged, not raised)."""
        host, port = self.settings.cdp_host or "127.0.0.1", self.settings.cdp_port
        try:
            self._server = await serve(
                self._handle,
                host,
                port,
                process_request=self._process_request,
                create_connection=_Connection,
                compression=None,
                max_size=self.max_message,
                close_timeout=5,
                server_header=None,
                logger=_ws_log,
            )
        except OSError as exc:
            log.error(
                "flask_sessions: the CDP WebSocket cannot listen on %s:%s (%s); "
                "sessions get no cdp_url",
                host,
                port,
                exc,
            )
            return
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("flask_sessions: CDP WebSocket on ws://%s:%s/cdp/<session_id>", host, self.port)

    async def close(self) -> None:
        """Close every client (with a reason) and stop listening."""
        for clients in list(self._clients.values()):
            for client in list(clients):
                client.end(1001, "server shutting down")
        self.live.close()
        if self._server is not None:
            self._server.close(close_connections=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 10)
            self._server = None
        self.port = None

    def session_ended(self, record: SessionRecord) -> None:
        """The session closed, timed out or failed: close its sockets saying so."""
        self._targets.pop(record.session_id, None)
        why = f"session {record.status.value}" + (f": {record.error}" if record.error else "")
        code = 1001 if record.error == "server shut down" else 1000
        for client in list(self._clients.get(record.session_id, ())):
            client.end(code, why)
        self.live.session_ended(record.session_id, code, why)

    def clients(self, session_id: str) -> int:
        """The session's sockets: CDP clients and live viewers (one cap for both)."""
        return len(self._clients.get(session_id, ())) + self.live.count(session_id)

    async def _principal(self, req: Request, session_id: str) -> str | None:
        ticket = parse_qs(urlsplit(req.path).query).get("ticket")
        if ticket:
            if not self.tickets.redeem(ticket[0], session_id, self.manager.clock()):
                return None
            record = self.manager._records.get(session_id)
            return record.principal if record is not None else None
        header = req.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None

        def verify() -> Any:
            app = self._app()
            if app is None:  # the app is gone; so is every session of it
                return None
            with app.test_request_context(
                urlsplit(req.path).path, headers={"Authorization": header}
            ):
                return self._verify(token.strip())

        found = await asyncio.to_thread(verify)
        if found is None or found is False:
            return None
        return found if isinstance(found, str) else str(found)

    async def _process_request(self, connection: ServerConnection, req: Request) -> Response | None:
        live = LIVE_PATH.search(urlsplit(req.path).path)
        if live is not None:  # a live viewer: its scoped ticket alone (viewer.py)
            return self._admit_viewer(connection, req, live.group(1))
        match = _SESSION_PATH.search(urlsplit(req.path).path)
        if match is None:
            return _json_response(
                HTTPStatus.NOT_FOUND, "no such endpoint; connect to a session's cdp_url"
            )
        session_id = match.group(1)
        principal = await self._principal(req, session_id)
        if principal is None:
            return _json_response(
                HTTPStatus.UNAUTHORIZED,
                "missing or invalid credentials; send 'Authorization: Bearer <token>' on the "
                "upgrade, or ?ticket= from POST /session/<id>/cdp-ticket",
                **{"WWW-Authenticate": 'Bearer realm="flask_sessions"'},
            )
        try:
            self.manager.active_record(principal, session_id)
        except SessionsError as exc:
            return _json_response(HTTPStatus(exc.status_code), exc.message)
        if self.upstream.endpoint is None:
            return _json_response(
                HTTPStatus.SERVICE_UNAVAILABLE, f"CDP is unavailable: {self.upstream.error}"
            )
        limit = self.settings.max_cdp_clients_per_session
        if self.clients(session_id) >= limit:
            return _json_response(
                HTTPStatus.TOO_MANY_REQUESTS,
                f"session {session_id} already has {limit} CDP clients "
                "(SESSIONS_MAX_CDP_CLIENTS_PER_SESSION); disconnect one first",
            )
        assert isinstance(connection, _Connection)
        connection.attachment = _Attachment(session_id, principal)
        return None

    def _admit_viewer(
        self, connection: ServerConnection, req: Request, session_id: str
    ) -> Response | None:
        """The upgrade of a live viewer: a good ticket of its scope, the session active, a
        free socket under the session's cap; else the JSON refusal."""
        ticket = parse_qs(urlsplit(req.path).query).get("ticket")
        try:
            principal, scope, expires = self.live.admit(session_id, ticket[0] if ticket else "")
        except SessionsError as exc:
            headers = {}
            if exc.status_code == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="flask_sessions"'
            return _json_response(HTTPStatus(exc.status_code), exc.message, **headers)
        assert isinstance(connection, _Connection)
        connection.attachment = _Attachment(session_id, principal, scope, expires)
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        assert isinstance(connection, _Connection)
        attachment = connection.attachment
        if attachment is None:
            return
        session_id = attachment.session_id
        if attachment.scope:  # a live viewer (viewer.py)
            assert attachment.expires is not None
            await self.live.serve(connection, session_id, attachment.scope, attachment.expires)
            return
        clients = self._clients.setdefault(session_id, set())
        if self.clients(session_id) >= self.settings.max_cdp_clients_per_session:  # raced
            await connection.close(1013, "too many CDP clients on this session")
            return
        client = _Client(self, connection, session_id)
        clients.add(client)
        try:
            await client.run()
        finally:
            clients.discard(client)
            if not clients:
                self._clients.pop(session_id, None)

    async def target_of(self, session_id: str) -> tuple[str, str]:
        """The session page's targetId and its browserContextId, asked over the pipe."""
        known = self._targets.get(session_id)
        if known is not None:
            return known
        live = self.manager.live(session_id)
        if live is None:
            raise ConnectionError("the session has ended")
        cdp = await live.context.new_cdp_session(live.page)
        try:
            info = (await cdp.send("Target.getTargetInfo"))["targetInfo"]
        finally:
            with contextlib.suppress(PlaywrightError):
                await cdp.detach()
        found = (str(info["targetId"]), str(info["browserContextId"]))
        if self.manager.live(session_id) is live:
            self._targets[session_id] = found
        return found


class _Close:
    def __init__(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason


class CdpError(Exception):
    """A command refused or failed in the proxy: answered to the client as a CDP error."""

    def __init__(self, message: str, code: int = -32000, echo: bool = True) -> None:
        super().__init__(message)
        self.message, self.code = message, code
        self.echo = echo  # False: do not repeat the sessionId (one this client does not own)


_Hook = Callable[[dict[str, Any]], None]


class _Client:
    """One client socket and its upstream socket to Chromium.

    Three tasks: client → policy → upstream; upstream → filter → queue; queue → client. The
    upstream reader never waits for the client (a slow reader must not hold back Chromium's
    messages): past SESSIONS_CDP_MAX_BUFFER_MB unread the client is disconnected.
    """

    def __init__(self, proxy: CdpProxy, ws: ServerConnection, session_id: str) -> None:
        self.proxy = proxy
        self.ws = ws
        self.session_id = session_id
        self.upstream: ClientConnection | None = None
        self.context_id = ""
        self.main_target = ""
        self.own_targets: set[str] = set()
        self.foreign_targets: set[str] = set()
        self.sessions: dict[str, str] = {}  # sessionId -> targetId, attached on this connection
        self.browser_sessions: set[str] = set()  # sessions of the browser target: root rules
        self._browser_attaching = 0  # Target.attachToBrowserTarget calls in flight
        self.windows: set[int] = set()
        self._next_id = 0
        self._pending: dict[int, tuple[int, str | None, _Hook | None]] = {}
        self._internal: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._out: deque[str | _Close] = deque()
        self._out_bytes = 0
        self._wake = asyncio.Event()
        self._closing: _Close | None = None

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        proxy = self.proxy
        try:
            self.main_target, self.context_id = await proxy.target_of(self.session_id)
            self.upstream = await connect(
                proxy.upstream.endpoint or "ws://127.0.0.1:0",
                compression=None,
                proxy=None,
                max_size=proxy.max_message,
                ping_interval=None,
                user_agent_header=None,
                open_timeout=10,
                close_timeout=2,
                logger=_ws_log,
            )
        except (OSError, TimeoutError, WebSocketException, PlaywrightError, ConnectionError) as exc:
            await self.ws.close(1011, close_reason(f"cannot reach the browser: {exc}"))
            return
        reader = asyncio.create_task(self._read_upstream())
        writer = asyncio.create_task(self._write_client())
        try:
            info = await self._call("Target.getTargetInfo", {"targetId": self.main_target})
            if info.get("targetInfo", {}).get("browserContextId") != self.context_id:
                raise CdpError("the debugging port is not this server's browser")
            self.own_targets.add(self.main_target)
            if self._closing is None:
                await self._read_client()
        except CdpError as exc:
            log.error("flask_sessions: CDP upstream check failed: %s", exc.message)
            self.end(1011, "the browser's debugging port failed its check")
        except ConnectionClosed:
            pass
        finally:
            if self._closing is None:
                self.end(1000, "", at_once=False)
            await asyncio.wait({writer}, timeout=5)
            if not writer.done():  # a client that stopped reading: do not wait for it
                self._out.clear()
                with contextlib.suppress(ConnectionClosed):
                    await asyncio.wait_for(self.ws.close(1008, "client stopped reading"), 5)
            reader.cancel()
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            await self.upstream.close()
            for future in self._internal.values():
                future.cancel()

    def end(self, code: int, reason: str, at_once: bool = True) -> None:
        """Close the client socket: at once (queued messages dropped), or after the queue."""
        if self._closing is not None:
            return
        self._closing = _Close(code, close_reason(reason))
        if at_once:  # even if a send waits on a client that does not read
            self._out.clear()
            self._out_bytes = 0
            close = self.ws.close(code, self._closing.reason)
            task = asyncio.get_running_loop().create_task(close)
            task.add_done_callback(_ignore_failure)
        else:
            self._out.append(self._closing)
        self._wake.set()

    def _emit(self, text: str) -> None:
        if self._closing is not None:
            return
        self._out.append(text)
        self._out_bytes += len(text)
        if self._out_bytes > self.proxy.max_buffer and len(self._out) > 1:
            unread = self._out_bytes // MB
            log.warning("flask_sessions: CDP client of %s too slow; disconnected", self.session_id)
            self.end(1008, f"client too slow: {unread} MB unread (SESSIONS_CDP_MAX_BUFFER_MB)")
        self._wake.set()

    async def _write_client(self) -> None:
        while True:
            while not self._out:
                if self._closing is not None:
                    return
                self._wake.clear()
                await self._wake.wait()
            item = self._out.popleft()
            if isinstance(item, _Close):
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.close(item.code, item.reason)
                return
            self._out_bytes -= len(item)
            try:
                await self.ws.send(item)
            except ConnectionClosed:
                return

    # ---------------------------------------------------------- client → up

    async def _read_client(self) -> None:
        async for raw in self.ws:
            if self._closing is not None:
                return
            self.proxy.manager.touch(self.session_id)
            text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
            try:
                message = json.loads(text)
            except ValueError:
                message = None
            if not (
                isinstance(message, dict)
                and isinstance(message.get("id"), int)
                and isinstance(message.get("method"), str)
                and isinstance(message.get("params", {}), dict)
                and isinstance(message.get("sessionId", ""), str)
            ):
                self.end(1003, "not a CDP command: send {id, method, params?, sessionId?}")
                return
            if self.proxy.log_traffic is not None:
                self.proxy.log_traffic(self.session_id, "client", message)
            try:
                await self._command(message)
            except CdpError as exc:
                self._reply_error(message, exc.message, exc.code, exc.echo)

    def _reply(self, message: dict[str, Any], result: dict[str, Any]) -> None:
        out: dict[str, Any] = {"id": message["id"], "result": result}
        if "sessionId" in message:
            out["sessionId"] = message["sessionId"]
        self._emit(json.dumps(out))

    def _reply_error(
        self, message: dict[str, Any], text: str, code: int = -32000, echo: bool = True
    ) -> None:
        out: dict[str, Any] = {"id": message["id"], "error": {"code": code, "message": text}}
        if echo and "sessionId" in message:
            out["sessionId"] = message["sessionId"]
        if self.proxy.log_traffic is not None:
            self.proxy.log_traffic(self.session_id, "proxy", {**out, "method": message["method"]})
        self._emit(json.dumps(out))

    def _refuse(self, method: str, why: str) -> CdpError:
        return CdpError(
            f"{method} is not allowed through flask_sessions: {why} "
            f"(this connection is confined to session {self.session_id}'s browser context)"
        )

    async def _owns(self, target_id: str) -> bool:
        """Whether ``target_id`` is a target of the session's context (asks Chromium once)."""
        if target_id in self.own_targets:
            return True
        if target_id in self.foreign_targets:
            return False
        try:
            info = await self._call("Target.getTargetInfo", {"targetId": target_id})
        except CdpError:
            return False
        owned = bool(info.get("targetInfo", {}).get("browserContextId") == self.context_id)
        (self.own_targets if owned else self.foreign_targets).add(target_id)
        return owned

    async def _command(self, message: dict[str, Any]) -> None:
        method: str = message["method"]
        params: dict[str, Any] = dict(message.get("params") or {})
        session: str | None = message.get("sessionId")
        domain = method.partition(".")[0]
        if session is not None and session not in self.sessions:
            raise CdpError(NO_SESSION, -32001, echo=False)
        browser_level = session is None or session in self.browser_sessions
        if not browser_level:
            if method in DENIED:
                raise self._refuse(method, DENIED[method])
            action = SESSION_METHODS.get(method)
            if action is None:
                if domain in ("Target", "Browser") or domain not in SESSION_DOMAINS:
                    raise self._refuse(method, f"the {domain} domain reaches beyond the page")
                action = FORWARD
        else:  # the root connection, or a session of the browser target (same rules)
            action = BROWSER_METHODS.get(method)
            if action is None:
                raise self._refuse(method, "it is browser-wide or outside the allow-list")
        # Handles that could name another context's objects.
        context, target, child = (
            None if name in NOT_HANDLES.get(method, ()) else params.get(name)
            for name in HANDLE_PARAMS
        )
        if context is not None and context != self.context_id:
            raise CdpError("Failed to find browser context with given id", -32602)
        if target is not None and not (isinstance(target, str) and await self._owns(target)):
            raise CdpError(NO_TARGET, -32602)
        if child is not None and child not in self.sessions:
            raise CdpError("No session with given id", -32602)
        url_param = URL_PARAMS.get(method)
        if url_param is not None and url_param in params:
            try:
                check_url(str(params[url_param]))
            except ValueError as exc:
                raise self._refuse(method, str(exc)) from None
        if method == "Input.dispatchDragEvent" and (params.get("data") or {}).get("files"):
            raise self._refuse(method, "dragging files reads them from the server's disk")
        if method == "Page.close" and session and self.sessions[session] == self.main_target:
            raise self._refuse(method, "the session's page closes with the session")
        if method == "Emulation.setEmulatedMedia":  # the session's color_scheme holds (18a)
            live = self.proxy.manager.live(self.session_id)
            params = pin_color_scheme(params, live.plan if live is not None else None)

        hook: _Hook | None = None
        if action == DETACH:
            self._reply(message, {})
            self.end(1000, "Browser.close: detached; the session stays active", at_once=False)
            return
        if action == ACK:
            self._reply(message, {})
            return
        if action == CONTEXTS:
            self._reply(message, {"browserContextIds": [self.context_id]})
            return
        if action == CONTEXT:
            params["browserContextId"] = self.context_id
        elif action == TARGETS:
            hook = self._filter_targets
        elif action == AUTO_ATTACH:
            if params.get("flatten") is not True:
                raise self._refuse(method, "only flatten sessions are supported")
            if browser_level:  # never pause other contexts' new targets for this client
                params["waitForDebuggerOnStart"] = False
        elif action == ATTACH:
            if target is None:
                raise CdpError(NO_TARGET, -32602)
            if params.get("flatten") is not True:
                raise self._refuse(method, "only flatten sessions are supported")
            hook = self._attached
        elif action == CREATE:
            params["browserContextId"] = self.context_id
            hook = self._created
        elif action == CLOSE_TARGET and target == self.main_target:
            raise self._refuse(method, "the session's page closes with the session")
        elif action == WINDOW and params.get("windowId") not in self.windows:
            raise CdpError("Browser window not found", -32602)
        elif action == BROWSER_SESSION:
            self._browser_attaching += 1
            hook = self._browser_attached
        elif action == WINDOW_FOR:
            if browser_level and target is None:
                raise CdpError(NO_TARGET, -32602)
            hook = self._window
        await self._forward(message, params, hook)

    async def _forward(
        self, message: dict[str, Any], params: dict[str, Any], hook: _Hook | None
    ) -> None:
        self._next_id += 1
        upstream_id = self._next_id
        session = message.get("sessionId")
        self._pending[upstream_id] = (message["id"], session, hook)
        out: dict[str, Any] = {"id": upstream_id, "method": message["method"], "params": params}
        if session is not None:
            out["sessionId"] = session
        await self._send_up(out)

    async def _send_up(self, message: dict[str, Any]) -> None:
        assert self.upstream is not None
        await self.upstream.send(json.dumps(message))

    async def _call(
        self, method: str, params: dict[str, Any], session: str | None = None
    ) -> dict[str, Any]:
        """A command of the proxy's own (its answer never reaches the client)."""
        self._next_id += 1
        upstream_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._internal[upstream_id] = future
        message: dict[str, Any] = {"id": upstream_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self._send_up(message)
        return await asyncio.wait_for(future, 30)

    def _call_soon(self, method: str, params: dict[str, Any], session: str | None = None) -> None:
        task = asyncio.get_running_loop().create_task(self._call(method, params, session))
        task.add_done_callback(_ignore_failure)

    # ---------------------------------------------------- response hooks

    def _filter_targets(self, result: dict[str, Any]) -> None:
        infos = result.get("targetInfos") or []
        mine = [info for info in infos if self._learn(info)]
        result["targetInfos"] = mine

    def _attached(self, result: dict[str, Any]) -> None:
        session = result.get("sessionId")
        if isinstance(session, str) and session not in self.sessions:
            self.sessions[session] = ""  # its attachedToTarget event names the target

    def _browser_attached(self, result: dict[str, Any]) -> None:
        self._browser_attaching = max(0, self._browser_attaching - 1)
        session = result.get("sessionId")
        if isinstance(session, str):
            self.sessions[session] = ""
            self.browser_sessions.add(session)

    def _created(self, result: dict[str, Any]) -> None:
        target = result.get("targetId")
        if isinstance(target, str):
            self.own_targets.add(target)

    def _window(self, result: dict[str, Any]) -> None:
        window = result.get("windowId")
        if isinstance(window, int):
            self.windows.add(window)

    def _learn(self, info: Any) -> bool:
        """Record a targetInfo; True if it is in the session's context."""
        if not isinstance(info, dict):
            return False
        target = info.get("targetId")
        owned = bool(info.get("browserContextId")) and info["browserContextId"] == self.context_id
        if isinstance(target, str):
            (self.own_targets if owned else self.foreign_targets).add(target)
        return owned and info.get("type") != "browser"

    # ---------------------------------------------------------- up → client

    async def _read_upstream(self) -> None:
        assert self.upstream is not None
        try:
            async for raw in self.upstream:
                text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
                self._on_upstream(text)
        except ConnectionClosed:
            pass
        self.end(1011, "the browser closed the connection")

    def _on_upstream(self, text: str) -> None:
        if self.proxy.log_traffic is None:
            head = _RESPONSE_HEAD.match(text)
            if head is not None:  # a response: rewrite its id without parsing the body
                pending = self._pending.get(int(head.group(1)))
                if pending is not None and pending[2] is None:
                    del self._pending[int(head.group(1))]
                    self._emit(f'{{"id":{pending[0]},' + text[head.end() :])
                    return
            else:
                event = _EVENT_HEAD.match(text)
                tail = None
                if event is not None:
                    tail = _SESSION_TAIL.search(text, max(0, len(text) - 100))
                if (
                    event is not None
                    and tail is not None
                    and not event.group(1).startswith("Target.")
                    and tail.group(1) in self.sessions
                    and tail.group(1) not in self.browser_sessions
                ):
                    self._emit(text)  # an event of an own session: as it is
                    return
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if "id" in message:
            self._on_response(message)
        else:
            self._on_event(message)

    def _on_response(self, message: dict[str, Any]) -> None:
        upstream_id = message.get("id")
        if not isinstance(upstream_id, int):
            return
        internal = self._internal.pop(upstream_id, None)
        if internal is not None:
            if internal.done():
                return
            if "error" in message:
                internal.set_exception(CdpError(str(message["error"].get("message", ""))))
            else:
                internal.set_result(message.get("result") or {})
            return
        pending = self._pending.pop(upstream_id, None)
        if pending is None:
            return
        client_id, _session, hook = pending
        if hook is not None and isinstance(message.get("result"), dict):
            hook(message["result"])
        message["id"] = client_id
        self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        if self.proxy.log_traffic is not None:
            self.proxy.log_traffic(self.session_id, "browser", message)
        self._emit(json.dumps(message))

    def _on_event(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params")
        session = message.get("sessionId")
        if not isinstance(method, str) or not isinstance(params, dict):
            return
        if session is not None and session not in self.sessions:
            return  # a session this client does not own (another context's, while detaching)
        browser_level = session is None or session in self.browser_sessions
        if method == "Target.attachedToTarget":
            child = params.get("sessionId")
            if not isinstance(child, str):
                return
            info = params.get("targetInfo")
            if self._browser_attaching and isinstance(info, dict) and info.get("type") == "browser":
                # the client's own Target.attachToBrowserTarget: a root-like session
                self.sessions[child] = ""
                self.browser_sessions.add(child)
            elif not self._learn(info):
                # Another context's target (browser-level auto-attach): let it go at once.
                if params.get("waitingForDebugger"):
                    self._call_soon("Runtime.runIfWaitingForDebugger", {}, child)
                self._call_soon("Target.detachFromTarget", {"sessionId": child}, session)
                return
            else:
                self.sessions[child] = str(params["targetInfo"]["targetId"])  # _learn checked it
        elif method == "Target.detachedFromTarget":
            child = params.get("sessionId")
            if child not in self.sessions:
                return
            del self.sessions[child]
            self.browser_sessions.discard(child)
        elif method in ("Target.targetCreated", "Target.targetInfoChanged"):
            if not self._learn(params.get("targetInfo")):
                return
        elif method in ("Target.targetDestroyed", "Target.targetCrashed"):
            if params.get("targetId") not in self.own_targets:
                return
        elif method.startswith("Target.") or browser_level:
            return  # anything else browser-wide (downloads, non-flat messages, ...)
        self._deliver(message)


def _ignore_failure(task: asyncio.Task[Any]) -> None:
    """Background sends and closes: a failure means the socket is gone, which is the goal."""
    if not task.cancelled():
        task.exception()
