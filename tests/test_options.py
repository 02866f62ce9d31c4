"""Per-session browser options (issue 18, item 1), with real Chromium and local servers.

Every option is read back from inside the page (``navigator``, ``Intl``, ``matchMedia``,
``navigator.geolocation``, a header-echo server, a counting server), on the session's own
page and on a page a CDP client (Playwright ``connect_over_cdp``) opens in the session.
The per-session proxy is a small forward proxy on 127.0.0.2 with Basic auth that counts
what it forwards; destinations are servers on 127.0.0.1 and 127.0.0.3. Nothing here sends
a packet outside 127.0.0.0/8, not even a DNS query.
"""

from __future__ import annotations

import asyncio
import base64
import json
import select
import shutil
import signal
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import psutil
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from playwright.async_api import async_playwright

from flask_sessions import FlaskSessions
from flask_sessions.host.egress import _Request
from flask_sessions.host.upstream import Upstream, UpstreamRoute, _matches
from flask_sessions.options import ProxyOptions
from flask_sessions.page.capture import image_size
from flask_sessions.schemas import StartRequest, parse
from flask_sessions.testing import ServerProcess, free_port, start_process

from .conftest import AUTH_A, AUTH_B, TOKEN_A, AppFactory, chromium_pids, wait_for
from .test_cluster import _pings
from .test_cluster import front as cluster_front
from .test_cluster import host as cluster_host
from .test_egress import loopback_only

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
USER = "proxy-user"
PASSWORD = "s3cret-Pa55"  # never to be seen in any answer, record or log line

# ------------------------------------------------------------------ local servers


class _Origin(ThreadingHTTPServer):
    """Pages on one loopback address: it records each request's path and headers."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.connections = 0
        self.lock = threading.Lock()
        super().__init__(address, _OriginHandler)

    def server_bind(self) -> None:  # no getfqdn(): no reverse DNS query
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "origin", self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.requests]

    def headers_of(self, prefix: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for path, h in self.requests if path.startswith(prefix)]

    def reset(self) -> None:
        with self.lock:
            self.requests, self.connections = [], 0


# A page that loads one resource of each blockable type (two images: one without an
# extension, as a CDN serves them), and a script that is never blocked.
RESOURCES = """<!doctype html><title>resources</title>
<style>@font-face { font-family: F; src: url(/r/font.woff2?$T) format("woff2"); }
 body { font-family: F; }</style>
<link rel=stylesheet href="/r/style.css?$T">
<img src="/r/pic.png?$T"><img src="/r/pic?$T">
<video src="/r/clip.webm?$T" preload=auto muted autoplay></video>
<audio src="/r/sound.ogg?$T" preload=auto></audio>
<script src="/r/app.js?$T"></script>
<p>text that uses the font</p>"""


class _OriginHandler(BaseHTTPRequestHandler):
    server: _Origin

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        with self.server.lock:
            self.server.requests.append((self.path, dict(self.headers.items())))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/echo":  # the request's headers, as JSON in the page
            body = json.dumps(dict(self.headers.items()))
            self._send(200, f"<!doctype html><title>echo</title><pre>{body}</pre>", "text/html")
        elif url.path == "/page":
            self._send(200, query["html"], "text/html")
        elif url.path == "/resources":
            self._send(200, RESOURCES.replace("$T", query.get("t", "")), "text/html")
        elif url.path.startswith("/r/"):
            kinds = {
                ".css": "text/css",
                ".js": "text/javascript",
                "font.woff2": "font/woff2",
                ".webm": "video/webm",
                ".ogg": "audio/ogg",
            }
            kind = next((t for end, t in kinds.items() if url.path.endswith(end)), "image/png")
            body_bytes = PNG_1PX if kind == "image/png" else b"/* r */"
            self._send(200, body_bytes, kind)
        else:
            self._send(200, "<!doctype html><title>origin</title><p>origin page</p>", "text/html")

    def _send(self, status: int, body: str | bytes, kind: str) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ForwardProxy(socketserver.ThreadingTCPServer):
    """A small HTTP forward proxy with Basic auth: absolute-form requests and CONNECT.

    ``seen`` counts what it forwarded, by ``(method, host:port)``; ``refused`` counts the
    requests it answered 407 (no or wrong credentials).
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()
        self.refused = 0
        self.auth_headers: list[str] = []
        self.lock = threading.Lock()
        super().__init__(address, _ProxyHandler)

    @property
    def server(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def hosts(self) -> set[str]:
        with self.lock:
            return {where for _, where in self.seen}

    def reset(self) -> None:
        with self.lock:
            self.seen, self.refused, self.auth_headers = Counter(), 0, []


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: _ForwardProxy
    rbufsize = 0  # unbuffered: nothing past the head is read ahead of the relay

    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.rfile.readline(65536)
            if not line:
                return
            head += line
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ")
        headers = [line.split(":", 1) for line in lines[1:] if ":" in line]
        auth = next((v.strip() for k, v in headers if k.lower() == "proxy-authorization"), "")
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        with self.server.lock:
            self.server.auth_headers.append(auth)
        if auth != expected:
            with self.server.lock:
                self.server.refused += 1
            self.wfile.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n'
                b"Connection: close\r\n\r\n"
            )
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = self._open(method, host, int(port))
            if upstream is None:
                return
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = urlsplit(target)
            upstream = self._open(method, url.hostname or "", url.port or 80)
            if upstream is None:
                return
            path = url.path + (f"?{url.query}" if url.query else "")
            kept = [f"{k}:{v}" for k, v in headers if not k.lower().startswith("proxy-")]
            upstream.sendall(
                "\r\n".join([f"{method} {path} HTTP/1.1", *kept, "", ""]).encode("latin-1")
            )
        self._relay(upstream)

    def _open(self, method: str, host: str, port: int) -> socket.socket | None:
        with self.server.lock:
            self.server.seen[(method, f"{host}:{port}")] += 1
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return None

    def _relay(self, upstream: socket.socket) -> None:
        client = self.connection
        with upstream:
            for _ in range(10_000):
                ready, _, _ = select.select([client, upstream], [], [], 10)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)


