"""The per-session CDP WebSocket (issue 9) with real Chromium and real clients.

Playwright (async API, on this test's own loop, not the server's runtime loop), Puppeteer
(``puppeteer-core`` on Debian's Node) and raw WebSocket clients attach to sessions of an
in-process app (or, for shutdown, the real server). Pages come from ``page_server`` on
127.0.0.1; nothing here touches the internet.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from playwright.async_api import async_playwright
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from flask_sessions import FlaskSessions, ManualClock
from flask_sessions.host.cdp import (
    BROWSER_METHODS,
    HANDLE_PARAMS,
    NOT_HANDLES,
    SESSION_DOMAINS,
    SESSION_METHODS,
    UNSAFE_PORTS,
    CdpProxy,
    Tickets,
)

from .conftest import TOKEN_A, TOKEN_B, AppFactory, alive, chromium_pids, png_size, wait_for
from .test_server import STOP_TIMEOUT, Server, launch, server_env

ROOT = Path(__file__).resolve().parent.parent
MARKER = "ALICE-SECRET-7f3a9c"
MARKER_PAGE = f"data:text/html,<title>{MARKER}</title><p>{MARKER} private page</p>"


# ------------------------------------------------------------------ helpers


class Rest:
    """REST calls of one principal through Flask's test client, as seen from 127.0.0.1."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **body: Any) -> Any:
        response = self.client.open(
            path,
            method=method,
            json=body or None,
            headers=self.headers,
            base_url="http://127.0.0.1",
        )
        return response.status_code, response.get_json()

    def ok(self, method: str, path: str, **body: Any) -> Any:
        status, data = self.call(method, path, **body)
        assert status == 200, (status, data)
        return data

    def start(self, **body: Any) -> dict[str, Any]:
        record: dict[str, Any] = self.ok("POST", "/session/start", **body)
        assert record["cdp_url"].startswith("ws://127.0.0.1:"), record
        return record


class Raw:
    """A raw CDP client: every frame it receives is kept in ``frames``."""

    def __init__(
        self, url: str, token: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        if token:
            headers = {"Authorization": f"Bearer {token}"}
        self.ws: ClientConnection = connect(
            url,
            additional_headers=headers or {},
            proxy=None,
            max_size=None,
            open_timeout=10,
            legacy=True,
        )
        self.frames: list[str] = []
        self.next_id = 0

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> int:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        return self.next_id

    def recv(self, timeout: float = 15) -> dict[str, Any]:
        text = self.ws.recv(timeout)
        assert isinstance(text, str)
        self.frames.append(text)
        message: dict[str, Any] = json.loads(text)
        return message

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str = ""
    ) -> dict[str, Any]:
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + 15
        while True:
            message = self.recv(max(0.1, deadline - time.monotonic()))
            if message.get("id") == wanted:
                return message

    def events(self, seconds: float) -> list[dict[str, Any]]:
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.recv(left))
            except TimeoutError:
                break
        return out

    def closed(self, timeout: float = 15) -> ConnectionClosed:
        """Read until the server closes; the close it sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.recv(max(0.1, deadline - time.monotonic()))
            except ConnectionClosed as exc:
                return exc
            except TimeoutError:
                break
        pytest.fail("the server did not close the socket")

    def attach_page(self) -> str:
        """Attach (flatten) to this session's page, the way Puppeteer does lazily."""
        targets = self.call("Target.getTargets")["result"]["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        return str(
            self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})[
                "result"
            ]["sessionId"]
        )

    def close(self) -> None:
        self.ws.close()


def state_of(app: Flask) -> tuple[Any, CdpProxy]:
    state = FlaskSessions.state(app)
    assert state.cdp is not None
    return state, state.cdp


def ids_of(app: Flask, session_id: str) -> tuple[str, str]:
    """(page targetId, browserContextId) of a session, learned out of band."""
    state, cdp = state_of(app)
    found: tuple[str, str] = state.runtime.submit(cdp.target_of(session_id), 30)
    return found


@dataclass
class Traffic:
    """What real clients sent through the proxy, and the errors it answered."""

    sent: list[tuple[str, str]] = field(default_factory=list)  # (level, method)
    errors: list[dict[str, Any]] = field(default_factory=list)  # the proxy's refusals

    def __call__(self, session_id: str, who: str, message: dict[str, Any]) -> None:
        if who == "client":
            level = "session" if message.get("sessionId") else "browser"
            self.sent.append((level, message["method"]))
        elif who == "proxy":  # refused by the proxy (Chromium's own errors are normal)
            self.errors.append(message)

    def browser_level(self) -> list[str]:
        return list(dict.fromkeys(m for level, m in self.sent if level == "browser"))

    def session_level(self) -> list[str]:
        return sorted({m for level, m in self.sent if level == "session"})


