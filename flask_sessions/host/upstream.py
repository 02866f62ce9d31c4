"""Per-session upstream proxies, chained behind the egress proxy (issue 18, item 1).

A session started with ``proxy`` gets a listener of its own on the egress proxy
(``127.0.0.1:<ephemeral port>``, an :class:`UpstreamRoute`), and its context is created with
``new_context(proxy={"server": "http://127.0.0.1:<that port>"})``. Chromium then sends every
connection of that context, and only of that context, to that port (Playwright adds
``<-loopback>`` to the context's bypass list, so loopback goes there too): pages, frames,
workers, popups and pages opened over CDP alike, since a context's proxy is Chromium's, set
when the context is made, and no CDP client can change it. What arrives on the port:

1. is checked as far as it can be from here: a destination given as an IP address, or as a
   name in ``SESSIONS_EGRESS_HOSTS``, must pass the egress policy (so a page behind a
   permitted proxy still cannot ask it for a blocked address); restricted ports and the
   proxy's own ports are refused, as on the main port;
2. goes straight out through the egress path (resolved and checked here) if it matches
   ``proxy.bypass``;
3. otherwise goes to the upstream proxy: its address is resolved and checked against the
   policy on every connection (a name that turns into a blocked address later is refused
   then, not only at start), ``CONNECT host:port`` (https, ws, wss) or the absolute-form
   request (plain http) is sent with ``Proxy-Authorization: Basic …``, and the bytes are
   relayed as on the main port. Other names are resolved by the upstream proxy, in its own
   network: that is what a proxy is for.

Why a port per session: Chromium sends proxy credentials only after a 407 challenge, which
Playwright answers by intercepting every request of the context (the Fetch domain: a driver
round trip per request, and the HTTP cache off); a listener per context needs nothing from
Chromium, and the credentials never reach it: they live in this process alone (the Basic
header is built once, never logged, never in a record). Who can use the port: pages cannot
(they cannot send ``CONNECT`` or absolute-form requests, and the egress proxy refuses its own
ports as destinations); a local process can, for as long as the session lives, as it can
reach Chromium's debugging port (see cdp.py: run the server in its own network namespace
where local users are not trusted).
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import functools
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask_sessions.host.egress import (
    EGRESS_HEADER,
    HEAD_LIMIT,
    Address,
    EgressPolicy,
    _Refused,
    _Request,
    _rewrite_response_head,
    _Tunnel,
    as_address,
)
from flask_sessions.options import ProxyOptions

if TYPE_CHECKING:
    from flask_sessions.host.egress import EgressProxy

log = logging.getLogger("flask_sessions")

ALLOW_ALL = EgressPolicy(allowed=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))
"""The chains' policy when the server's blocks nothing (Chromium then connects directly)."""


@dataclass(frozen=True)
class Upstream:
    """A session's upstream proxy: where, how to authenticate, what bypasses it."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)  # "Basic …", never shown
    bypass: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, proxy: ProxyOptions) -> Upstream:
        authorization = None
        if proxy.username is not None:
            pair = f"{proxy.username}:{proxy.password or ''}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        bypass = tuple(r for r in (proxy.bypass or "").split(",") if r)
        return cls(proxy.host, proxy.port, authorization, bypass)

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def bypasses(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is reached directly (``proxy.bypass``), not through it."""
        return any(_matches(rule, host, port) for rule in self.bypass)


def _matches(rule: str, host: str, port: int) -> bool:
    """Chromium's bypass rules, the common forms: ``<local>`` (a name without a dot), an IP
    network (IP literals only), a host pattern with ``*`` wildcards (a leading ``.`` means
    ``*.``), each with an optional ``:port``."""
    try:
        literal: Address | None = as_address(host)
    except ValueError:
        literal = None
    if rule == "<local>":
        return literal is None and "." not in host
    try:
        network = ipaddress.ip_network(rule.strip("[]"), strict=False)
    except ValueError:
        pass
    else:
        return literal is not None and literal.version == network.version and literal in network
    pattern, rule_port = rule, ""
    if rule.count(":") == 1:
        pattern, _, rule_port = rule.partition(":")
    if rule_port and int(rule_port) != port:
        return False
    if pattern.startswith("."):
        pattern = "*" + pattern
    return fnmatch.fnmatchcase(host, pattern)


class UpstreamRoute:
    """One session's listener on the egress proxy, and its way through the upstream proxy."""

    def __init__(self, proxy: EgressProxy, upstream: Upstream) -> None:
        self.proxy = proxy
        self.upstream = upstream
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tasks: set[asyncio.Task[Any]] = set()  # its open connections
        self.forwarded = 0  # connections that went through the upstream proxy

    @property
    def url(self) -> str:
        """What the context's ``proxy.server`` is: this listener."""
        return f"http://127.0.0.1:{self.port}"

    def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        self.proxy.routes.pop(self.port, None)

    async def close(self) -> None:
        """Stop listening and close every connection of this route (the session ended)."""
        self.stop_listening()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ one connection

    def check_destination(self, host: str, port: int) -> None:
        """Refuse what the policy refuses of a destination known here: an IP literal or a
        ``SESSIONS_EGRESS_HOSTS`` name (other names are the upstream proxy's to resolve)."""
        try:
            addresses: tuple[Address, ...] = (as_address(host),)
        except ValueError:
            addresses = self.proxy.hosts.get(host, ())
        self.proxy.check(host, port, addresses)

    async def connect(
        self, request: _Request, tunnel: _Tunnel
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the upstream proxy for ``request``, through its CONNECT
        handshake when it is a tunnel; ``_Refused`` with the reason otherwise."""
        self.check_destination(request.host, request.port)
        up = self.upstream
        try:
            addresses = await self.proxy._resolve(up.host, up.port)
            reader, writer = await self.proxy._connect(up.host, up.port, addresses, tunnel)
        except _Refused as refused:
            name = "net::ERR_PROXY_CONNECTION_FAILED"
            raise _Refused(
                502 if refused.status != 403 else 403,
                refused.reason,
                f"{name} (the session's proxy at {up.where}: {refused.message})",
            ) from None
        self.forwarded += 1
        if request.method == "CONNECT":
            await self._handshake(request, reader, writer)
        return reader, writer

    async def _handshake(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        authority = _authority(request.host, request.port)
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if self.upstream.authorization is not None:
            lines.append(f"Proxy-Authorization: {self.upstream.authorization}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.proxy.head_timeout)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            raise _Refused(
                502,
                "Bad Gateway",
                f"net::ERR_TUNNEL_CONNECTION_FAILED (the session's proxy at "
                f"{self.upstream.where} gave no answer to CONNECT {authority})",
            ) from None
        status, reason = _status(head)
        if 200 <= status < 300:
            return
        raise _Refused(502, "Bad Gateway", self._refusal(status, reason, f"CONNECT {authority}"))

    def _refusal(self, status: int, reason: str, doing: str) -> str:
        where = f"the session's proxy at {self.upstream.where}"
        if status == 407:
            return (
                f"net::ERR_PROXY_AUTH_UNSUPPORTED ({where} refused its credentials: 407 "
                f"{reason}; check proxy.username and proxy.password)"
            )
        return f"net::ERR_TUNNEL_CONNECTION_FAILED ({where} answered {status} {reason} to {doing})"

    def request_head(self, request: _Request) -> bytes:
        """A plain http:// request as the upstream proxy takes it: absolute-form, with the
        credentials (``request.head`` is origin-form, for an origin server)."""
        first, _, rest = request.head.partition(b"\r\n")
        method, path, version = first.split(b" ", 2)
        target = f"http://{_authority(request.host, request.port, 80)}".encode("latin-1") + path
        auth = b""
        if self.upstream.authorization is not None:
            auth = f"Proxy-Authorization: {self.upstream.authorization}\r\n".encode("latin-1")
        return b" ".join((method, target, version)) + b"\r\n" + auth + rest

    def response_head(self, request: _Request) -> Callable[[bytes], bytes]:
        """How to rewrite the upstream's answer head: as for an origin, except that its own
        refusal (407) becomes a 502 of ours that names the reason, as a refused tunnel does."""

        def rewrite(head: bytes) -> bytes:
            out = _rewrite_response_head(head)
            status, reason = _status(head)
            if status != 407:
                return out
            message = self._refusal(status, reason, f"{request.method} http://{request.host}")
            self.proxy._remember(request.host, request.port, message)
            rest = out[out.index(b"\r\n") :]
            return (
                b"HTTP/1.1 502 Bad Gateway"
                + rest[:-2]
                + f"{EGRESS_HEADER}: failed\r\n\r\n".encode()
            )

        return rewrite


def _authority(host: str, port: int, default: int | None = None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default else f"{shown}:{port}"


def _status(head: bytes) -> tuple[int, str]:
    """The status code and reason of a response head (0 if it is not one)."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return 0, line[:80]
    return int(parts[1]), parts[2] if len(parts) > 2 else ""


async def open_route(proxy: EgressProxy, upstream: Upstream) -> UpstreamRoute:
    """A listener of its own on ``proxy`` for one session's ``upstream`` (on the loop)."""
    route = UpstreamRoute(proxy, upstream)
    accept = functools.partial(proxy._accept, route=route)
    route.server = await asyncio.start_server(accept, "127.0.0.1", 0, limit=HEAD_LIMIT, backlog=256)
    route.port = route.server.sockets[0].getsockname()[1]
    proxy.routes[route.port] = route
    log.debug(
        "flask_sessions: upstream proxy %s for a session on 127.0.0.1:%d",
        upstream.where,
        route.port,
    )
    return route