@dataclass
class Net:
    """The local servers: pages on 127.0.0.1, a page server on 127.0.0.3 (blocked where a
    test blocks it), and the forward proxy on 127.0.0.2."""

    origin: _Origin
    far: _Origin
    proxy: _ForwardProxy
    threads: list[threading.Thread] = field(default_factory=list)

    def reset(self) -> None:
        self.origin.reset()
        self.far.reset()
        self.proxy.reset()


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    servers = (
        _Origin(("127.0.0.1", 0)),
        _Origin(("127.0.0.3", 0)),
        _ForwardProxy(("127.0.0.2", 0)),
    )
    found = Net(*servers)
    for server in servers:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        found.threads.append(thread)
    yield found
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def local(net: Net) -> Net:
    net.reset()
    return net


def proxy_option(net: Net, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    return {"server": net.proxy.server, "username": USER, "password": password, **extra}


# ------------------------------------------------------------------ helpers


def start(client: FlaskClient, auth: dict[str, str] = AUTH_A, **body: Any) -> dict[str, Any]:
    response = client.post("/session/start", json=body, headers=auth)
    assert response.status_code == 200, response.get_json()
    record: dict[str, Any] = response.get_json()
    return record


def refused(client: FlaskClient, path: str = "/session/start", **body: Any) -> dict[str, Any]:
    response = client.post(path, json=body, headers=AUTH_A)
    assert response.status_code == 400, response.get_json()
    answer: dict[str, Any] = response.get_json()
    return answer


def observe(client: FlaskClient, sid: str, **body: Any) -> dict[str, Any]:
    response = client.post("/env/observe", json={"session_id": sid, **body}, headers=AUTH_A)
    assert response.status_code == 200, response.get_json()
    observation: dict[str, Any] = response.get_json()["observation"]
    return observation


def in_page(app: Flask, sid: str, script: str) -> Any:
    """``script`` evaluated in the session's current page (on the host's loop)."""
    state = FlaskSessions.state(app)
    live = state.manager.live(sid)
    assert live is not None
    return state.runtime.submit(live.page.evaluate(script), 30)


PROBE = """async () => ({
  userAgent: navigator.userAgent,
  language: navigator.language,
  timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
  width: innerWidth,
  height: innerHeight,
  dark: matchMedia('(prefers-color-scheme: dark)').matches,
  position: await new Promise(resolve => navigator.geolocation.getCurrentPosition(
    p => resolve([p.coords.latitude, p.coords.longitude, p.coords.accuracy]),
    e => resolve('error ' + e.code + ': ' + e.message), {timeout: 5000})),
  notifications: (await navigator.permissions.query({name: 'notifications'})).state,
  touch: 'ontouchstart' in window,
  maxTouchPoints: navigator.maxTouchPoints,
  coarse: matchMedia('(pointer: coarse)').matches,
  ratio: devicePixelRatio,
})"""

OPTIONS: dict[str, Any] = {
    "viewport": {"width": 1000, "height": 640},
    "user_agent": "OptionsTest/1.0 (flask_sessions)",
    "locale": "de-DE",
    "timezone_id": "Asia/Tokyo",
    "color_scheme": "dark",
    "geolocation": {"latitude": 52.52, "longitude": 13.405, "accuracy": 7},
    "permissions": ["notifications"],
    "extra_http_headers": {"X-Agent-Run": "run-42"},
}

EXPECTED = {
    "userAgent": "OptionsTest/1.0 (flask_sessions)",
    "language": "de-DE",
    "timeZone": "Asia/Tokyo",
    "width": 1000,
    "height": 640,
    "dark": True,
    "position": [52.52, 13.405, 7],
    "notifications": "granted",
}


def _subset(found: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {key: found[key] for key in expected}


async def _cdp_page(record: dict[str, Any], url: str, script: str) -> Any:
    """``script`` evaluated in a page a CDP client opens in the session (after ``url``)."""
    async with async_playwright() as p:
        browser = await p.chromium.connect_over_cdp(
            record["cdp_url"], headers={"Authorization": f"Bearer {TOKEN_A}"}
        )
        page = await browser.contexts[0].new_page()
        await page.goto(url)
        found = await page.evaluate(script)
        await page.close()
        await browser.close()
        return found


# ------------------------------------------------------------------ the options, in the page


@pytest.fixture
def options_app(make_app: AppFactory) -> Flask:
    return loopback_only(make_app(SESSIONS_WARM_POOL=1))


def test_every_option_holds_in_the_page_and_in_a_cdp_page(options_app: Flask, local: Net) -> None:
    client = options_app.test_client()
    pool = FlaskSessions.state(options_app).manager.pool
    record = start(client, url=f"{local.origin.base}/echo", **OPTIONS)
    sid = record["session_id"]
    assert pool.handed_out == 0  # a start with options never takes a pooled context
    assert record["options"]["locale"] == "de-DE"
    assert record["options"]["extra_http_headers"] == ["X-Agent-Run"]  # names only
    assert record["page"]["title"] == "echo"

    found = in_page(options_app, sid, PROBE)
    assert _subset(found, EXPECTED) == EXPECTED
    assert found["touch"] is False and found["ratio"] == 1
    sent = local.origin.headers_of("/echo")[-1]
    assert sent["X-Agent-Run"] == "run-42" and sent["User-Agent"] == EXPECTED["userAgent"]
    assert sent["Accept-Language"].startswith("de-DE")

    # a page a CDP client opens in the same context: the same options, its own request
    cdp = asyncio.run(_cdp_page(record, f"{local.origin.base}/echo?cdp", PROBE))
    assert _subset(cdp, EXPECTED) == EXPECTED
    sent = local.origin.headers_of("/echo?cdp")[-1]
    assert sent["X-Agent-Run"] == "run-42" and sent["Accept-Language"].startswith("de-DE")

    # a popup the page opens
    popup = observe(
        client,
        sid,
        url=f"{local.origin.base}/page?html="
        + quote(f"<title>opener</title><script>open('{local.origin.base}/echo?popup')</script>"),
    )
    assert popup["error"] is None
    assert wait_for(lambda: local.origin.headers_of("/echo?popup") != [], 10)
    assert local.origin.headers_of("/echo?popup")[-1]["X-Agent-Run"] == "run-42"

    # the default session next to it is untouched, and comes from the pool
    plain = start(client, url=f"{local.origin.base}/echo?plain")
    assert plain["options"] is None and pool.handed_out == 1
    found = in_page(options_app, plain["session_id"], PROBE)
    assert found["width"] == 1280 and found["dark"] is False and found["timeZone"] != "Asia/Tokyo"
    assert "X-Agent-Run" not in local.origin.headers_of("/echo?plain")[-1]


def test_a_device_session_is_mobile_with_touch(options_app: Flask, local: Net) -> None:
    client = options_app.test_client()
    page = quote("<meta name=viewport content='width=device-width'><title>mobile</title>")
    record = start(client, device="iPhone 13", url=f"{local.origin.base}/page?html={page}")
    assert record["options"]["device"] == "iPhone 13"
    found = in_page(options_app, record["session_id"], PROBE)
    assert "iPhone" in found["userAgent"]
    assert (found["width"], found["ratio"]) == (390, 3)  # isMobile: the meta viewport counts
    assert found["touch"] is True and found["maxTouchPoints"] > 0 and found["coarse"] is True
    # a tap is a real touch sequence in the page
    script = (
        "<title>tap</title><button id=b style='width:200px;height:80px'>b</button><script>"
        "window.seen=[];for(const t of ['touchstart','touchend','click'])"
        "b.addEventListener(t,()=>seen.push(t))</script>"
    )
    observe(client, record["session_id"], url=f"{local.origin.base}/page?html={quote(script)}")
    state = FlaskSessions.state(options_app)
    live = state.manager.live(record["session_id"])
    assert live is not None
    state.runtime.submit(live.page.tap("#b"), 30)
    assert in_page(options_app, record["session_id"], "seen") == ["touchstart", "touchend", "click"]
    # screenshots are the viewport in CSS pixels (Page.captureScreenshot), and say so
    response = client.get(
        f"/session/{record['session_id']}/screenshot", headers={**AUTH_A, "Accept": "image/png"}
    )
    assert image_size(response.data) == (390, 664)
    shot = client.get(
        f"/session/{record['session_id']}/screenshot",
        headers={**AUTH_A, "Accept": "application/json"},
    ).get_json()
    assert shot["page_size"] == {"width": 390, "height": 664} and not shot["clipped"]
    # a CDP page of the session is the same phone; explicit fields win over the device
    cdp = asyncio.run(_cdp_page(record, f"{local.origin.base}/page?html={page}", PROBE))
    assert "iPhone" in cdp["userAgent"] and cdp["touch"] is True and cdp["width"] == 390
    wider = start(
        client,
        device="iPhone 13",
        viewport={"width": 600, "height": 900},
        url=f"{local.origin.base}/page?html={page}",
    )
    found = in_page(options_app, wider["session_id"], PROBE)
    assert found["width"] == 600 and "iPhone" in found["userAgent"]


def test_options_and_a_storage_state_apply_together(options_app: Flask, local: Net) -> None:
    """A start with browser options and a state to load (profiles, issue 18) makes one
    context that has both."""
    client = options_app.test_client()
    host = local.origin.base.removeprefix("http://").split(":")[0]
    state = {
        "cookies": [
            {
                "name": "sid",
                "value": "from-the-state",
                "domain": host,
                "path": "/",
                "expires": -1,
                "httpOnly": True,
                "secure": False,
                "sameSite": "Lax",
            }
        ],
        "origins": [],
    }
    record = start(
        client,
        locale="fr-FR",
        extra_http_headers={"X-Both": "1"},
        storage_state=state,
        url=f"{local.origin.base}/echo?both",
    )
    assert record["options"]["locale"] == "fr-FR"
    sent = local.origin.headers_of("/echo?both")[-1]
    assert sent["Cookie"] == "sid=from-the-state" and sent["X-Both"] == "1"
    assert sent["Accept-Language"].startswith("fr-FR")


def test_javascript_disabled_and_the_session_still_observes(options_app: Flask, local: Net) -> None:
    client = options_app.test_client()
    page = quote("<title>static</title><p>plain</p><script>document.title='ran'</script>")
    record = start(client, java_script_enabled=False, url=f"{local.origin.base}/page?html={page}")
    assert record["page"]["title"] == "static"  # the page's script never ran
    observation = observe(client, record["session_id"])
    assert observation["title"] == "static" and "plain" in observation["text"]
    cdp = asyncio.run(_cdp_page(record, f"{local.origin.base}/page?html={page}", "document.title"))
    assert cdp == "static"


def _resource_hits(origin: _Origin, tag: str) -> dict[str, int]:
    hits: Counter[str] = Counter()
    for path in origin.paths():
        if path.startswith("/r/") and path.endswith("?" + tag):
            hits[path.split("?")[0]] += 1
    return dict(hits)


BLOCKED_PATHS = {
    "/r/font.woff2",
    "/r/style.css",
    "/r/pic.png",
    "/r/pic",
    "/r/clip.webm",
    "/r/sound.ogg",
}


def test_blocked_resource_types_never_reach_the_server(options_app: Flask, local: Net) -> None:
    client = options_app.test_client()
    # control: a default session fetches all of them
    start(client, url=f"{local.origin.base}/resources?t=plain")
    assert wait_for(lambda: set(_resource_hits(local.origin, "plain")) >= BLOCKED_PATHS, 10)

    types = ["image", "media", "font", "stylesheet"]
    record = start(client, block_resources=types, url=f"{local.origin.base}/resources?t=rest")
    assert record["options"]["block_resources"] == types
    observe(client, record["session_id"])
    asyncio.run(_cdp_page(record, f"{local.origin.base}/resources?t=cdp", "1"))
    for tag in ("rest", "cdp"):

        def loaded(tag: str = tag) -> bool:
            return "/r/app.js" in _resource_hits(local.origin, tag)

        assert wait_for(loaded, 10)
        assert _resource_hits(local.origin, tag) == {"/r/app.js": 1}, tag

    # only what was asked: images blocked, styles still load
    record = start(client, block_resources=["image"], url=f"{local.origin.base}/resources?t=img")
    assert wait_for(lambda: "/r/style.css" in _resource_hits(local.origin, "img"), 10)
    assert not {"/r/pic.png", "/r/pic"} & set(_resource_hits(local.origin, "img"))


def test_one_shot_calls_take_options_and_a_named_session_refuses_them(
    options_app: Flask, local: Net
) -> None:
    client = options_app.test_client()
    response = client.post(
        "/env/observe",
        json={"url": f"{local.origin.base}/echo?oneshot", "locale": "fr-CA", "timezone_id": "UTC"},
        headers=AUTH_A,
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["session"]["options"]["locale"] == "fr-CA"
    assert body["session"]["status"] == "closed"  # one-shot: closed after the call
    assert local.origin.headers_of("/echo?oneshot")[-1]["Accept-Language"].startswith("fr-CA")

    sid = start(client)["session_id"]
    for path in ("/session/start", "/env/observe", "/env/scrape"):
        answer = refused(client, path, session_id=sid, locale="de-DE", viewport=None)
        assert [f["field"] for f in answer["fields"]] == ["viewport", "locale"]
        assert "leave out session_id" in answer["error"]


def test_bad_options_are_400s_naming_the_field_and_the_rule(options_app: Flask, local: Net) -> None:
    client = options_app.test_client()
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"timezone_id": "Mars/Olympus"}, "timezone_id", "not an IANA time zone"),
        ({"timezone_id": "europe/berlin"}, "timezone_id", "did you mean Europe/Berlin"),
        ({"locale": "german"}, "locale", "not a BCP 47 language tag"),
        ({"locale": "de_DE"}, "locale", "not a BCP 47 language tag"),
        ({"locale": "aaa-bbb"}, "locale", "Chromium refused it"),  # well-formed, unknown to ICU
        ({"extra_http_headers": {"X-A": "a\r\nHost: evil"}}, "extra_http_headers", "CR or LF"),
        ({"extra_http_headers": {"X-A\r\nB": "a"}}, "extra_http_headers", "CR or LF"),
        ({"extra_http_headers": {"Host": "a"}}, "extra_http_headers", "may not be set"),
        ({"extra_http_headers": {"Proxy-Authorization": "a"}}, "extra_http_headers", "Proxy-*"),
        ({"extra_http_headers": {"Connection": "close"}}, "extra_http_headers", "hop-by-hop"),
        ({"extra_http_headers": {f"X-{i}": "v" for i in range(33)}}, "extra_http_headers", "32"),
        ({"viewport": {"width": 100, "height": 600}}, "viewport.width", "greater than or equal"),
        ({"viewport": {"width": 800, "height": 9000}}, "viewport.height", "less than or equal"),
        ({"viewport": {"width": 800}}, "viewport.height", "is required"),
        ({"viewport": {"width": 800, "height": 600, "x": 1}}, "viewport.x", "width, height"),
        ({"user_agent": "x" * 513}, "user_agent", "at most 512"),
        ({"user_agent": "a\nb"}, "user_agent", "printable ASCII"),
        ({"geolocation": {"latitude": 91, "longitude": 0}}, "geolocation.latitude", "90"),
        ({"permissions": ["geolocation", "root"]}, "permissions.1", "not a known value"),
        ({"block_resources": ["script"]}, "block_resources.0", "not a known value"),
        ({"color_scheme": "sepia"}, "color_scheme", "not a known value"),
        ({"proxy": {"server": "socks5://127.0.0.2:1080"}}, "proxy.server", "http://"),
        ({"proxy": {"server": f"http://{USER}:{PASSWORD}@127.0.0.2:3128"}}, "proxy.server", "URL"),
        ({"proxy": {"server": "127.0.0.2:3128", "password": PASSWORD}}, "proxy", "username"),
        ({"proxy": {"server": "127.0.0.2:99999"}}, "proxy.server", "port"),
    ]
    for body, name, words in cases:
        answer = refused(client, **body)
        fields = {f["field"]: f for f in answer["fields"]}
        assert name in fields, (body, answer)
        assert words in fields[name]["message"], (body, fields[name])
        assert PASSWORD not in json.dumps(answer)  # credentials are never echoed

    # the device: checked against Playwright's own descriptors, with the close names
    answer = refused(client, device="iPhone13")
    entry = answer["fields"][0]
    assert entry["field"] == "device" and "iPhone 13" in entry["close_matches"]
    assert "device descriptors" in answer["error"]
    answer = refused(client, device="Nokia 3310 Deluxe")
    assert answer["fields"][0]["field"] == "device"
    # the one-shot calls validate the same way, and nothing was started by any of it
    refused(client, "/env/observe", timezone_id="Nowhere/Town")
    assert client.get("/sessions", headers=AUTH_A).get_json()["sessions"] == []