@pytest.fixture
def cdp_app(make_app: AppFactory) -> Flask:
    return make_app(SESSIONS_WARM_POOL=0)


# --------------------------------------------------------------- unit parts


def test_tickets_are_signed_single_use_bound_and_short_lived() -> None:
    clock = ManualClock()
    tickets = Tickets(timedelta(seconds=60))
    ticket, _expires = tickets.mint("sessionA", clock())
    assert "sessionA" in ticket and "token" not in ticket
    assert not tickets.redeem(ticket, "sessionB", clock())  # bound to its session
    forged = ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB")
    assert not tickets.redeem(forged, "sessionA", clock())  # signed
    assert tickets.redeem(ticket, "sessionA", clock())
    assert not tickets.redeem(ticket, "sessionA", clock())  # once
    late, _ = tickets.mint("sessionA", clock())
    clock.advance(seconds=61)
    assert not tickets.redeem(late, "sessionA", clock())  # short-lived


def test_allow_list_has_no_browser_wide_methods() -> None:
    for method in BROWSER_METHODS:
        domain = method.split(".")[0]
        assert domain in {"Browser", "Target", "Storage", "Schema"}, method
    for banned in (
        "Browser.crash",
        "Browser.getBrowserCommandLine",
        "Target.createBrowserContext",
        "Target.disposeBrowserContext",
        "Target.exposeDevToolsProtocol",
        "Target.sendMessageToTarget",
        "Tracing.start",
        "SystemInfo.getInfo",
    ):
        assert banned not in BROWSER_METHODS
    assert not {"Tracing", "SystemInfo", "Memory", "Target", "Browser"} & SESSION_DOMAINS


# ----------------------------------------------------------- real clients


