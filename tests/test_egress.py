"""The network egress policy (issue 8): ``EgressPolicy`` unit tests, the proxy on its own,
and every path a page can take out, through real Chromium and the app's test client.

Only loopback is ever a target. Three servers share one port: 127.0.0.1 (allowed),
127.0.0.2 (blocked by ``SESSIONS_BLOCKED_NETWORKS``) and 127.0.0.3 (blocked, and reached
by the name ``blocked.test`` that ``SESSIONS_EGRESS_HOSTS`` maps to it). Each counts every
TCP connection it accepts, and 127.0.0.2 also counts UDP datagrams on that port: a leak
would show as a hit, and every test asserts there were none. Names never reach DNS: the
proxy answers them from the hosts map, and Chromium resolves nothing itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.async_api import Error as PlaywrightError

from flask_sessions import FlaskSessions, ManualClock, create_app
from flask_sessions.config import load
from flask_sessions.host.egress import (
    LINK_LOCAL_SOURCE,
    EgressPolicy,
    EgressProxy,
    as_address,
    parse_hosts,
    parse_networks,
)

from .conftest import AUTH_A, TOKENS, AppFactory, wait_for

BLOCKED_RULE = "127.0.0.2 is in SESSIONS_BLOCKED_NETWORKS (127.0.0.2/32)"
NAME_RULE = (
    "blocked.test resolves to 127.0.0.3, which is in SESSIONS_BLOCKED_NETWORKS (127.0.0.3/32)"
)
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


# ----------------------------------------------------------- EgressPolicy (pure)


def test_policy_blocks_listed_networks_v4_and_v6() -> None:
    policy = EgressPolicy(blocked=parse_networks("K", "10.0.0.0/8, fd12::/16"))
    rule = policy.check("10.1.2.3")
    assert rule is not None and rule.network == net("10.0.0.0/8")
    assert rule.source == "SESSIONS_BLOCKED_NETWORKS"
    assert policy.check("fd12::1") is not None
    assert policy.check("11.0.0.1") is None and policy.check("fd13::1") is None
    assert policy.check("127.0.0.1") is None and policy.check("::1") is None  # private: off
    assert policy.explain("10.1.2.3") == "10.1.2.3 is in SESSIONS_BLOCKED_NETWORKS (10.0.0.0/8)"
    assert policy.explain("10.1.2.3", "db.internal") == (
        "db.internal resolves to 10.1.2.3, which is in SESSIONS_BLOCKED_NETWORKS (10.0.0.0/8)"
    )
    assert policy.explain("8.8.8.8") is None


def test_link_local_is_always_blocked_by_default() -> None:
    for policy in (EgressPolicy(), EgressPolicy(blocked=[net("10.0.0.0/8")])):
        for ip in ("169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0", "[fe80::2]"):
            rule = policy.check(ip)
            assert rule is not None and rule.source == LINK_LOCAL_SOURCE, ip
    assert EgressPolicy().explain("169.254.169.254") == (
        "169.254.169.254 is in the always-blocked link-local range (169.254.0.0/16)"
    )
    assert not EgressPolicy().blocks_nothing  # so the proxy is always on by default


def test_private_shorthand_blocks_what_it_says() -> None:
    policy = EgressPolicy(block_private=True)
    blocked = [
        "127.0.0.1",
        "127.255.0.9",
        "::1",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.255",
        "169.254.169.254",
        "fc00::1",
        "fd00::2",
        "fe80::1",
    ]
    for ip in blocked:
        assert policy.check(ip) is not None, ip
    for ip in ("8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1", "192.0.2.2"):
        assert policy.check(ip) is None, ip
    rule = policy.check("10.0.0.1")
    assert rule is not None and rule.source == "SESSIONS_BLOCK_PRIVATE_NETWORKS"


def test_allowed_wins_over_every_block_and_the_most_specific_block_is_named() -> None:
    policy = EgressPolicy(
        blocked=[net("10.0.0.0/8"), net("10.1.0.0/16")],
        allowed=[net("10.1.2.0/24"), net("169.254.169.254/32")],
        block_private=True,
    )
    assert policy.check("10.1.2.3") is None  # allowed over a /16 and a /8
    assert policy.check("169.254.169.254") is None  # the operator's explicit exception
    assert policy.check("169.254.169.253") is not None
    rule = policy.check("10.1.3.4")
    assert rule is not None and rule.network == net("10.1.0.0/16")
    rule = policy.check("10.2.0.1")
    assert rule is not None and rule.network == net("10.0.0.0/8")
    everything = EgressPolicy(allowed=[net("0.0.0.0/0"), net("::/0")], block_private=True)
    assert everything.check("127.0.0.1") is None and everything.blocks_nothing
    assert EgressPolicy(allowed=[net("169.254.0.0/16"), net("fe80::/10")]).blocks_nothing


def test_ipv6_forms_of_a_blocked_ipv4_address_are_blocked() -> None:
    policy = EgressPolicy(blocked=[net("127.0.0.2/32")])
    for ip in ("::ffff:127.0.0.2", "64:ff9b::7f00:2", "2002:7f00:2::1"):
        assert policy.check(ip) is not None, ip
    assert as_address("::ffff:10.0.0.1") == ipaddress.ip_address("10.0.0.1")
    explained = policy.explain("64:ff9b::7f00:2")
    assert explained is not None and "carries 127.0.0.2" in explained
    assert policy.check("::ffff:127.0.0.1") is None


def test_parse_errors_name_the_key_and_the_value() -> None:
    with pytest.raises(ValueError, match=r"SESSIONS_BLOCKED_NETWORKS: '10\.0\.0\.1/8'"):
        load({"SESSIONS_BLOCKED_NETWORKS": "10.0.0.1/8"})  # host bits set
    with pytest.raises(ValueError, match=r"SESSIONS_ALLOWED_NETWORKS: 'nope'"):
        load({"SESSIONS_ALLOWED_NETWORKS": ["127.0.0.1/32", "nope"]})
    with pytest.raises(ValueError, match=r"SESSIONS_BLOCKED_NETWORKS: 'fd00::/129'"):
        load({"SESSIONS_BLOCKED_NETWORKS": "fd00::/129"})
    with pytest.raises(ValueError, match=r"SESSIONS_BLOCKED_NETWORKS must be a list"):
        load({"SESSIONS_BLOCKED_NETWORKS": 10})
    with pytest.raises(ValueError, match=r"SESSIONS_BLOCKED_NETWORKS: 10 is not"):
        load({"SESSIONS_BLOCKED_NETWORKS": [10]})
    with pytest.raises(ValueError, match=r"SESSIONS_EGRESS_HOSTS: 'a\.test': 'x' is not an IP"):
        load({"SESSIONS_EGRESS_HOSTS": {"a.test": "x"}})
    with pytest.raises(ValueError, match=r"SESSIONS_EGRESS_HOSTS: 'a\.test' is not name=address"):
        load({"SESSIONS_EGRESS_HOSTS": "a.test"})
    with pytest.raises(ValueError, match=r"SESSIONS_BROWSER_ARGS: '--no-proxy-server'"):
        load({"SESSIONS_BROWSER_ARGS": "--no-proxy-server"})


def test_settings_from_config_and_environment() -> None:
    settings = load(
        {
            "SESSIONS_BLOCKED_NETWORKS": "127.0.0.2, 10.0.0.0/8",
            "SESSIONS_ALLOWED_NETWORKS": ["10.9.0.0/16"],
            "SESSIONS_BLOCK_PRIVATE_NETWORKS": "true",
            "SESSIONS_EGRESS_HOSTS": "a.test=127.0.0.1, B.Test.=::1",
        }
    )
    assert settings.blocked_networks == (net("127.0.0.2/32"), net("10.0.0.0/8"))
    assert settings.block_private_networks is True
    assert settings.egress_hosts == {
        "a.test": (as_address("127.0.0.1"),),
        "b.test": (as_address("::1"),),
    }
    policy = settings.egress_policy()
    assert policy.check("10.9.1.1") is None and policy.check("10.8.1.1") is not None
    env = {
        "SESSIONS_BLOCKED_NETWORKS": "127.0.0.2/32,fd00::/8",
        "SESSIONS_BLOCK_PRIVATE_NETWORKS": "true",
        "SESSIONS_EGRESS_HOSTS": '{"a.test": ["127.0.0.1", "127.0.0.3"]}',
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = load({})
    assert settings.blocked_networks == (net("127.0.0.2/32"), net("fd00::/8"))
    assert settings.block_private_networks is True
    assert len(settings.egress_hosts["a.test"]) == 2
    assert parse_hosts("K", None) == {} and parse_networks("K", "") == ()


# ------------------------------------------------------- the proxy on its own


async def _ask(port: int, data: bytes, read_timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), read_timeout)
    finally:
        writer.close()


def test_proxy_refuses_bad_and_blocked_requests_by_itself() -> None:
    async def scenario() -> None:
        upstream_hits: list[bytes] = []

        async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream_hits.append(await reader.readuntil(b"\r\n\r\n"))
            body = b"hi"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n")
            writer.write(body)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(origin, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        hosts = {"mixed.test": (as_address("127.0.0.1"), as_address("127.0.0.2"))}
        proxy = EgressProxy(
            EgressPolicy(blocked=[net("127.0.0.2/32")]), hosts, head_timeout=0.5, idle_timeout=0.5
        )
        await proxy.start()
        p = proxy.port
        try:
            answer = await _ask(
                p, f"GET http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: h\r\n\r\n".encode()
            )
            assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"hi")
            assert b"Connection: close" in answer and b"keep-alive" not in answer
            assert upstream_hits[-1].startswith(b"GET /x HTTP/1.1\r\n")
            assert b"Connection: close" in upstream_hits[-1]

            answer = await _ask(p, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400") and b"forward proxy" in answer
            answer = await _ask(p, b"GET http://a.test/" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 431")
            answer = await _ask(p, f"CONNECT 127.0.0.2:{port} HTTP/1.1\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 403") and BLOCKED_RULE.encode() in answer
            assert proxy.explain(f"https://127.0.0.2:{port}/") is not None
            answer = await _ask(p, f"GET http://mixed.test:{port}/ HTTP/1.1\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 403")  # one blocked address refuses the name
            assert b"mixed.test resolves to 127.0.0.2" in answer
            answer = await _ask(p, f"GET http://127.0.0.1:{p}/ HTTP/1.1\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 403") and b"the egress proxy itself" in answer
            closed = socket.socket()
            closed.bind(("127.0.0.1", 0))
            dead = closed.getsockname()[1]
            closed.close()
            answer = await _ask(p, f"CONNECT 127.0.0.1:{dead} HTTP/1.1\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 502") and b"ERR_CONNECTION_REFUSED" in answer
            assert len(upstream_hits) == 1  # only the allowed request reached the origin

            began = time.monotonic()
            assert await _ask(p, b"GET http://127.0.0.1/ HT") == b""  # head never finished
            assert time.monotonic() - began < 3
            reader, writer = await asyncio.open_connection("127.0.0.1", p)  # an idle tunnel
            writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            assert await asyncio.wait_for(reader.read(), 3) == b""  # closed after 0.5 s idle
            writer.close()
            _, writer = await asyncio.open_connection("127.0.0.1", p)
            writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            await asyncio.sleep(0.1)
            assert proxy.open_connections == 1
        finally:
            await proxy.stop()  # closes the open tunnel too
            server.close()
        assert proxy.open_connections == 0 and not proxy.running
        writer.close()

    asyncio.run(scenario())


# ------------------------------------------------------- servers for Chromium


class _Counting(ThreadingHTTPServer):
    """An HTTP (and WebSocket) server on one loopback address that counts connections."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], name: str) -> None:
        self.name = name
        self.connections = 0
        self.paths: list[str] = []
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(host): a reverse DNS query for 127.0.0.2,
        # i.e. traffic to the resolver. Skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.name, self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1  # every TCP connection, HTTP or not
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Counting

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.paths.append(self.path)
        if url.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
            return
        headers = {"Content-Type": "text/html; charset=utf-8"}
        status, body = 200, f"<!doctype html><title>{self.server.name}</title><p>page of "
        body += f"{self.server.name}</p>"
        if url.path == "/redirect":
            status, headers["Location"], body = 302, query["to"], ""
        elif url.path == "/page":
            body = query["html"]
        elif url.path == "/data":
            body = f"data from {self.server.name}"
            headers = {"Content-Type": "text/plain", "Access-Control-Allow-Origin": "*"}
        elif url.path == "/script.js":
            body = "window.scriptRan = true;"
            headers = {"Content-Type": "text/javascript"}
        elif url.path == "/img.png":
            self._send(200, PNG_1PX, {"Content-Type": "image/png"})
            return
        self._send(status, body.encode("utf-8"), headers)

    do_POST = do_GET

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _websocket(self) -> None:
        key = self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        message = f"hello from {self.server.name}".encode()
        self.wfile.write(bytes([0x81, len(message)]) + message)
        self.wfile.flush()
        self.connection.settimeout(5)
        with contextlib.suppress(OSError):
            self.connection.recv(1024)  # until the page closes it
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Datagrams(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _UdpCounting)
        server.datagrams += 1