# ------------------------------------------------------------------ the per-session proxy


def _load(client: FlaskClient, sid: str, url: str) -> dict[str, Any]:
    return observe(client, sid, url=url)


def test_a_session_proxy_carries_that_session_only(options_app: Flask, local: Net) -> None:
    client = options_app.test_client()
    origin = local.origin.base
    where = origin.removeprefix("http://")
    a = start(client, proxy=proxy_option(local), url=f"{origin}/echo?a")
    assert a["page"]["title"] == "echo" and a["page"]["error"] is None
    assert a["options"]["proxy"] == {
        "server": local.proxy.server,
        "bypass": None,
        "authenticated": True,
    }
    assert local.proxy.seen[("GET", where)] == 1  # the proxy carried A's page
    assert local.proxy.refused == 0

    b = start(client, auth=AUTH_B, url=f"{origin}/echo?b")
    assert b["page"]["error"] is None
    assert local.proxy.seen[("GET", where)] == 1  # and none of B's
    # https (and wss) go as CONNECT, with the credentials on it
    _load(client, a["session_id"], f"https://{where}/tls")
    assert local.proxy.seen[("CONNECT", where)] >= 1
    assert local.proxy.auth_headers and all(
        h.startswith("Basic ") for h in local.proxy.auth_headers
    )

    # a page a CDP client opens in A goes through A's proxy too
    before = local.proxy.seen[("GET", where)]
    asyncio.run(_cdp_page(a, f"{origin}/echo?a-cdp", "1"))
    assert local.proxy.seen[("GET", where)] == before + 1
    assert local.origin.headers_of("/echo?a-cdp")

    # the record, the list and the whole answer never hold a credential
    for response in (
        client.get(f"/session/{a['session_id']}", headers=AUTH_A),
        client.get("/sessions", headers=AUTH_A),
    ):
        text = response.get_data(as_text=True)
        assert PASSWORD not in text and USER not in text and "authenticated" in text

    # bypass: the hosts it names go out directly (still through the egress policy)
    c = start(client, proxy=proxy_option(local, bypass="127.0.0.1, .example.test"))
    local.proxy.reset()
    observation = _load(client, c["session_id"], f"{origin}/echo?c")
    assert observation["error"] is None and local.proxy.seen == Counter()

    # the listener goes with the session
    chain = FlaskSessions.state(options_app).runtime.egress
    assert chain is not None
    ports = set(chain.routes)
    client.delete(f"/session/{a['session_id']}", headers=AUTH_A)
    client.delete(f"/session/{c['session_id']}", headers=AUTH_A)
    assert wait_for(lambda: not set(chain.routes) & ports, 10)