def test_playwright_connect_over_cdp_and_rest_share_the_page(
    cdp_app: Flask, page_server: str
) -> None:
    alice = Rest(cdp_app.test_client(), TOKEN_A)
    record = alice.start()
    sid = record["session_id"]
    _state, cdp = state_of(cdp_app)
    traffic = Traffic()
    cdp.log_traffic = traffic

    async def drive() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with async_playwright() as p:
            browser = await p.chromium.connect_over_cdp(
                record["cdp_url"], headers={"Authorization": f"Bearer {TOKEN_A}"}
            )
            assert len(browser.contexts) == 1
            page = browser.contexts[0].pages[0]
            await page.goto(f"{page_server}/")
            seen["title"] = await page.title()
            await page.click("text=second")
            await page.wait_for_url(f"{page_server}/second")
            seen["text"] = await page.inner_text("p")
            seen["shot"] = await page.screenshot()
            # the REST door sees the CDP goto …
            obs = await asyncio.to_thread(alice.ok, "POST", "/env/observe", session_id=sid)
            seen["rest_url"] = obs["observation"]["url"]
            # … and the CDP client sees a REST step
            await asyncio.to_thread(
                alice.ok, "POST", "/env/step", session_id=sid, type="goto", url=f"{page_server}/"
            )
            await page.wait_for_url(f"{page_server}/")
            seen["after_rest_goto"] = page.url
            # a page of its own, in the session's context
            extra = await browser.contexts[0].new_page()
            await extra.goto(f"{page_server}/set-cookie")
            seen["cookies"] = await browser.contexts[0].cookies()
            await extra.close()
            await browser.close()  # disconnects; the session lives on
        return seen

    seen = asyncio.run(drive())
    assert seen["title"] == "Home"
    assert seen["text"] == "second page"
    assert png_size(base64.b64encode(seen["shot"]).decode()) == (1280, 720)
    assert seen["rest_url"] == f"{page_server}/second"
    assert seen["after_rest_goto"] == f"{page_server}/"
    assert [c["name"] for c in seen["cookies"]] == ["visitor"]

    after = alice.ok("GET", f"/session/{sid}")
    assert after["status"] == "active"  # a client that disconnects does not end the session
    shot = alice.ok("POST", "/env/observe", session_id=sid, screenshot=True)
    assert png_size(shot["observation"]["screenshot"]) == (1280, 720)  # REST viewport intact

    print("\nPlaywright connect_over_cdp, browser-level:", traffic.browser_level())
    print("Playwright, in sessions:", traffic.session_level())
    assert set(traffic.browser_level()) <= set(BROWSER_METHODS)
    assert not traffic.errors, traffic.errors  # nothing a real client sends was refused


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_puppeteer_connect_runs_the_same_script(cdp_app: Flask, page_server: str) -> None:
    if not (ROOT / "node_modules" / "puppeteer-core").is_dir():
        pytest.skip("run scripts/install-node-deps (make test does) for puppeteer-core")
    alice = Rest(cdp_app.test_client(), TOKEN_A)
    record = alice.start()
    _state, cdp = state_of(cdp_app)
    traffic = Traffic()
    cdp.log_traffic = traffic
    run = subprocess.run(
        ["node", "tests/puppeteer_client.mjs", record["cdp_url"], TOKEN_A, page_server],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["pages"] == 1
    assert seen["title"] == "Home"
    assert seen["url"] == f"{page_server}/second"
    assert seen["text"] == "second page"
    assert seen["png"] and seen["screenshotBytes"] > 1000
    assert seen["newPageText"] == "second page" and seen["pagesAfter"] == 1
    obs = alice.ok("POST", "/env/observe", session_id=record["session_id"], screenshot=True)
    assert obs["observation"]["url"] == f"{page_server}/second"
    assert png_size(obs["observation"]["screenshot"]) == (1280, 720)

    print("\nPuppeteer connect, browser-level:", traffic.browser_level())
    print("Puppeteer, in sessions:", traffic.session_level())
    assert set(traffic.browser_level()) <= set(BROWSER_METHODS)
    assert not traffic.errors, traffic.errors


# ------------------------------------------------------------------ screencasts

# An animated page: the compositor paints every frame, so a screencast has frames to send.
ANIMATED = (
    "data:text/html,<title>Animated</title><style>div{width:80px;height:80px;background:red;"
    "animation:m 0.5s linear infinite alternate}@keyframes m{to{transform:translateX(600px)}}"
    "</style><div></div>"
)
HANDLE_TYPES = {
    "sessionId": ("SessionID", "Target.SessionID"),
    "targetId": ("TargetID", "Target.TargetID"),
    "browserContextId": ("BrowserContextID", "Browser.BrowserContextID"),
}


def protocol_parameters() -> dict[str, dict[str, str]]:
    """Every command's parameters and their types, from the protocol Playwright ships
    (``types/protocol.d.ts``): ``{"Page.screencastFrameAck": {"sessionId": "number"}}``."""
    import playwright

    path = Path(playwright.__file__).parent / "driver/package/types/protocol.d.ts"
    commands: dict[str, dict[str, str]] = {}
    domain = command = None
    for line in path.read_text().splitlines():
        if line.startswith("  export namespace "):
            domain = line.split()[2]
        elif line.startswith("    export type ") and line.endswith("Parameters = {"):
            name = line.split()[2].removesuffix("Parameters")
            command = f"{domain}.{name}"
            commands[command] = {}
        elif line == "    }":
            command = None
        elif command is not None and line.startswith("      ") and not line.startswith("       "):
            field, _, kind = line.strip().rstrip(";").partition(":")
            if field and not field.startswith(("/", "*")):
                commands[command][field.rstrip("?")] = kind.strip()
    return commands


def test_every_id_named_parameter_is_a_handle_or_listed_as_not_one() -> None:
    """The proxy checks sessionId, targetId and browserContextId parameters against what the
    client owns; a parameter so named that is something else (a screencast frame number) must
    be in NOT_HANDLES, or the proxy refuses a correct command."""
    commands = protocol_parameters()
    assert len(commands) > 400 and "Page.screencastFrameAck" in commands
    reachable = [
        name
        for name in commands
        if name in BROWSER_METHODS
        or name in SESSION_METHODS
        or name.partition(".")[0] in SESSION_DOMAINS
    ]
    not_handles: dict[str, set[str]] = {}
    for name in reachable:
        for param in HANDLE_PARAMS:
            kind = commands[name].get(param)
            if kind is not None and kind not in HANDLE_TYPES[param]:
                not_handles.setdefault(name, set()).add(param)
    assert not_handles == {name: set(params) for name, params in NOT_HANDLES.items()}


def screencast_frames(raw: Raw, session: str, seconds: float) -> list[dict[str, Any]]:
    """Screencast frames for ``seconds``, each acknowledged as a client must."""
    frames = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = raw.recv(left)
        except TimeoutError:
            break
        if message.get("method") == "Page.screencastFrame":
            frames.append(message)
            ack = raw.call(
                "Page.screencastFrameAck", {"sessionId": message["params"]["sessionId"]}, session
            )
            assert "error" not in ack, ack
    return frames


def test_a_raw_client_acknowledges_screencast_frames_and_gets_more(cdp_app: Flask) -> None:
    alice = Rest(cdp_app.test_client(), TOKEN_A)
    record = alice.start()
    raw = Raw(record["cdp_url"], TOKEN_A)
    try:
        session = raw.attach_page()
        raw.call("Page.enable", {}, session)
        raw.call("Page.navigate", {"url": ANIMATED}, session)
        deadline = time.monotonic() + 15  # started on the document it navigated to
        while raw.recv(max(0.1, deadline - time.monotonic())).get("method") != (
            "Page.loadEventFired"
        ):
            pass
        started = raw.call(
            "Page.startScreencast",
            {"format": "jpeg", "quality": 50, "maxWidth": 640, "maxHeight": 360},
            session,
        )
        assert "error" not in started, started
        frames = screencast_frames(raw, session, 3)
        # Chromium sends a frame only once the previous one is acknowledged: more than one
        # frame means the acknowledgements went through
        assert len(frames) >= 5, len(frames)
        assert base64.b64decode(frames[0]["params"]["data"])[:2] == b"\xff\xd8"  # JPEG
        assert all(isinstance(f["params"]["sessionId"], int) for f in frames)  # not a CDP one
        # a session id that is not this client's is still refused where it is one
        other = raw.call("Target.detachFromTarget", {"sessionId": "F" * 32})
        assert other["error"]["message"] == "No session with given id"
    finally:
        raw.close()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_puppeteer_page_screencast_records_frames(cdp_app: Flask, tmp_path: Path) -> None:
    """Puppeteer's page.screencast() through cdp_url, encoded by a real ffmpeg (the static
    build the imageio-ffmpeg wheel ships), records more than one frame."""
    if not (ROOT / "node_modules" / "puppeteer-core").is_dir():
        pytest.skip("run scripts/install-node-deps (make test does) for puppeteer-core")
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    alice = Rest(cdp_app.test_client(), TOKEN_A)
    record = alice.start()
    _state, cdp = state_of(cdp_app)
    traffic = Traffic()
    cdp.log_traffic = traffic
    video = tmp_path / "cast.webm"
    run = subprocess.run(
        [
            *("node", "tests/puppeteer_screencast.mjs", record["cdp_url"], TOKEN_A),
            *(ANIMATED, str(video), ffmpeg, "2000"),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["title"] == "Animated"
    assert not traffic.errors, traffic.errors  # no acknowledgement was refused
    assert seen["acks"] >= 5, seen
    probe = subprocess.run(
        [ffmpeg, "-i", str(video), "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    counted = [int(part) for part in _frame_counts(probe.stderr)]
    assert counted and counted[-1] > 1, probe.stderr[-2000:]


def _frame_counts(ffmpeg_log: str) -> list[str]:
    """The ``frame=  N`` counters of ffmpeg's progress lines."""
    import re

    return re.findall(r"frame=\s*(\d+)", ffmpeg_log)


# ------------------------------------------------------------------ auth


def test_upgrade_auth_like_rest_and_tickets(cdp_app: Flask, clock: ManualClock) -> None:
    alice = Rest(cdp_app.test_client(), TOKEN_A)
    bob = Rest(cdp_app.test_client(), TOKEN_B)
    record = alice.start()
    url, sid = record["cdp_url"], record["session_id"]

    def status_of(target: str, **kwargs: Any) -> int:
        with pytest.raises(InvalidStatus) as info:
            Raw(target, **kwargs)
        return info.value.response.status_code

    assert status_of(url) == 401
    assert status_of(url, token="wrong") == 401
    assert status_of(url, headers={"Authorization": f"Token {TOKEN_A}"}) == 401
    assert status_of(url, token=TOKEN_B) == 404  # someone else's session
    assert status_of(url.replace(sid, "no-such-session-123"), token=TOKEN_A) == 404
    assert status_of(url + "?token=" + TOKEN_A) == 401  # never the raw token in a URL

    ticket = alice.ok("POST", f"/session/{sid}/cdp-ticket")
    assert TOKEN_A not in ticket["cdp_url"] and ticket["cdp_url"].startswith(url + "?ticket=")
    assert bob.call("POST", f"/session/{sid}/cdp-ticket")[0] == 404
    client = Raw(ticket["cdp_url"])  # no header: the ticket alone
    assert "result" in client.call("Browser.getVersion")
    client.close()
    assert status_of(ticket["cdp_url"]) == 401  # one use
    other = alice.start()
    assert status_of(ticket["cdp_url"].replace(sid, other["session_id"])) == 401  # bound

    late = alice.ok("POST", f"/session/{sid}/cdp-ticket")["cdp_url"]
    clock.advance(seconds=61)
    assert status_of(late) == 401  # short-lived
    dying = alice.ok("POST", f"/session/{sid}/cdp-ticket")["cdp_url"]
    alice.ok("DELETE", f"/session/{sid}")
    assert status_of(dying) == 409  # dies with its session
    assert status_of(url, token=TOKEN_A) == 409


def test_verify_callback_is_used_on_the_upgrade(make_app: AppFactory) -> None:
    app = make_app(
        SESSIONS_TOKENS=None, SESSIONS_VERIFY_TOKEN=lambda t: "carol" if t == "c" else None
    )
    carol = Rest(app.test_client(), "c")
    record = carol.start()
    client = Raw(record["cdp_url"], token="c")
    assert "result" in client.call("Browser.getVersion")
    client.close()
    with pytest.raises(InvalidStatus):
        Raw(record["cdp_url"], token="d")


# ---------------------------------------------------------------- limits


def test_client_limit_message_size_and_slow_reader(make_app: AppFactory) -> None:
    app = make_app(
        SESSIONS_WARM_POOL=0,
        SESSIONS_MAX_CDP_CLIENTS_PER_SESSION=2,
        SESSIONS_CDP_MAX_MESSAGE_MB=1,
        SESSIONS_CDP_MAX_BUFFER_MB=1,
    )
    alice = Rest(app.test_client(), TOKEN_A)
    record = alice.start()
    first, second = Raw(record["cdp_url"], TOKEN_A), Raw(record["cdp_url"], TOKEN_A)
    with pytest.raises(InvalidStatus) as info:
        Raw(record["cdp_url"], TOKEN_A)
    assert info.value.response.status_code == 429
    _state, cdp = state_of(app)
    second.close()
    assert wait_for(lambda: cdp.clients(record["session_id"]) == 1, 10)

    big = json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {"x": "y" * 2_000_000}})
    second = Raw(record["cdp_url"], TOKEN_A)
    second.ws.send(big)
    too_big = second.closed().rcvd
    assert too_big is not None and too_big.code == 1009  # message too big

    # A client that sends but never reads: disconnected past the buffer, memory bounded.
    session = first.attach_page()
    first.events(0.5)
    payload = '"x".repeat(200000)'
    for _ in range(300):  # 60 MB of answers it never reads
        first.send("Runtime.evaluate", {"expression": payload}, session)
    assert wait_for(lambda: cdp.clients(record["session_id"]) == 0, 30)
    assert alice.ok("GET", f"/session/{record['session_id']}")["status"] == "active"


# ------------------------------------------------------- hostile tenant

# What principal B, holding a valid socket to its own session, tries against A's. Each row:
# (what, method, params, where) where "browser" is B's browser-level connection, "root" a
# session B got with Target.attachToBrowserTarget (what Playwright's new_cdp_session uses),
# "own" B's own page session, and "A" a sessionId of A's (learned out of band). {A_TARGET}, {A_CTX},
# {A_SESSION} and {DEBUG_PORT} are filled in. Every one must be refused.
HOSTILE_ATTEMPTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("crash the browser", "Browser.crash", {}, "browser"),
    ("crash the GPU process", "Browser.crashGpuProcess", {}, "browser"),
    ("read the browser's command line", "Browser.getBrowserCommandLine", {}, "browser"),
    ("read histograms", "Browser.getHistograms", {}, "browser"),
    ("window of A's page", "Browser.getWindowForTarget", {"targetId": "{A_TARGET}"}, "browser"),
    (
        "resize window 1",
        "Browser.setWindowBounds",
        {"windowId": 1, "bounds": {"width": 9}},
        "browser",
    ),
    (
        "downloads into A's context",
        "Browser.setDownloadBehavior",
        {"behavior": "allow", "browserContextId": "{A_CTX}", "downloadPath": "/tmp"},
        "browser",
    ),
    (
        "permissions in A's context",
        "Browser.grantPermissions",
        {"permissions": ["geolocation"], "browserContextId": "{A_CTX}"},
        "browser",
    ),
    ("new context", "Target.createBrowserContext", {}, "browser"),
    (
        "new context behind a proxy",
        "Target.createBrowserContext",
        {"proxyServer": "http://127.0.0.1:9"},
        "browser",
    ),
    (
        "dispose A's context",
        "Target.disposeBrowserContext",
        {"browserContextId": "{A_CTX}"},
        "browser",
    ),
    (
        "page in A's context",
        "Target.createTarget",
        {"url": "about:blank", "browserContextId": "{A_CTX}"},
        "browser",
    ),
    (
        "attach to A's page",
        "Target.attachToTarget",
        {"targetId": "{A_TARGET}", "flatten": True},
        "browser",
    ),
    ("attach non-flat to A's page", "Target.attachToTarget", {"targetId": "{A_TARGET}"}, "browser"),
    (
        "via a browser-target session: attach to A",
        "Target.attachToTarget",
        {"targetId": "{A_TARGET}", "flatten": True},
        "root",
    ),
    ("via a browser-target session: crash", "Browser.crash", {}, "root"),
    (
        "via a browser-target session: A's cookies",
        "Storage.getCookies",
        {"browserContextId": "{A_CTX}"},
        "root",
    ),
    ("via a browser-target session: tracing", "Tracing.start", {}, "root"),
    ("info of A's page", "Target.getTargetInfo", {"targetId": "{A_TARGET}"}, "browser"),
    ("close A's page", "Target.closeTarget", {"targetId": "{A_TARGET}"}, "browser"),
    ("activate A's page", "Target.activateTarget", {"targetId": "{A_TARGET}"}, "browser"),
    (
        "auto-attach related to A's page",
        "Target.autoAttachRelated",
        {"targetId": "{A_TARGET}", "waitForDebuggerOnStart": False},
        "browser",
    ),
    (
        "expose the protocol to A's page",
        "Target.exposeDevToolsProtocol",
        {"targetId": "{A_TARGET}"},
        "browser",
    ),
    (
        "message A's page non-flat",
        "Target.sendMessageToTarget",
        {"targetId": "{A_TARGET}", "message": "{}"},
        "browser",
    ),
    ("detach A's session", "Target.detachFromTarget", {"sessionId": "{A_SESSION}"}, "browser"),
    ("open DevTools on A's page", "Target.openDevTools", {"targetId": "{A_TARGET}"}, "browser"),
    (
        "discover remote targets",
        "Target.setRemoteLocations",
        {"locations": [{"host": "127.0.0.1", "port": 9}]},
        "browser",
    ),
    ("A's cookies", "Storage.getCookies", {"browserContextId": "{A_CTX}"}, "browser"),
    ("clear A's cookies", "Storage.clearCookies", {"browserContextId": "{A_CTX}"}, "browser"),
    (
        "storage without a context",
        "Storage.clearDataForOrigin",
        {"origin": "*", "storageTypes": "all"},
        "browser",
    ),
    ("system info", "SystemInfo.getInfo", {}, "browser"),
    ("process list", "SystemInfo.getProcessInfo", {}, "browser"),
    ("browser-wide tracing", "Tracing.start", {}, "browser"),
    ("tracing categories", "Tracing.getCategories", {}, "browser"),
    ("browser memory profile", "Memory.getBrowserSamplingProfile", {}, "browser"),
    ("browser-wide interception", "Fetch.enable", {}, "browser"),
    (
        "browser-wide certificate bypass",
        "Security.setIgnoreCertificateErrors",
        {"ignore": True},
        "browser",
    ),
    ("open a TCP port", "Tethering.bind", {"port": 9222}, "browser"),
    ("load an extension", "Extensions.loadUnpacked", {"path": "/tmp"}, "browser"),
    ("read a stream handle", "IO.read", {"handle": "1"}, "browser"),
    ("evaluate at browser level", "Runtime.evaluate", {"expression": "1"}, "browser"),
    ("evaluate in A's page", "Runtime.evaluate", {"expression": "document.title"}, "A"),
    ("navigate A's page", "Page.navigate", {"url": "about:blank"}, "A"),
    ("screenshot A's page", "Page.captureScreenshot", {}, "A"),
    ("A's cookies via A's session", "Network.getAllCookies", {}, "A"),
    ("targets from a page session", "Target.setDiscoverTargets", {"discover": True}, "own"),
    (
        "attach to A from a page session",
        "Target.attachToTarget",
        {"targetId": "{A_TARGET}", "flatten": True},
        "own",
    ),
    ("browser target from a page session", "Target.attachToBrowserTarget", {}, "own"),
    (
        "expose the protocol from a page session",
        "Target.exposeDevToolsProtocol",
        {"targetId": "{A_TARGET}"},
        "own",
    ),
    (
        "page in A's context from a page session",
        "Target.createTarget",
        {"url": "about:blank", "browserContextId": "{A_CTX}"},
        "own",
    ),
    (
        "A's cookies from a page session",
        "Storage.getCookies",
        {"browserContextId": "{A_CTX}"},
        "own",
    ),
    ("command line from a page session", "Browser.getBrowserCommandLine", {}, "own"),
    ("crash from a page session", "Browser.crash", {}, "own"),
    ("tracing from a page session", "Tracing.start", {}, "own"),
    ("system info from a page session", "SystemInfo.getInfo", {}, "own"),
    (
        "memory pressure for everyone",
        "Memory.simulatePressureNotification",
        {"level": "critical"},
        "own",
    ),
    (
        "read a server file into an input",
        "DOM.setFileInputFiles",
        {"files": ["/etc/passwd"], "nodeId": 1},
        "own",
    ),
    (
        "drag a server file in",
        "Input.dispatchDragEvent",
        {
            "type": "drop",
            "x": 1,
            "y": 1,
            "data": {"items": [], "dragOperationsMask": 1, "files": ["/etc/passwd"]},
        },
        "own",
    ),
    (
        "downloads to a server path",
        "Page.setDownloadBehavior",
        {"behavior": "allow", "downloadPath": "/tmp"},
        "own",
    ),
    ("navigate to a server file", "Page.navigate", {"url": "file:///etc/passwd"}, "own"),
    ("navigate to chrome://", "Page.navigate", {"url": "chrome://version"}, "own"),
    (
        "open a server file in a new page",
        "Target.createTarget",
        {"url": "file:///etc/passwd"},
        "browser",
    ),
    (
        "fetch a server file",
        "Network.loadNetworkResource",
        {
            "url": "file:///etc/passwd",
            "frameId": "x",
            "options": {"disableCache": True, "includeCredentials": False},
        },
        "own",
    ),
    ("crash its own renderer", "Page.crash", {}, "own"),
    ("close the session's page", "Page.close", {}, "own"),
]


def _fill(value: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return names.get(value[1:-1], value)
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value


def test_hostile_tenant_is_refused_and_sees_nothing_of_a(cdp_app: Flask, page_server: str) -> None:
    alice, bob = Rest(cdp_app.test_client(), TOKEN_A), Rest(cdp_app.test_client(), TOKEN_B)
    a = alice.start(url=MARKER_PAGE)
    a_target, a_ctx = ids_of(cdp_app, a["session_id"])
    a_client = Raw(a["cdp_url"], TOKEN_A)  # A's own socket, for a sessionId of A's
    a_session = a_client.attach_page()

    b = bob.start()
    b_client = Raw(b["cdp_url"], TOKEN_B)
    b_target, b_ctx = ids_of(cdp_app, b["session_id"])
    # B asks to see everything the way Playwright and Puppeteer do
    discovered = b_client.call("Target.setDiscoverTargets", {"discover": True})
    assert "result" in discovered
    b_client.call(
        "Target.setAutoAttach",
        {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
    )
    b_session = b_client.attach_page()
    b_root = b_client.call("Target.attachToBrowserTarget")["result"]["sessionId"]
    via_root = b_client.call("Target.getTargets", {}, b_root)["result"]["targetInfos"]
    assert {t["targetId"] for t in via_root} == {b_target}
    listed = b_client.call("Target.getTargets")["result"]["targetInfos"]
    assert {t["targetId"] for t in listed} == {b_target}
    contexts = b_client.call("Target.getBrowserContexts")["result"]["browserContextIds"]
    assert contexts == [b_ctx]
    inside = b_client.call("Target.getTargets", {}, b_session)["result"]["targetInfos"]
    assert {t["targetId"] for t in inside} == {b_target}

    # A opens a second page and navigates while B listens: B hears nothing of it.
    created = a_client.call("Target.createTarget", {"url": MARKER_PAGE})
    a_second = created["result"]["targetId"]

    names = {
        "A_TARGET": a_target,
        "A_CTX": a_ctx,
        "A_SESSION": a_session,
    }
    outcomes: list[tuple[str, str, str]] = []
    for what, method, params, where in HOSTILE_ATTEMPTS:
        session = {"browser": "", "root": b_root, "own": b_session, "A": a_session}[where]
        answer = b_client.call(method, _fill(params, names), session)
        assert "error" in answer, (what, method, answer)
        outcomes.append((what, method, answer["error"]["message"][:90]))

    # The debugging port is out of reach of B's page: Chromium refuses its restricted ports,
    # and through the egress proxy (on by default) the proxy refuses the same list.
    port = state_of(cdp_app)[1].upstream.port
    assert port in UNSAFE_PORTS
    nav = b_client.call("Page.navigate", {"url": f"http://127.0.0.1:{port}/json/list"}, b_session)
    error = nav["result"].get("errorText")
    b_client.events(1.0)
    text = b_client.call(
        "Runtime.evaluate", {"expression": "document.documentElement.outerHTML"}, b_session
    )
    page = json.dumps(text)
    assert error == "net::ERR_UNSAFE_PORT" or "restricted port" in page, (nav, page[:500])
    assert "webSocketDebuggerUrl" not in page and a_target not in page
    outcomes.append(("read /json/list via its page", "Page.navigate", error or "proxy: 403"))
    assert MARKER not in page

    b_client.events(1.0)
    received = "\n".join(b_client.frames)
    for secret in (MARKER, a_target, a_ctx, a_session, a_second):
        assert secret not in received, secret

    # Browser.close ends B's attachment only.
    b_client.send("Browser.close")
    closed = b_client.closed()
    assert closed.rcvd is not None and "detached" in closed.rcvd.reason
    assert bob.ok("GET", f"/session/{b['session_id']}")["status"] == "active"
    assert alice.ok("GET", f"/session/{a['session_id']}")["status"] == "active"
    title = a_client.call("Runtime.evaluate", {"expression": "document.title"}, a_session)
    assert title["result"]["result"]["value"] == MARKER  # A is untouched
    a_client.close()

    print(f"\nhostile tenant: {len(outcomes)} attempts, all refused:")
    for what, method, message in outcomes:
        print(f"  {what:42} {method:38} → {message}")


# ------------------------------------------------------------- lifecycle


def test_reaper_closes_a_silent_socket_and_spares_a_chatty_one(
    make_app: AppFactory, clock: ManualClock
) -> None:
    app = make_app(SESSIONS_WARM_POOL=0, SESSIONS_REAPER_INTERVAL_SECONDS=0.05)
    alice = Rest(app.test_client(), TOKEN_A)
    quiet = alice.start(session_timeout_minutes=1)
    chatty = alice.start(session_timeout_minutes=1)
    silent_client = Raw(quiet["cdp_url"], TOKEN_A)
    talking_client = Raw(chatty["cdp_url"], TOKEN_A)
    for _ in range(3):  # 120 s in all; the chatty client speaks every 40 s
        clock.advance(seconds=40)
        assert "result" in talking_client.call("Browser.getVersion")
    closed = silent_client.closed()
    assert closed.rcvd is not None and closed.rcvd.code == 1000
    assert "timed_out" in closed.rcvd.reason and "idle timeout" in closed.rcvd.reason
    assert alice.ok("GET", f"/session/{quiet['session_id']}")["status"] == "timed_out"
    assert alice.ok("GET", f"/session/{chatty['session_id']}")["status"] == "active"
    assert "result" in talking_client.call("Browser.getVersion")

    alice.ok("POST", "/session/close", session_id=chatty["session_id"])
    closed = talking_client.closed()
    assert closed.rcvd is not None and closed.rcvd.reason.startswith("session closed")


def test_shutdown_with_sockets_open_closes_them_and_leaves_no_chromium(
    page_server: str,
) -> None:
    server: Server = launch(server_env("server-token"))
    try:
        match = server.wait_for_stdout(r"CDP WebSocket on ws://127\.0\.0\.1:(\d+)/", 10)
        assert match is not None, server.output()
        headers = {"Authorization": "Bearer server-token"}
        record = requests.post(
            server.base + "/session/start",
            json={"url": f"{page_server}/"},
            headers=headers,
            timeout=30,
        ).json()
        assert record["cdp_url"] == f"ws://127.0.0.1:{match.group(1)}/cdp/{record['session_id']}"
        clients = [Raw(record["cdp_url"], "server-token") for _ in range(2)]
        session = clients[0].attach_page()
        assert (
            clients[0].call("Runtime.evaluate", {"expression": "document.title"}, session)[
                "result"
            ]["result"]["value"]
            == "Home"
        )
        pids = chromium_pids(server.pid)
        assert pids
        everything = server.remember_children()
        server.proc.send_signal(signal.SIGTERM)
        for client in clients:
            closed = client.closed(STOP_TIMEOUT)
            assert closed.rcvd is not None and closed.rcvd.code == 1001, closed
            assert "server shut down" in closed.rcvd.reason
        assert server.proc.wait(STOP_TIMEOUT) == 0
        assert wait_for(lambda: not alive(pids), 5), f"Chromium left running: {alive(pids)}"
        assert wait_for(lambda: not alive(everything), 5), f"left running: {alive(everything)}"
        assert "Traceback" not in "".join(server.stderr), server.output()
    finally:
        server.stop()


def test_cdp_off_opens_no_port_and_gives_no_url(make_app: AppFactory) -> None:
    app = make_app(SESSIONS_CDP=False, SESSIONS_WARM_POOL=0)
    alice = Rest(app.test_client(), TOKEN_A)
    record = alice.ok("POST", "/session/start")
    assert record["cdp_url"] is None
    assert alice.call("POST", f"/session/{record['session_id']}/cdp-ticket")[0] == 400
    assert FlaskSessions.state(app).runtime.debugging is None


def test_cdp_url_honours_forwarded_proto_and_public_url(make_app: AppFactory) -> None:
    app = make_app(SESSIONS_WARM_POOL=0)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN_A}", "X-Forwarded-Proto": "https"}
    record = client.post(
        "/session/start", json={}, headers=headers, base_url="http://example.test:8000"
    ).get_json()
    assert record["cdp_url"].startswith("wss://example.test:")
    public = make_app(
        SESSIONS_WARM_POOL=0, SESSIONS_CDP_PUBLIC_URL="wss://browsers.example.test/x/"
    )
    record = public.test_client().post("/session/start", json={}, headers=headers).get_json()
    assert record["cdp_url"] == f"wss://browsers.example.test/x/cdp/{record['session_id']}"