class _UdpCounting(socketserver.ThreadingUDPServer):
    daemon_threads = True
    datagrams = 0


@dataclass
class Targets:
    """The three servers (one port) and the UDP counter; ``leaks()`` sums the blocked hits."""

    allowed: _Counting
    blocked_ip: _Counting
    blocked_name: _Counting
    udp: _UdpCounting
    port: int
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def ok(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bad_ip(self) -> str:
        return f"http://127.0.0.2:{self.port}"

    @property
    def bad_name(self) -> str:
        return f"http://blocked.test:{self.port}"

    def fill(self, template: str) -> str:
        """``template`` with @OK@, @BAD@ (127.0.0.2), @NAME@ (blocked.test) and @PORT@ set."""
        for token, value in (
            ("@OK@", self.ok),
            ("@BAD@", self.bad_ip),
            ("@NAME@", self.bad_name),
            ("@PORT@", str(self.port)),
        ):
            template = template.replace(token, value)
        return template

    def page(self, template: str, base: str | None = None) -> str:
        """A URL (of the allowed server, or ``base``) serving the filled-in ``template``."""
        return f"{base or self.ok}/page?html={quote(self.fill(template))}"

    def reset(self) -> None:
        for server in (self.allowed, self.blocked_ip, self.blocked_name):
            server.connections, server.paths = 0, []
        self.udp.datagrams = 0

    def leaks(self) -> dict[str, Any]:
        return {
            "127.0.0.2": self.blocked_ip.paths or self.blocked_ip.connections,
            "127.0.0.3": self.blocked_name.paths or self.blocked_name.connections,
            "udp 127.0.0.2": self.udp.datagrams,
        }


def _serve_three() -> Targets:
    for _ in range(20):  # the port must be free on all three addresses
        allowed = _Counting(("127.0.0.1", 0), "allowed")
        port = allowed.server_address[1]
        try:
            blocked_ip = _Counting(("127.0.0.2", port), "blocked-ip")
            try:
                blocked_name = _Counting(("127.0.0.3", port), "blocked-name")
                try:
                    udp = _UdpCounting(("127.0.0.2", port), _Datagrams)
                except OSError:
                    blocked_name.server_close()
                    raise
            except OSError:
                blocked_ip.server_close()
                raise
        except OSError:
            allowed.server_close()
            continue
        targets = Targets(allowed, blocked_ip, blocked_name, udp, port)
        for server in (allowed, blocked_ip, blocked_name, udp):
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            targets.threads.append(thread)
        return targets
    raise RuntimeError("no port free on 127.0.0.1, 127.0.0.2 and 127.0.0.3")


@pytest.fixture(scope="module")
def all_targets() -> Iterator[Targets]:
    targets = _serve_three()
    yield targets
    for server in (targets.allowed, targets.blocked_ip, targets.blocked_name, targets.udp):
        server.shutdown()
        server.server_close()


@pytest.fixture
def targets(all_targets: Targets) -> Iterator[Targets]:
    """The servers, counters at zero; after the test, no blocked server saw anything."""
    all_targets.reset()
    yield all_targets
    time.sleep(0.2)  # a late connection would still count
    assert all_targets.leaks() == {"127.0.0.2": 0, "127.0.0.3": 0, "udp 127.0.0.2": 0}


EGRESS_CONFIG: dict[str, Any] = {
    "SESSIONS_BLOCKED_NETWORKS": "127.0.0.2/32, 127.0.0.3/32",
    "SESSIONS_EGRESS_HOSTS": {"blocked.test": "127.0.0.3", "allowed.test": "127.0.0.1"},
}


async def _no_dns(host: str, port: int) -> list[str]:
    raise OSError(f"the tests resolve no name through DNS ({host})")


def loopback_only(app: Flask) -> Flask:
    """Names outside SESSIONS_EGRESS_HOSTS fail instead of reaching the DNS resolver."""
    proxy = FlaskSessions.state(app).runtime.egress
    if proxy is not None:
        proxy.resolver = _no_dns
    return app


@pytest.fixture(scope="module")
def egress_app() -> Iterator[Flask]:
    """One app (and Chromium) for the module's path tests: 127.0.0.2 and 127.0.0.3 blocked."""
    config = {"SESSIONS_TOKENS": TOKENS, "TESTING": True, **EGRESS_CONFIG}
    app = loopback_only(create_app(config, clock=ManualClock()))
    yield app
    FlaskSessions.state(app).manager.shutdown()


@pytest.fixture
def client(egress_app: Flask) -> FlaskClient:
    return egress_app.test_client()


def observe(client: FlaskClient, **body: Any) -> Any:
    response = client.post("/env/observe", json=body, headers=AUTH_A)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def open_session(client: FlaskClient, url: str) -> tuple[str, Any]:
    body = observe(client, url=url, keep_alive=True)
    return body["session"]["session_id"], body["observation"]


def observe_until(client: FlaskClient, session_id: str, marker: str, timeout: float = 10) -> Any:
    """Observe until the page's text shows ``marker`` (scripts still running)."""
    deadline = time.monotonic() + timeout
    while True:
        obs = observe(client, session_id=session_id)["observation"]
        if marker in obs["text"] or time.monotonic() > deadline:
            assert marker in obs["text"], obs["text"]
            return obs
        time.sleep(0.1)


def close(client: FlaskClient, session_id: str) -> None:
    client.delete(f"/session/{session_id}", headers=AUTH_A)


# --------------------------------------------------------- paths through Chromium


def test_navigation_to_a_blocked_address_names_the_rule(
    client: FlaskClient, targets: Targets
) -> None:
    sid, obs = open_session(client, targets.ok + "/")
    assert obs["error"] is None and obs["title"] == "allowed" and obs["http_status"] == 200
    for url in (targets.bad_ip + "/secret", f"https://127.0.0.2:{targets.port}/"):
        body = observe(client, session_id=sid, url=url)
        assert body["session"]["status"] == "active"
        obs = body["observation"]
        assert obs["error"] == f"loading {url} failed: blocked by the egress policy: {BLOCKED_RULE}"
        assert obs["http_status"] is None
    step = client.post(
        "/env/step",
        json={"session_id": sid, "type": "goto", "url": targets.bad_ip + "/"},
        headers=AUTH_A,
    ).get_json()
    assert step["success"] is False and BLOCKED_RULE in step["message"]
    obs = observe(client, session_id=sid, url=targets.ok + "/")["observation"]  # still loads
    assert obs["error"] is None and obs["title"] == "allowed"
    one_shot = client.post("/session/start", json={"url": targets.bad_ip + "/"}, headers=AUTH_A)
    assert one_shot.status_code == 200
    page = one_shot.get_json()["page"]
    assert BLOCKED_RULE in page["error"] and page["http_status"] is None
    close(client, sid)
    close(client, one_shot.get_json()["session_id"])


def test_a_host_name_that_resolves_to_a_blocked_address_is_refused(
    client: FlaskClient, targets: Targets
) -> None:
    obs = observe(client, url=targets.bad_name + "/")["observation"]
    assert obs["error"] == (
        f"loading {targets.bad_name}/ failed: blocked by the egress policy: {NAME_RULE}"
    )
    obs = observe(client, url=f"https://blocked.test:{targets.port}/")["observation"]
    assert NAME_RULE in obs["error"]
    obs = observe(client, url=f"http://allowed.test:{targets.port}/")["observation"]
    assert obs["error"] is None and obs["title"] == "allowed"
    assert targets.allowed.paths == ["/"]


def test_a_redirect_from_an_allowed_page_to_a_blocked_one(
    client: FlaskClient, targets: Targets
) -> None:
    for to in (targets.bad_ip + "/", f"https://127.0.0.2:{targets.port}/", targets.bad_name):
        url = f"{targets.ok}/redirect?to={quote(to)}"
        obs = observe(client, url=url)["observation"]
        assert obs["error"] and "blocked by the egress policy" in obs["error"], obs
        assert (NAME_RULE if "blocked.test" in to else BLOCKED_RULE) in obs["error"]
    obs = observe(client, url=f"{targets.ok}/redirect?to={quote(targets.ok + '/second')}")
    assert obs["observation"]["error"] is None and obs["observation"]["url"].endswith("/second")


SUBRESOURCES = """<!doctype html><title>subresources</title><p id=r></p>
<script>function mark(t) { document.getElementById('r').textContent += ' ' + t; }</script>
<img src="@OK@/img.png" onload="mark('ok-img-loaded')" onerror="mark('ok-img-failed')">
<img src="@BAD@/img.png" onload="mark('bad-img-loaded')" onerror="mark('bad-img-failed')">
<img src="@NAME@/img.png" onload="mark('name-img-loaded')" onerror="mark('name-img-failed')">
<script src="@OK@/script.js" onload="mark('ok-script-loaded')"></script>
<script src="@BAD@/script.js" onload="mark('bad-script-loaded')"
        onerror="mark('bad-script-failed')"></script>
<link rel=stylesheet href="@BAD@/style.css">
<link rel=prefetch href="@BAD@/prefetch">
<iframe src="@OK@/" onload="mark('ok-frame-loaded')"></iframe>
<iframe src="@BAD@/frame"></iframe>
<iframe src="https://127.0.0.2:@PORT@/frame"></iframe>
<iframe src="@NAME@/frame"></iframe>
"""


def test_subresources_and_iframes_of_an_allowed_page(client: FlaskClient, targets: Targets) -> None:
    sid, obs = open_session(client, targets.page(SUBRESOURCES))
    assert obs["error"] is None  # the page itself loaded
    for mark in ("ok-img-loaded", "bad-img-failed", "name-img-failed", "bad-script-failed"):
        assert mark in obs["text"], obs["text"]
    obs = observe_until(client, sid, "ok-frame-loaded")
    assert "bad-img-loaded" not in obs["text"] and "bad-script-loaded" not in obs["text"]
    assert {"/img.png", "/script.js", "/"} <= set(targets.allowed.paths)

    state = FlaskSessions.state(client.application)
    live = state.manager.live(sid)
    assert live is not None

    async def frames() -> list[str]:
        contents = []
        for frame in live.page.frames[1:]:
            try:
                contents.append(await frame.content())
            except PlaywrightError:  # an error page may have no document to read
                contents.append("")
        return contents

    contents = state.runtime.submit(frames(), 10)
    assert sum(BLOCKED_RULE in c for c in contents) == 1  # the http one shows the 403 body
    assert sum(NAME_RULE in c for c in contents) == 1
    close(client, sid)


FETCHES = """<!doctype html><title>fetch</title><pre id=r></pre><script>
const out = (t) => { document.getElementById('r').textContent += t + '\\n'; };
const tryFetch = (label, url, init) => fetch(url, init).then(r => r.text())
  .then(t => out(label + ' ok: ' + t), e => out(label + ' failed'));
const tryXhr = (label, url) => new Promise(done => {
  const x = new XMLHttpRequest(); x.open('GET', url);
  x.onload = () => { out(label + ' ok: ' + x.responseText); done(); };
  x.onerror = () => { out(label + ' failed'); done(); }; x.send(); });
const beacon = navigator.sendBeacon('@BAD@/beacon', 'x');
Promise.all([
  tryFetch('same-origin fetch', '/data'),
  tryFetch('blocked fetch', '@BAD@/data'),
  tryFetch('blocked no-cors fetch', '@BAD@/data', {mode: 'no-cors'}),
  tryFetch('blocked https fetch', 'https://127.0.0.2:@PORT@/data'),
  tryFetch('blocked name fetch', '@NAME@/data'),
  tryFetch('blocked post', '@BAD@/data', {method: 'POST', body: 'secret'}),
  tryXhr('same-origin xhr', '/data'),
  tryXhr('blocked xhr', '@BAD@/data'),
  new Promise(done => { const s = new EventSource('@BAD@/events');
    s.onerror = () => { out('blocked eventsource failed'); s.close(); done(); }; }),
  new Promise(done => { const w = new Worker(URL.createObjectURL(new Blob([
      "fetch('@BAD@/data').then(r => postMessage('ok'), e => postMessage('failed'))"])));
    w.onmessage = (e) => { out('blocked worker fetch ' + e.data); done(); }; }),
]).then(() => out('ALL DONE'));
</script>"""


def test_fetch_xhr_beacon_eventsource_and_worker(client: FlaskClient, targets: Targets) -> None:
    sid, _ = open_session(client, targets.page(FETCHES))
    obs = observe_until(client, sid, "ALL DONE")
    text = obs["text"]
    assert "same-origin fetch ok: data from allowed" in text
    assert "same-origin xhr ok: data from allowed" in text
    for label in ("blocked fetch", "blocked https fetch", "blocked name fetch", "blocked xhr"):
        assert f"{label} failed" in text, text
    assert "blocked eventsource failed" in text and "blocked worker fetch failed" in text
    assert "data from blocked" not in text
    close(client, sid)


WEBSOCKETS = """<!doctype html><title>ws</title><pre id=r></pre><script>
const out = (t) => { document.getElementById('r').textContent += t + '\\n'; };
const tryWs = (label, url) => new Promise(done => {
  const ws = new WebSocket(url);
  ws.onmessage = (e) => { out(label + ' message: ' + e.data); ws.close(); done(); };
  ws.onerror = () => { out(label + ' failed'); done(); };
});
Promise.all([
  tryWs('allowed ws', 'ws://127.0.0.1:@PORT@/ws'),
  tryWs('blocked ws', 'ws://127.0.0.2:@PORT@/ws'),
  tryWs('blocked wss', 'wss://127.0.0.2:@PORT@/ws'),
  tryWs('blocked name ws', 'ws://blocked.test:@PORT@/ws'),
]).then(() => out('ALL DONE'));
</script>"""


def test_websockets(client: FlaskClient, targets: Targets) -> None:
    sid, _ = open_session(client, targets.page(WEBSOCKETS))
    text = observe_until(client, sid, "ALL DONE")["text"]
    assert "allowed ws message: hello from allowed" in text
    for label in ("blocked ws", "blocked wss", "blocked name ws"):
        assert f"{label} failed" in text, text
    close(client, sid)


POPUPS = """<!doctype html><title>popups</title><script>
window.open('@BAD@/popup'); window.open('@NAME@/popup'); window.open('@OK@/popup-target');
</script>"""


def test_popups(client: FlaskClient, targets: Targets) -> None:
    sid, obs = open_session(client, targets.page(POPUPS))
    assert obs["error"] is None
    assert wait_for(lambda: "/popup-target" in targets.allowed.paths, 10)
    state = FlaskSessions.state(client.application)
    live = state.manager.live(sid)
    assert live is not None

    async def popup_texts() -> list[str]:
        pages = [p for p in live.context.pages if p is not live.page]
        for page in pages:
            with contextlib.suppress(Exception):
                await page.wait_for_load_state("load", timeout=5000)
        return [await p.content() for p in pages]

    contents = state.runtime.submit(popup_texts(), 20)
    assert len(contents) == 3
    assert sum(BLOCKED_RULE in c for c in contents) == 1
    assert sum(NAME_RULE in c for c in contents) == 1
    close(client, sid)


def test_dns_rebinding_fails(client: FlaskClient, targets: Targets) -> None:
    """A name that resolved to an allowed address, then to a blocked one: refused at once."""
    proxy = FlaskSessions.state(client.application).runtime.egress
    assert proxy is not None
    proxy.hosts["rebind.test"] = (as_address("127.0.0.1"),)
    origin = f"http://rebind.test:{targets.port}"
    html = (
        "<!doctype html><title>rebind</title><pre id=r></pre>"
        "<button onclick=\"fetch('/data').then(async res => "
        "document.getElementById('r').textContent += "
        "'fetched: ' + res.status + ' ' + await res.text() + ' END')\">"
        "again</button>"
    )
    sid, obs = open_session(client, targets.page(html, base=origin))
    assert obs["error"] is None and obs["title"] == "rebind"
    proxy.hosts["rebind.test"] = (as_address("127.0.0.3"),)  # the attacker's DNS flips
    try:
        button = next(a["id"] for a in obs["actions"] if a["name"] == "again")
        step = client.post(
            "/env/step", json={"session_id": sid, "type": "click", "id": button}, headers=AUTH_A
        ).get_json()
        assert step["success"] is True
        text = observe_until(client, sid, "END")["text"]
        # Same origin for the page, so it reads the proxy's 403: the answer, not the data.
        assert "fetched: 403 blocked by the egress policy: rebind.test resolves to 127.0.0.3" in (
            text
        )
        assert "data from" not in text
        obs = observe(client, session_id=sid, url=origin + "/")["observation"]
        assert (
            "rebind.test resolves to 127.0.0.3, which is in SESSIONS_BLOCKED_NETWORKS"
            in (obs["error"])
        )
    finally:
        del proxy.hosts["rebind.test"]
        close(client, sid)


WEBRTC = """<!doctype html><title>webrtc</title><pre id=r></pre><script>
const out = (t) => { document.getElementById('r').textContent += t + '\\n'; };
(async () => {
  const pc = new RTCPeerConnection({iceServers: [
    {urls: 'stun:127.0.0.2:@PORT@'},
    {urls: 'turn:127.0.0.2:@PORT@?transport=udp', username: 'u', credential: 'p'},
    {urls: 'turn:127.0.0.2:@PORT@?transport=tcp', username: 'u', credential: 'p'}]});
  pc.createDataChannel('x');
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => setTimeout(r, 2000));
  out('candidates: ' + (pc.localDescription.sdp.match(/a=candidate/g) || []).length);
  pc.close();
  try {
    const wt = new WebTransport('https://127.0.0.2:@PORT@/');
    await Promise.race([wt.ready, new Promise((_, no) => setTimeout(() => no('timeout'), 2000))]);
    out('webtransport ready');
  } catch (e) { out('webtransport failed'); }
  out('ALL DONE');
})();
</script>"""


def test_webrtc_and_webtransport_send_nothing(make_app: AppFactory, targets: Targets) -> None:
    """STUN/TURN over UDP would bypass an HTTP proxy; the flags keep WebRTC on it."""
    # No mDNS host candidates either: nothing may leave loopback, even multicast.
    app = loopback_only(
        make_app(
            **EGRESS_CONFIG,
            SESSIONS_BROWSER_ARGS=["--disable-features=WebRtcHideLocalIpsWithMdns"],
        )
    )
    client = app.test_client()
    sid, _ = open_session(client, targets.page(WEBRTC))
    text = observe_until(client, sid, "ALL DONE")["text"]
    assert "webtransport failed" in text
    assert "candidates: 0" in text  # no UDP candidate at all: host, srflx or relay
    close(client, sid)


def test_private_shorthand_with_an_allowed_exception(
    make_app: AppFactory, targets: Targets
) -> None:
    app = loopback_only(
        make_app(SESSIONS_BLOCK_PRIVATE_NETWORKS=True, SESSIONS_ALLOWED_NETWORKS="127.0.0.1/32")
    )
    client = app.test_client()
    obs = observe(client, url=targets.ok + "/")["observation"]
    assert obs["error"] is None and obs["title"] == "allowed"
    obs = observe(client, url=targets.bad_ip + "/")["observation"]
    assert "127.0.0.2 is in SESSIONS_BLOCK_PRIVATE_NETWORKS (127.0.0.0/8)" in obs["error"]
    obs = observe(client, url=f"http://[::1]:{targets.port}/")["observation"]
    assert "::1 is in SESSIONS_BLOCK_PRIVATE_NETWORKS (::1/128)" in obs["error"]


def test_localhost_goes_through_the_proxy_too(make_app: AppFactory, targets: Targets) -> None:
    """Chromium never sends loopback direct: ``localhost`` is resolved (from /etc/hosts, no
    DNS query) and refused by the proxy like any name."""
    client = make_app(SESSIONS_BLOCK_PRIVATE_NETWORKS=True).test_client()
    for url in (targets.ok + "/", f"http://localhost:{targets.port}/"):
        obs = observe(client, url=url)["observation"]
        assert "SESSIONS_BLOCK_PRIVATE_NETWORKS (127.0.0.0/8)" in obs["error"], obs
    assert "localhost resolves to 127.0.0.1" in obs["error"]
    assert targets.allowed.connections == 0


def test_the_proxy_itself_and_unreachable_hosts(client: FlaskClient, targets: Targets) -> None:
    proxy = FlaskSessions.state(client.application).runtime.egress
    assert proxy is not None
    observe(client, url="about:blank")  # Chromium and its proxy are up: the port is known
    assert proxy.port
    obs = observe(client, url=f"http://127.0.0.1:{proxy.port}/")["observation"]
    assert "is the egress proxy itself" in obs["error"]
    # Chromium's restricted ports (the CDP debugging port is one) stay refused through it.
    obs = observe(client, url="http://127.0.0.1:6666/json/list")["observation"]
    assert "restricted port" in (obs["error"] or "") or "ERR_UNSAFE_PORT" in (obs["error"] or ""), (
        obs
    )
    obs = observe(client, url=f"http://nowhere.test:{targets.port}/")["observation"]
    assert "ERR_NAME_NOT_RESOLVED" in obs["error"] and obs["http_status"] is None


def test_policy_is_logged_and_a_policy_that_blocks_nothing_needs_no_proxy(
    make_app: AppFactory, targets: Targets, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="flask_sessions"):
        app = make_app(**EGRESS_CONFIG)
    assert "egress policy in force" in caplog.text and "127.0.0.3/32" in caplog.text
    assert FlaskSessions.state(app).runtime.egress is not None
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="flask_sessions"):
        app = make_app(SESSIONS_ALLOWED_NETWORKS="169.254.0.0/16, fe80::/10")
    assert "egress policy blocks nothing" in caplog.text
    state = FlaskSessions.state(app)
    assert state.runtime.egress is None
    obs = observe(app.test_client(), url=targets.ok + "/")["observation"]
    assert obs["error"] is None and obs["title"] == "allowed"
    launched = state.runtime.choice
    assert launched is not None


def test_shutdown_stops_the_proxy(make_app: AppFactory, targets: Targets) -> None:
    app = loopback_only(make_app(**EGRESS_CONFIG))
    client = app.test_client()
    open_session(client, targets.page(WEBSOCKETS))
    state = FlaskSessions.state(app)
    proxy = state.runtime.egress
    assert proxy is not None and proxy.running
    port = proxy.port
    state.manager.shutdown()
    assert not proxy.running and proxy.open_connections == 0
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