def test_wrong_proxy_credentials_name_the_407(options_app: Flask, local: Net) -> None:
    client = options_app.test_client()
    where = local.origin.base.removeprefix("http://")
    record = start(client, proxy=proxy_option(local, password="wrong"))
    sid = record["session_id"]
    for url in (f"http://{where}/x", f"https://{where}/x"):
        observation = _load(client, sid, url)
        assert observation["error"] is not None, url
        assert "refused its credentials: 407" in observation["error"], observation["error"]
        assert "proxy.password" in observation["error"] and "wrong" not in observation["error"]
    assert local.proxy.refused >= 2 and not local.proxy.seen


def test_a_proxy_on_a_private_address_is_refused_under_the_private_block(
    make_app: AppFactory, local: Net
) -> None:
    app = loopback_only(make_app(SESSIONS_BLOCK_PRIVATE_NETWORKS=True, SESSIONS_WARM_POOL=0))
    client = app.test_client()
    for server in (local.proxy.server, "http://10.1.2.3:3128", "http://[::1]:3128"):
        answer = refused(client, proxy={"server": server, "username": USER, "password": PASSWORD})
        field_ = answer["fields"][0]
        assert field_["field"] == "proxy.server"
        assert "SESSIONS_BLOCK_PRIVATE_NETWORKS" in field_["message"], field_
        assert PASSWORD not in json.dumps(answer)
    assert local.proxy.seen == Counter() and local.proxy.refused == 0  # nothing was sent
    assert client.get("/sessions", headers=AUTH_A).get_json()["sessions"] == []
    # link-local (the cloud metadata address) is refused whatever the settings
    answer = refused(client, proxy={"server": "169.254.169.254:80"})
    assert "link-local" in answer["fields"][0]["message"]


def test_behind_a_permitted_proxy_a_blocked_address_stays_blocked(
    make_app: AppFactory, local: Net
) -> None:
    app = loopback_only(
        make_app(
            SESSIONS_BLOCKED_NETWORKS="127.0.0.3/32",
            SESSIONS_EGRESS_HOSTS={"far.test": "127.0.0.3"},
            SESSIONS_WARM_POOL=0,
        )
    )
    client = app.test_client()
    far = local.far.base
    record = start(client, proxy=proxy_option(local), url=f"{local.origin.base}/echo?ok")
    assert record["page"]["error"] is None and local.proxy.seen  # the proxy is in use
    sid = record["session_id"]
    port = far.rsplit(":", 1)[1]
    for url in (f"{far}/secret", f"https://127.0.0.3:{port}/", f"http://far.test:{port}/"):
        observation = _load(client, sid, url)
        assert (
            observation["error"] is not None
            and "blocked by the egress policy" in (observation["error"])
        ), (url, observation["error"])
    # a page's own requests to it, through the proxy's route, too
    page = f"<title>p</title><img src='{far}/img'><script>fetch('{far}/f').catch(()=>0)</script>"
    _load(client, sid, f"{local.origin.base}/page?html={quote(page)}")
    asyncio.run(_cdp_page(record, f"{far}/cdp", "1"))
    assert local.far.connections == 0 and local.far.paths() == []
    assert not any(
        h.startswith("127.0.0.3") or h.startswith("far.test") for h in local.proxy.hosts()
    )


def test_a_proxy_is_chained_when_the_policy_blocks_nothing(
    make_app: AppFactory, local: Net
) -> None:
    app = make_app(SESSIONS_ALLOWED_NETWORKS="0.0.0.0/0,::/0", SESSIONS_WARM_POOL=0)
    state = FlaskSessions.state(app)
    assert state.runtime.egress is None  # Chromium connects directly: no egress proxy
    client = app.test_client()
    record = start(client, proxy=proxy_option(local), url=f"{local.origin.base}/echo?direct")
    assert record["page"]["error"] is None
    assert local.proxy.seen[("GET", local.origin.base.removeprefix("http://"))] == 1
    plain = start(client, url=f"{local.origin.base}/echo?plain")
    assert plain["page"]["error"] is None and sum(local.proxy.seen.values()) == 1


def test_a_browser_crash_closes_the_proxy_listeners(options_app: Flask, local: Net) -> None:
    client = options_app.test_client()
    state = FlaskSessions.state(options_app)
    sid = start(client, proxy=proxy_option(local))["session_id"]
    egress = state.runtime.egress
    assert egress is not None and len(egress.routes) == 1
    pids = chromium_pids()
    for pid in [p for p in pids if psutil.Process(p).ppid() not in pids]:
        psutil.Process(pid).send_signal(signal.SIGKILL)
    assert wait_for(lambda: state.manager.live(sid) is None, 10)
    assert wait_for(lambda: not egress.routes, 10)


def test_start_with_options_evicts_a_pooled_context_when_full(make_app: AppFactory) -> None:
    app = make_app(SESSIONS_MAX_SESSIONS=1, SESSIONS_WARM_POOL=1)
    client = app.test_client()
    manager = FlaskSessions.state(app).manager
    manager.ensure_started(launch_browser=True)  # the pool fills its one context
    assert wait_for(lambda: len(manager.pool) == 1, 30)
    record = start(client, locale="en-GB")  # room is made from the pooled context
    assert record["options"]["locale"] == "en-GB" and manager.pool.handed_out == 0
    response = client.post("/session/start", json={"locale": "en-GB"}, headers=AUTH_A)
    assert response.status_code == 429


# ------------------------------------------------------------------ units


def test_bypass_rules_follow_chromiums_common_forms() -> None:
    up = Upstream.from_options(
        ProxyOptions(
            server="proxy.test:3128",
            bypass="<local>, .corp.test, *.internal:8080, 10.0.0.0/8, exact.test, [::1]",
        )
    )
    assert up.bypasses("intranet", 80)  # <local>: no dot
    assert up.bypasses("a.corp.test", 443) and not up.bypasses("corp.test", 443)
    assert up.bypasses("db.internal", 8080) and not up.bypasses("db.internal", 80)
    assert up.bypasses("10.1.2.3", 80) and not up.bypasses("11.1.2.3", 80)
    assert up.bypasses("exact.test", 80) and not up.bypasses("sub.exact.test", 80)
    assert up.bypasses("::1", 80) and not up.bypasses("10.1.2.3.example", 80)
    assert not _matches("<local>", "10.1.2.3", 80)


def test_upstream_requests_are_absolute_form_with_basic_auth() -> None:
    proxy = ProxyOptions(server="127.0.0.2:3128", username="u", password="p w")
    up = Upstream.from_options(proxy)
    assert "p w" not in repr(up) and "p w" not in repr(proxy) and "'u'" not in repr(proxy)
    assert up.authorization == "Basic " + base64.b64encode(b"u:p w").decode()
    route = UpstreamRoute.__new__(UpstreamRoute)
    route.upstream = up
    request = _Request("GET", "example.test", 8080, b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    head = route.request_head(request)
    assert head.startswith(b"GET http://example.test:8080/a?b=1 HTTP/1.1\r\nProxy-Authorization: ")
    assert head.endswith(b"Host: h\r\n\r\n")
    request = _Request("GET", "::1", 80, b"GET / HTTP/1.1\r\n\r\n")
    assert route.request_head(request).startswith(b"GET http://[::1]/ HTTP/1.1")


def test_option_models_normalise_and_bound() -> None:
    req = parse(
        StartRequest, {"proxy": {"server": "Proxy.Test:3128"}, "permissions": ["midi", "midi"]}
    )
    assert req.proxy is not None and req.proxy.server == "http://proxy.test:3128"
    assert req.permissions == ["midi"]
    assert parse(StartRequest, {}).browser_options() is None
    options = parse(StartRequest, {"java_script_enabled": False}).browser_options()
    assert options is not None and options.java_script_enabled is False


# ------------------------------------------------------------------ cluster mode


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    running: list[ServerProcess] = []
    yield running
    for proc in reversed(running):
        proc.stop(timeout=30)


@pytest.fixture
def redis_url(procs: list[ServerProcess]) -> str:
    """A real redis-server on a free loopback port (as tests/test_cluster.py runs it)."""
    import redis

    server = shutil.which("redis-server")
    assert server is not None, "redis-server is missing: `make test` installs it"
    port = free_port()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs.append(start_process(args, f"redis://127.0.0.1:{port}"))
    assert wait_for(lambda: _pings(redis.Redis(port=port)), 10)
    return f"redis://127.0.0.1:{port}/0"


def test_options_travel_through_a_front_to_a_host_on_redis(
    procs: list[ServerProcess], redis_url: str, local: Net
) -> None:
    h = cluster_host(procs, "127.0.0.4", SESSIONS_REGISTRY_URL=redis_url)
    h.wait_ready()
    f = cluster_front(procs, SESSIONS_REGISTRY_URL=redis_url)
    f.wait_ready()
    auth = {"Authorization": "Bearer tok-a"}
    body = {
        "url": f"{local.origin.base}/echo?cluster",
        "locale": "pt-BR",
        "timezone_id": "America/Sao_Paulo",
        "extra_http_headers": {"X-Cluster": "yes"},
        "proxy": proxy_option(local),
    }
    r = requests.post(f"{f.base}/session/start", json=body, headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["options"]["timezone_id"] == "America/Sao_Paulo"
    sent = local.origin.headers_of("/echo?cluster")[-1]
    assert sent["X-Cluster"] == "yes" and sent["Accept-Language"].startswith("pt-BR")
    assert local.proxy.seen[("GET", local.origin.base.removeprefix("http://"))] == 1
    # the registry's copy (what the front lists) has the options and no credential
    listed = requests.get(f"{f.base}/sessions", headers=auth, timeout=30)
    assert listed.json()["sessions"][0]["options"]["locale"] == "pt-BR"
    assert PASSWORD not in listed.text and USER not in listed.text
    # the host's checks answer through the front: the device, and its egress policy
    r = requests.post(
        f"{f.base}/session/start", json={"device": "Pixel7"}, headers=auth, timeout=60
    )
    assert r.status_code == 400 and r.json()["fields"][0]["field"] == "device"
    assert "Pixel 7" in r.json()["fields"][0]["close_matches"]
    r = requests.post(
        f"{f.base}/session/start",
        json={"proxy": {"server": "169.254.169.254:3128", "password": PASSWORD, "username": "u"}},
        headers=auth,
        timeout=60,
    )
    assert r.status_code == 400 and r.json()["fields"][0]["field"] == "proxy.server"
    assert PASSWORD not in r.text
